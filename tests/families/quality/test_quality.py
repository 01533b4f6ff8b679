"""Alert quality on a generated timeline whose answers are known in advance.

Every rollup figure below is worked out by hand from the scenario in :func:`scenario`,
and checked on SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from alert_jobs.assets.operator_jobs import ack_alert_job
from alert_jobs.cli import main as cli
from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status, fingerprint
from alert_jobs.families.quality.check import QualityRow, recommend
from alert_jobs.families.quality.definitions import build_definitions
from alert_jobs.families.quality.metrics import escape_label, render
from alert_jobs.families.quality.rollup import quality_rows
from alert_jobs.http.app import create_app
from alert_jobs.notify.links import SECRET_ENV, sign
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, episodes, migrate, schema
from tests.conftest import (
    in_memory_instance,
    make_receiver,
    served_app,
    submit_link_form,
    write_rules,
)

T0 = datetime(2026, 10, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAY1, DAY2 = "2026-10-05", "2026-10-06"


def _obs(rule: str, status: Status, labels: dict[str, str], value: float = 1.0) -> Observation:
    return Observation(rule, status, labels, value, summary=f"{rule} is {status}")


def scenario(timeline: Timeline) -> dict[str, str]:
    """The known timeline.

    * ``noisy`` (warning): 4 episodes of 10 min, 30 min apart, nobody looks → 4 unattended,
      3 flaps (re-fired 30 min after resolving), resolve 600 s each, 4 notifications.
    * ``good`` (critical): ep1 acked after 2 min as actionable, resolved after 20 min;
      ep2 acked after 6 min (no outcome → actionable), resolved after 60 min; ep3 (a flap:
      fired exactly 1 h after ep2 resolved) resolved
      after 5 min, marked false-positive afterwards. 3 pages.
    * ``dup`` (warning, day 2): acked after 15 min as duplicate, still firing.
    * ``open`` (warning): fired, nothing else yet → open, not judged.
    """
    fps = {}
    noisy = RulePolicy(rule="noisy", severity=Severity.WARNING)
    for i in range(4):
        start = T0 + i * 40 * MIN
        r = timeline.alerts.process(_obs("noisy", Status.ALERT, {"n": "a"}), noisy, now=start)
        timeline.alerts.process(_obs("noisy", Status.OK, {"n": "a"}), noisy, now=start + 10 * MIN)
    fps["noisy"] = r.decision.record.fingerprint

    good = RulePolicy(rule="good", severity=Severity.CRITICAL)
    lab = {"team": "pay"}
    fp = fps["good"] = fingerprint("good", lab)
    for start, ack, outcome, resolve in (
        (T0 + 10 * 60 * MIN, 2, "actionable", 20),
        (T0 + 12 * 60 * MIN, 6, None, 60),
        (T0 + 14 * 60 * MIN, None, None, 5),
    ):
        timeline.alerts.process(_obs("good", Status.ALERT, lab), good, now=start)
        if ack is not None:
            timeline.actions.ack(fp, by="alice", outcome=outcome, now=start + ack * MIN)
        timeline.alerts.process(_obs("good", Status.OK, lab), good, now=start + resolve * MIN)
    timeline.actions.record_outcome(fp, outcome="false-positive", by="bob",
                                    now=T0 + 15 * 60 * MIN)

    dup = RulePolicy(rule="dup", severity=Severity.WARNING)
    start = T0 + 25 * 60 * MIN
    fps["dup"] = timeline.alerts.process(_obs("dup", Status.ALERT, {}), dup, now=start
                                         ).decision.record.fingerprint
    timeline.actions.ack(fps["dup"], by="carol", outcome="duplicate", now=start + 15 * MIN)

    opened = RulePolicy(rule="open", severity=Severity.WARNING)
    fps["open"] = timeline.alerts.process(_obs("open", Status.ALERT, {}), opened,
                                          now=T0 + 20 * 60 * MIN).decision.record.fingerprint
    return fps


@pytest.fixture
def known(db_url: str) -> Iterator[Timeline]:
    timeline = Timeline(db_url)
    scenario(timeline)
    yield timeline
    timeline.dispose()


def _rows(timeline: Timeline, by: tuple[str, ...] = ("day", "rule", "severity")
          ) -> dict[tuple[str | None, ...], QualityRow]:
    with timeline.engine.connect() as conn:
        rows = quality_rows(conn, T0, T0 + timedelta(days=2), by=by)
    return {(r.day, r.rule, r.severity): r for r in rows}


def test_rollup_per_rule_severity_day_is_exact(known: Timeline) -> None:
    rows = _rows(known)
    assert set(rows) == {(DAY1, "noisy", "warning"), (DAY1, "good", "critical"),
                         (DAY2, "dup", "warning"), (DAY1, "open", "warning")}
    noisy = rows[(DAY1, "noisy", "warning")]
    assert (noisy.fired, noisy.notifications, noisy.pages, noisy.actionable, noisy.unattended,
            noisy.flaps, noisy.open) == (4, 4, 0, 0, 4, 3, 0)
    assert noisy.actionable_rate == 0.0
    assert (noisy.resolve_p50, noisy.resolve_p90) == (600.0, 600.0)
    assert noisy.ack_p50 is None and noisy.response_p50 is None

    good = rows[(DAY1, "good", "critical")]
    assert (good.fired, good.notifications, good.pages, good.actionable,
            good.false_positive, good.unattended, good.flaps) == (3, 3, 3, 2, 1, 0, 1)
    assert good.actionable_rate == pytest.approx(2 / 3)
    assert good.false_positive_rate == pytest.approx(1 / 3)
    assert (good.ack_p50, good.ack_p90) == (120.0, 360.0)  # nearest rank of [120, 360]
    assert (good.response_p50, good.response_p90) == (120.0, 360.0)
    assert (good.resolve_p50, good.resolve_p90) == (1200.0, 3600.0)  # of [300, 1200, 3600]

    dup = rows[(DAY2, "dup", "warning")]
    assert (dup.fired, dup.duplicates, dup.actionable, dup.open, dup.judged) == (1, 1, 0, 0, 1)
    assert dup.ack_p50 == 900.0 and dup.resolve_p50 is None

    opened = rows[(DAY1, "open", "warning")]
    assert (opened.fired, opened.open, opened.judged, opened.actionable_rate) == (1, 1, 0, None)


def test_rollup_by_rule_only_and_recommendations(known: Timeline) -> None:
    rows = {r[1]: v for r, v in _rows(known, ("rule",)).items()}
    assert rows["noisy"].severity is None and rows["noisy"].day is None
    assert recommend(rows["noisy"]).action == "tune_or_delete"
    assert recommend(rows["good"]).action == "keep"  # 67 % actionable, median resolve 20 min
    assert recommend(rows["open"]).action == "wait"
    slow = QualityRow(rule="slow", fired=2, actionable=2, resolve_p50=3600.0)
    assert recommend(slow).action == "improve_runbook"


def test_backfill_rebuilds_the_same_episodes(known: Timeline) -> None:
    cols = [c for c in schema.episodes.c if c.name != "updated_at"]
    with known.engine.begin() as conn:
        live = sorted(conn.execute(sa.select(*cols)).all())
        conn.execute(sa.delete(schema.episodes))
        assert episodes.backfill(conn) == len(live)
        rebuilt = sorted(conn.execute(sa.select(*cols)).all())
    assert rebuilt == live


# ----- outcomes from the CLI, the signed links and the Dagster job ------------------


def _fire_now(timeline: Timeline, rule: str = "dead_letters") -> str:
    return timeline.alerts.process(_obs(rule, Status.ALERT, {"team": "payments"}),
                                   RulePolicy(rule=rule, severity=Severity.CRITICAL)
                                   ).decision.record.fingerprint


def _episode(timeline: Timeline, fp: str) -> sa.Row:
    with timeline.engine.connect() as conn:
        return conn.execute(sa.select(schema.episodes).where(
            schema.episodes.c.fingerprint == fp)).one()


def test_cli_ack_and_outcome_record_the_outcome(db_url: str, tmp_path: Path, capsys) -> None:
    timeline = Timeline(db_url)
    fp = _fire_now(timeline)
    rules = write_rules(tmp_path / "alerts.yaml", "defaults: {receivers: [console]}\n")
    base = ["--database-url", db_url, "--rules", str(rules)]
    assert cli.main([*base, "ack", fp, "--by", "alice", "--outcome", "noise"]) == 0
    ep = _episode(timeline, fp)
    assert (ep.outcome, ep.outcome_by) == ("noise", "alice")
    assert ep.first_ack_at is not None and ep.ack_seconds is not None
    (acked,) = timeline.events.list(kinds=["acked"])
    assert acked["payload"]["outcome"] == "noise" and acked["source"] == "cli"

    timeline.alerts.process(_obs("dead_letters", Status.OK, {"team": "payments"}),
                            RulePolicy(rule="dead_letters", severity=Severity.CRITICAL))
    assert cli.main([*base, "outcome", fp[:8], "actionable", "--by", "bob"]) == 0
    assert _episode(timeline, fp).outcome == "actionable"
    assert timeline.events.list(kinds=["outcome"])[0]["payload"]["outcome"] == "actionable"
    assert cli.main([*base, "outcome", "nothing_here", "noise"]) == 2
    assert "no alert matches" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv(SECRET_ENV, "test-secret-0123456789abcdef")
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    rules = parse_rules("defaults: {receivers: [console]}")
    app = create_app(lambda: timeline, lambda: rules)
    with served_app(app) as base:
        yield {"base": base, "timeline": timeline}


def test_signed_link_records_duplicate_outcome(served: dict) -> None:
    timeline = served["timeline"]
    fp = _fire_now(timeline)
    record = timeline.alerts.get(fp)
    token = sign("duplicate", fp, datetime.now(UTC) + timedelta(hours=1),
                 b"test-secret-0123456789abcdef", episode=record.episode,
                 fired_at=record.fired_at)
    response = submit_link_form(served["base"], f"/a/{token}", "dora")
    assert response.status_code == 200 and "duplicate" in response.text
    ep = _episode(timeline, fp)
    assert (ep.outcome, ep.outcome_by) == ("duplicate", "dora") and ep.first_ack_at is not None
    (acked,) = timeline.events.list(kinds=["acked"])
    assert acked["source"] == "link" and acked["payload"]["outcome"] == "duplicate"


def test_dagster_ack_job_records_outcome(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(db_url)
    fp = _fire_now(timeline)
    rules = write_rules(tmp_path / "alerts.yaml", "defaults: {receivers: [console]}\n")
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    with in_memory_instance() as instance:
        result = ack_alert_job.execute_in_process(
            run_config={"ops": {"ack_alert": {"config": {
                "target": fp, "by": "erin", "outcome": "false-positive"}}}},
            resources={"alert_jobs": resource}, instance=instance)
    assert result.success
    ep = _episode(timeline, fp)
    assert (ep.outcome, ep.outcome_by) == ("false-positive", "erin")
    (acked,) = timeline.events.list(kinds=["acked"])
    assert acked["source"] == "dagster" and acked["run_id"] == result.run_id


# ----- /metrics over real HTTP --------------------------------------------------------

_LINE = re.compile(r'^([a-z_]+)(\{(?:[a-z]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf)$')


def _parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        m = _LINE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_metrics_endpoint_has_exact_values(served: dict) -> None:
    scenario(served["timeline"])
    response = httpx.get(f"{served['base']}/metrics", timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = _parse(response.text)
    assert m['alerts_total{name="good",severity="critical"}'] == 3
    assert m['alerts_total{name="noisy",severity="warning"}'] == 4
    assert m['alerts_actionable_total{name="good",severity="critical"}'] == 2
    assert m['alerts_actionable_total{name="noisy",severity="warning"}'] == 0
    # ack seconds: 120, 360 (good), 900 (dup)
    assert [m[f'alert_ack_seconds_bucket{{le="{le}"}}'] for le in ("60", "300", "900", "+Inf")
            ] == [0, 1, 3, 3]
    assert (m["alert_ack_seconds_sum"], m["alert_ack_seconds_count"]) == (1380, 3)
    # resolve seconds: 4 x 600 (noisy), 1200, 3600, 300 (good)
    assert [m[f'alert_resolve_seconds_bucket{{le="{le}"}}']
            for le in ("300", "900", "1800", "3600", "86400")] == [1, 5, 6, 7, 7]
    assert (m["alert_resolve_seconds_sum"], m["alert_resolve_seconds_count"]) == (7500, 7)


def test_metrics_escape_label_values(tmp_path: Path) -> None:
    timeline = Timeline(f"sqlite:///{tmp_path / 'a.db'}")
    timeline.alerts.process(_obs('we"ird\\rule', Status.ALERT, {}), RulePolicy(rule='we"ird\\rule'))
    text = render(timeline)
    assert 'alerts_total{name="we\\"ird\\\\rule",severity="warning"} 1' in text
    assert _parse(text)
    # The exposition format's three escapes, backslash first (else it doubles the others).
    assert escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


# ----- backtest -----------------------------------------------------------------------

BACKTEST_RULES = """
defaults: {receivers: [console]}
checks:
  sql_metric:
    - name: late_rows
      database: sqlite://
      query: SELECT 1
      expect: {max: 10}
"""


def _backtest_history(timeline: Timeline) -> None:
    """Every 10 min: 50, 50, 5 (actionable episode), 15, 5 (noise), 12, 5 (unattended)."""
    from alert_jobs.families.sql_metric.check import Bounds, judge

    policy = RulePolicy(rule="late_rows")
    fp = fingerprint("late_rows", {})
    for i, value in enumerate([50, 50, 5, 15, 5, 12, 5]):
        now = T0 + i * 10 * MIN
        record = timeline.alerts.get(fp)
        obs = judge("late_rows", value, Bounds(max=10), subject="late rows", window="",
                    was_firing=record is not None and record.state.is_active)
        timeline.alerts.process(obs, policy, now=now)
        if i == 0:
            timeline.actions.ack(fp, by="alice", outcome="actionable", now=now + MIN)
        if i == 3:
            timeline.actions.ack(fp, by="alice", outcome="noise", now=now + MIN)


@pytest.mark.parametrize(("sets", "would_fire"), [
    (["max=20"], 1), (["critical=20"], 1), (["for=10m"], 1), (["max=11"], 3),
])
def test_backtest_replays_with_changed_settings(db_url: str, tmp_path: Path, capsys, sets,
                                                would_fire) -> None:
    timeline = Timeline(db_url)
    _backtest_history(timeline)
    rules = write_rules(tmp_path / "alerts.yaml", BACKTEST_RULES.replace(
        "expect: {max: 10}", "expect: {max: 10}\n      severity: critical"))
    args = ["--database-url", db_url, "--rules", str(rules), "rules", "backtest", "late_rows",
            "--since", T0.isoformat(), "--json"]
    for s in sets:
        args += ["--set", s]
    assert cli.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stored_fired"] == 3 and result["replayed_current"] == 3
    assert result["evaluations"] == 7
    assert result["would_fire"] == would_fire
    assert result["actionable"] == 1 and result["actionable_caught"] == 1
    assert result["noisy"] == 2
    assert result["noisy_dropped"] == (2 if would_fire == 1 else 0)


def test_backtest_table_and_bad_input(tmp_path: Path, capsys) -> None:
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    timeline = Timeline(db_url)
    _backtest_history(timeline)
    rules = write_rules(tmp_path / "alerts.yaml", BACKTEST_RULES)
    base = ["--database-url", db_url, "--rules", str(rules), "rules", "backtest"]
    assert cli.main([*base, "late_rows", "--set", "max=20", "--since",
                     T0.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "alerts fired" in out and "1 of 1" in out and "2 of 2" in out
    for bad, message in ((["late_rows"], "nothing to change"),
                         (["late_rows", "--set", "max"], "KEY=VALUE"),
                         (["late_rows", "--set", "colour=red"], "cannot change 'colour'"),
                         (["late_rows", "--set", "max=abc"], "expected a number"),
                         (["late_rows", "--set", "critical=5"], "is a warning rule"),
                         (["late_rows", "--set", "for=soon"], "--set for"),
                         (["nope", "--set", "max=1"], "unknown rule 'nope'")):
        assert cli.main([*base, *bad]) == 2, bad
        assert message in capsys.readouterr().err


# ----- reports, the monthly review and the Dagster assets -----------------------------


def test_quality_report_cli(known: Timeline, capsys) -> None:
    base = ["--database-url", known.url]
    assert cli.main([*base, "quality", "report", "--month", "2026-10", "--json"]) == 0
    rows = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["good"]["actionable_rate"] == pytest.approx(2 / 3)
    assert cli.main([*base, "quality", "report", "--month", "2026-10", "--by", "day,rule"]) == 0
    assert "2026-10-06" in capsys.readouterr().out
    assert cli.main([*base, "quality", "report", "--month", "October"]) == 2
    assert cli.main([*base, "quality", "report", "--by", "team"]) == 2
    assert "cannot group by" in capsys.readouterr().err


QUALITY_RULES = """
defaults: {{receivers: [console]}}
receivers:
  - {{name: console, type: console}}
  - {{name: review_hook, type: webhook, url: "{url}"}}
quality:
  review_receiver: review_hook
  report_dir: {report_dir}
  start_date: 2026-09-01
"""


def test_monthly_review_and_daily_assets(tmp_path: Path, http_receiver) -> None:
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(db_url)
    scenario(timeline)
    timeline.alerts.process(_obs("<b>x</b>", Status.ALERT, {}), RulePolicy(rule="<b>x</b>"),
                            now=T0 + MIN)  # a hostile name must come out escaped
    rules_path = write_rules(tmp_path / "alerts.yaml", QUALITY_RULES.format(
        url=http_receiver.url, report_dir=tmp_path / "reports"))
    rules = parse_rules(rules_path.read_text())
    defs = build_definitions(rules)
    quality_assets, schedules = list(defs.assets or []), list(defs.schedules or [])
    resource = AlertJobsResource(rules_file=str(rules_path), database_url=db_url)
    with in_memory_instance() as instance:
        daily = dg.materialize(quality_assets[0:1], partition_key=DAY1, instance=instance,
                               resources={"alert_jobs": resource})
        assert daily.success
        meta = daily.asset_materializations_for_node("alert_quality_daily")[0].metadata
        assert meta["alerts_fired"].value == 4 + 3 + 1 + 1
        assert meta["pages"].value == 3
        assert meta["flaps"].value == 4
        assert isinstance(meta["actionable_rate"].value, float)

        monthly = dg.materialize(quality_assets[1:2], partition_key="2026-10-01",
                                 instance=instance, resources={"alert_jobs": resource})
        assert monthly.success
        meta = monthly.asset_materializations_for_node("alert_quality_monthly")[0].metadata
        assert meta["alerts_fired"].value == 10
        assert meta["rules_to_act_on"].value >= 1
        assert "| noisy |" in meta["review"].value
        (check,) = monthly.get_asset_check_evaluations()
        assert not check.passed  # 2 of 5 judged actionable: below 80 %

        # Re-running the month does not send the review twice.
        assert dg.materialize(quality_assets[1:2], partition_key="2026-10-01",
                              instance=instance, resources={"alert_jobs": resource}).success

        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 1, 9, tzinfo=UTC))
        run_request = schedules[1](ctx)
        assert run_request.partition_key == "2026-10-01"
        assert schedules[1].cron_schedule == "0 9 1 * *"
        assert schedules[1].execution_timezone == "UTC"

    assert len(http_receiver.requests) == 1
    body = http_receiver.requests[0].json()
    text = json.dumps(body)
    assert "alert_quality_review" in text and "noisy" in text and "tune the threshold" in text
    html = (tmp_path / "reports" / "alert-review-2026-10.html").read_text()
    assert "<svg" in html and "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "<script" not in html and "src=" not in html and "<link" not in html
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(charts) == 3
    for chart in charts:  # well-formed XML, so every browser draws it
        ElementTree.fromstring(chart)


def test_review_cli_send_needs_a_receiver(known: Timeline, tmp_path: Path, capsys) -> None:
    rules = write_rules(tmp_path / "alerts.yaml", "defaults: {receivers: [console]}\n")
    base = ["--database-url", known.url, "--rules", str(rules), "quality", "review",
            "--month", "2026-10", "--out", str(tmp_path / "out")]
    assert cli.main([*base, "--send"]) == 2
    assert "review_receiver" in capsys.readouterr().err
    assert cli.main(base) == 0
    assert "# Alert review 2026-10" in capsys.readouterr().out
    assert (tmp_path / "out" / "alert-review-2026-10.html").exists()


def test_rules_file_rejects_unknown_review_receiver() -> None:
    from alert_jobs.config import RulesError

    with pytest.raises(RulesError, match=r"quality\.review_receiver: unknown receiver"):
        parse_rules("quality: {review_receiver: x}")


@pytest.mark.benchmark  # `make bench` checks it, `make test` leaves it out
def test_benchmark_runs_at_tiny_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's own smoke test: SQL and pandas agree on a small timeline."""
    from benchmarks import quality_bench

    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)  # SQLite only here
    results, skipped = quality_bench.run(3000, sql_reps=1, pandas_reps=1, workdir=tmp_path)
    sqlite, monthly = results
    assert sqlite["backend"] == "sqlite" and sqlite["groups"] > 0 and sqlite["episodes"] > 0
    assert monthly["groups"] < sqlite["groups"]
    assert "quality rollup postgresql" in skipped
    assert "speedup" in quality_bench.format_table(results, skipped)


def test_migration_backfills_episodes_of_an_existing_timeline(db_url: str) -> None:
    """A timeline written before the alert-quality migration gets its episodes when it
    is upgraded (down to the revision before it, then up again)."""
    timeline = Timeline(db_url)
    scenario(timeline)
    cols = [c for c in schema.episodes.c if c.name != "updated_at"]
    with timeline.engine.connect() as conn:
        live = sorted(conn.execute(sa.select(*cols)).all())
    migrate.downgrade(timeline.engine, 5)
    assert timeline.schema_version() == 5
    fresh = Timeline(db_url)
    assert fresh.upgrade() == ["6: alert quality", "7: action link uses",
                              "8: evaluations by run", "9: outbox by run", "10: slo buckets",
                              "11: baselines", "12: responder pages", "13: external alerts",
                              "14: incident records", "15: rules disabled for a while"]
    assert fresh.schema_version() == migrate.HEAD
    with fresh.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(*cols)).all()) == live
    # and the live hooks continue on the backfilled rows
    fp = fingerprint("open", {})
    fresh.actions.ack(fp, by="zed", outcome="actionable", now=T0 + 21 * 60 * MIN)
    assert _episode(fresh, fp).outcome == "actionable"
    assert _episode(fresh, fp).ack_seconds == 3600.0


def test_review_mail_carries_the_html_report(known: Timeline, tmp_path: Path) -> None:
    from alert_jobs.families.quality.review import run_review

    rules = parse_rules("""
receivers:
  - {name: console, type: console}
  - {name: mail, type: email, host: 127.0.0.1, from_address: a@example.com, to: [b@example.com]}
quality: {review_receiver: mail}
""")
    result = run_review(rules, known, "2026-10", out_dir=tmp_path)
    assert result.outbox_id is not None
    (row,) = [r for r in known.outbox.rows() if r["id"] == result.outbox_id]
    receiver = make_receiver("email", name="mail", host="127.0.0.1",
                             from_address="a@example.com", to=["b@example.com"])
    msg = receiver.render(row["payload"])
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "alert-review-2026-10.html"
    assert "<svg" in attachment.get_content()
    assert "Monthly alert review 2026-10" in msg.get_body(("plain",)).get_content()
    # the same month is queued once
    assert run_review(rules, known, "2026-10", out_dir=tmp_path).outbox_id is None


def test_rollup_window_edges_that_are_not_midnight(known: Timeline) -> None:
    """``--since 30d`` style windows cut inside a day: fired_at decides at the edges."""
    with known.engine.connect() as conn:
        rows = {r.rule: r for r in quality_rows(conn, T0 + 30 * MIN, T0 + 24 * 60 * MIN + MIN,
                                                by=("rule",))}
    assert rows["noisy"].fired == 3  # the first one fired at T0, before the window
    assert rows["good"].fired == 3 and "dup" not in rows  # dup fired at 01:00 on day 2
    with known.engine.connect() as conn:
        rows = {r.rule: r for r in quality_rows(conn, T0, T0 + 25 * 60 * MIN + MIN,
                                                by=("rule",))}
    assert rows["dup"].fired == 1


def test_every_path_that_changes_an_alert_updates_its_episode(db_url: str) -> None:
    """Snooze, severity raise while muted, escalation, silence, resolve while silenced,
    re-fire after resolve: each lands on the episode row (known answers)."""
    from zoneinfo import ZoneInfo

    from alert_jobs.core.model import Matcher

    timeline = Timeline(db_url)
    warn = RulePolicy(rule="paths", severity=Severity.WARNING)
    fp_a = timeline.alerts.process(_obs("paths", Status.ALERT, {"n": "a"}), warn, now=T0
                                   ).decision.record.fingerprint
    timeline.actions.snooze(fp_a, until=T0 + 15 * MIN, by="bob", now=T0 + 5 * MIN)
    raised = Observation("paths", Status.ALERT, {"n": "a"}, 2.0, severity=Severity.CRITICAL)
    timeline.alerts.process(raised, warn, now=T0 + 10 * MIN)  # muted by the snooze: no message
    timeline.alerts.process(_obs("paths", Status.OK, {"n": "a"}), warn, now=T0 + 20 * MIN)
    timeline.alerts.process(_obs("paths", Status.ALERT, {"n": "a"}), warn, now=T0 + 50 * MIN)

    crit = RulePolicy(rule="paths2", severity=Severity.CRITICAL)
    fp_b = timeline.alerts.process(_obs("paths2", Status.ALERT, {}), crit, now=T0
                                   ).decision.record.fingerprint
    assert timeline.actions.escalate(fp_b, step=0, receiver="console",
                                     after=30 * MIN, now=T0 + 30 * MIN)
    timeline.silences.add([Matcher("alertname", "=", "paths2")], ends_at=T0 + 3 * 60 * MIN,
                          created_by="carol", comment="looking", now=T0 + 40 * MIN)
    timeline.alerts.process(_obs("paths2", Status.OK, {}), crit, now=T0 + 60 * MIN)

    # A caller's aware, non-UTC clock: the day is still the UTC one.
    berlin = datetime(2026, 10, 6, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 23:00 UTC
    fp_c = timeline.alerts.process(_obs("late", Status.ALERT, {}),
                                   RulePolicy(rule="late", severity=Severity.WARNING), now=berlin
                                   ).decision.record.fingerprint

    with timeline.engine.connect() as conn:
        rows = {(r.fingerprint, r.episode): r for r in conn.execute(sa.select(schema.episodes))}
    a1, a2 = rows[(fp_a, 1)], rows[(fp_a, 2)]
    assert a1.severity == "critical"  # raised while muted
    assert (a1.notifications, a1.pages) == (1, 0)  # the first one, sent as a warning
    assert (a1.response_seconds, a1.ack_seconds, a1.resolve_seconds) == (300.0, None, 1200.0)
    assert a2.flap and not a1.flap and a2.severity == "warning" and a2.resolved_at is None
    assert a2.notifications == 1

    (b,) = [r for k, r in rows.items() if k[0] == fp_b]
    assert (b.notifications, b.pages) == (2, 2)  # first + escalation step, both pages
    assert (b.response_seconds, b.ack_seconds, b.resolve_seconds) == (2400.0, None, 3600.0)

    (c,) = [r for k, r in rows.items() if k[0] == fp_c]
    assert c.day == "2026-10-05"
    with timeline.engine.connect() as conn:
        late = quality_rows(conn, datetime(2026, 10, 5, tzinfo=UTC),
                            datetime(2026, 10, 6, tzinfo=UTC), by=("day", "rule"), rule="late")
    assert [(r.day, r.fired) for r in late] == [("2026-10-05", 1)]
    timeline.dispose()


@pytest.mark.parametrize(("tz", "local", "month"), [
    ("UTC", datetime(2026, 11, 1, 9), "2026-10-01"),
    ("America/New_York", datetime(2026, 11, 1, 9), "2026-10-01"),
    # 09:00 on 1 Dec in Sydney is 22:00 on 30 Nov in UTC: November has not ended yet.
    ("Australia/Sydney", datetime(2026, 12, 1, 9), "2026-10-01"),
    ("Australia/Sydney", datetime(2026, 12, 1, 11, 30), "2026-11-01"),
])
def test_monthly_schedule_asks_for_a_month_that_has_ended_in_utc(
        tz: str, local: datetime, month: str) -> None:
    from zoneinfo import ZoneInfo

    rules = parse_rules(f"defaults: {{receivers: [console]}}\nquality: {{timezone: {tz}}}\n")
    schedules = list(build_definitions(rules).schedules or [])
    monthly = schedules[1]
    assert monthly.execution_timezone == tz
    when = local.replace(tzinfo=ZoneInfo(tz))
    with in_memory_instance() as instance:
        request = monthly(dg.build_schedule_context(instance=instance,
                                                    scheduled_execution_time=when))
    assert request.partition_key == month
    start, end = datetime.fromisoformat(month).replace(tzinfo=UTC), when.astimezone(UTC)
    assert dg.MonthlyPartitionsDefinition(start_date="2025-01-01", timezone="UTC") \
        .get_partition_keys(current_time=end)[-1] >= month
    assert start < end
