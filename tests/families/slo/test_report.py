"""The monthly SLO budget report on real timelines (SQLite and PostgreSQL): budget numbers
from stored buckets, the alerts each SLO raised with their outcomes, Markdown, escaped
HTML beside the alert review, and the monthly Dagster asset."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.report import (
    build_report,
    month_bounds,
    previous_month,
    rows_of,
    to_html,
    to_markdown,
    worst_burn,
    write_report,
)
from alert_jobs.families.slo.report_assets import (
    REPORT_KEY,
    SCHEDULE_NAME,
    build_report_definitions,
)
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance, write_rules

MONTH = "2026-10"
START = datetime(2026, 10, 5, tzinfo=UTC)
STEP = timedelta(minutes=10)
INCIDENT = START + timedelta(hours=20)  # 3 buckets of errors from here

RULES = """
defaults: {{receivers: [console]}}
receivers: [{{name: console, type: console}}]
quality: {{report_dir: "{report_dir}", start_date: 2026-09-01}}
checks:
  slo:
    - name: checkout
      service: "Checkout <availability>"
      objective: 99.9
      bucket: 10m
      pairs: [{{long: 1h, short: 10m, factor: 14.4, severity: page}}]
      min_events: 100
      sli: {{sql: {{database: "sqlite://", query: "SELECT 1 AS good, 1 AS total"}}}}
    - name: search
      objective: 99.5
      bucket: 10m
      pairs: [{{long: 1h, short: 10m, factor: 14.4, severity: page}}]
      sli: {{sql: {{database: "sqlite://", query: "SELECT 1 AS good, 1 AS total"}}}}
"""


def _buckets(days: int, *, bad_at: dict[datetime, float] | None = None,
             per_bucket: float = 1000.0) -> list[Bucket]:
    bad_at = bad_at or {}
    out = []
    t = START
    while t < START + timedelta(days=days):
        bad = bad_at.get(t, 0.0)
        out.append(Bucket(t, t + STEP, per_bucket - bad, per_bucket))
        t += STEP
    return out


def _scenario(timeline: Timeline) -> None:
    """checkout: two days at 1,000 events / 10 min, 30 bad events in each of 3 buckets
    (90 of 288,000: 31.25 % of a 99.9 % budget), one page acked after 4 minutes as
    actionable by alice, resolved after 40; search: two clean days, no alert."""
    store = SloBucketStore(timeline)
    bad = {INCIDENT + i * STEP: 30.0 for i in range(3)}
    assert store.append("checkout", _buckets(2, bad_at=bad)) == 288
    assert store.append("search", _buckets(2)) == 288
    policy = RulePolicy(rule="checkout", severity=Severity.CRITICAL, receivers=("console",))
    fired = INCIDENT + 2 * STEP
    obs = Observation("checkout", Status.ALERT, {}, 15.0, summary="burning")
    fp = timeline.alerts.process(obs, policy, now=fired).decision.record.fingerprint
    timeline.actions.ack(fp, by="<alice>", outcome="actionable", now=fired + 4 * MIN)
    timeline.alerts.process(Observation("checkout", Status.OK, {}, 0.5), policy,
                            now=fired + 40 * MIN)


MIN = timedelta(minutes=1)


def _rules(tmp_path: Path) -> tuple[Path, RulesFile]:
    path = write_rules(tmp_path / "alerts.yaml", RULES.format(report_dir=tmp_path / "reports"))
    return path, parse_rules(path.read_text())


def test_month_with_an_acked_page_and_an_slo_without_alerts(db_url: str,
                                                            tmp_path: Path) -> None:
    timeline = Timeline(db_url)
    _scenario(timeline)
    _, rules = _rules(tmp_path)
    report = build_report(rules, timeline, MONTH, now=datetime(2026, 11, 2, tzinfo=UTC))
    assert [s.rule for s in report.slos] == ["checkout", "search"]  # most spent first
    checkout, search = report.slos
    assert checkout.total == 288_000 and checkout.bad == 90
    assert checkout.spent == pytest.approx(90 / 288)  # 31.25 %
    assert checkout.remaining == pytest.approx(1 - 90 / 288)
    assert checkout.sli == pytest.approx(1 - 90 / 288_000)
    # worst 1 h: the 3 bad buckets inside 6 → 90 of 6,000 = 1.5 % → 15× a 0.1 % budget
    assert checkout.worst is not None and checkout.worst.rate == pytest.approx(15.0)
    assert checkout.worst.window == timedelta(hours=1)
    (alert,) = checkout.alerts
    assert alert.severity == "critical" and alert.outcome == "actionable"
    assert alert.outcome_by == "<alice>" and alert.acked
    assert alert.ack_seconds == pytest.approx(240)
    assert alert.resolve_seconds == pytest.approx(2400)
    assert search.alerts == [] and search.spent == 0.0 and search.worst is not None
    assert search.worst.rate == 0.0
    assert report.over_budget == []

    md = to_markdown(report)
    assert "# SLO error budgets 2026-10" in md
    assert "| checkout | 99.9 % | 99.969 % | 288,000 | 31.2 % | 68.8 % | 15.0× over 1 hour" in md
    assert "| search | 99.5 % | 100.000 % | 288,000 | 0.0 % | 100.0 % |" in md
    assert "no alerts |" in md and "No alerts this month." in md
    assert "| 2026-10-05 20:20 | critical |" in md
    assert "actionable (<alice>) | 4 min | 40 min |" in md


def test_other_months_and_other_rules_stay_out(sqlite_url: str, tmp_path: Path) -> None:
    timeline = Timeline(sqlite_url)
    _scenario(timeline)
    policy = RulePolicy(rule="not_an_slo", severity=Severity.CRITICAL)
    timeline.alerts.process(Observation("not_an_slo", Status.ALERT, {}, 1.0), policy,
                            now=INCIDENT)
    _, rules = _rules(tmp_path)
    september = build_report(rules, timeline, "2026-09", now=datetime(2026, 11, 2, tzinfo=UTC))
    assert [(s.rule, s.total, s.alerts, s.spent) for s in september.slos] == [
        ("checkout", 0, [], None), ("search", 0, [], None)]
    assert "no events" in to_markdown(september)
    october = build_report(rules, timeline, MONTH, now=datetime(2026, 11, 2, tzinfo=UTC))
    assert sum(len(s.alerts) for s in october.slos) == 1  # not_an_slo is not an SLO


def test_an_slo_over_budget_is_flagged(sqlite_url: str, tmp_path: Path) -> None:
    timeline = Timeline(sqlite_url)
    store = SloBucketStore(timeline)
    bad = {START + i * STEP: 400.0 for i in range(6)}  # 2,400 of 288,000 bad: 833 %
    store.append("checkout", _buckets(2, bad_at=bad))
    _, rules = _rules(tmp_path)
    report = build_report(rules, timeline, MONTH, now=datetime(2026, 11, 2, tzinfo=UTC))
    checkout = report.slos[0]
    assert checkout.spent == pytest.approx(2400 / 288) and checkout.remaining is not None
    assert checkout.remaining < 0
    assert [s.rule for s in report.over_budget] == ["checkout"]
    assert "1 over budget (checkout)" in to_markdown(report)
    assert "class='over'" in to_html(report)


def test_html_escapes_user_text_and_is_self_contained(sqlite_url: str, tmp_path: Path) -> None:
    timeline = Timeline(sqlite_url)
    _scenario(timeline)
    _, rules = _rules(tmp_path)
    written = write_report(rules, timeline, MONTH, now=datetime(2026, 11, 2, tzinfo=UTC))
    assert written.path == (tmp_path / "reports" / "slo-budget-2026-10.html").resolve()
    html = written.path.read_text()
    assert "Checkout &lt;availability&gt;" in html and "<availability>" not in html
    assert "actionable (&lt;alice&gt;)" in html and "<alice>" not in html
    assert "No alerts this month." in html  # search
    assert "<script" not in html and "src=" not in html and "<link" not in html
    assert "SELECT" not in html  # the SLI query (could name a database) is not shown
    (chart,) = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    ElementTree.fromstring(chart)  # well-formed


def test_worst_burn_needs_a_whole_window_and_enough_events() -> None:
    buckets = rows_of(_buckets(1, bad_at={START: 5.0}, per_bucket=10.0))
    # 10 events per bucket, 60 per hour: under min_events 100, nothing is judged
    assert worst_burn(buckets, timedelta(hours=1), 0.001, min_events=100) is None
    burn = worst_burn(buckets, timedelta(hours=1), 0.001, min_events=0)
    assert burn is not None and burn.ending == START + timedelta(hours=1)  # first whole hour
    assert burn.rate == pytest.approx(5 / 60 / 0.001)


def test_month_helpers_reject_bad_input() -> None:
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC),
                                       datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="expected a month like 2026-10, got 'October'"):
        month_bounds("October")
    assert previous_month(datetime(2027, 1, 1, 9, tzinfo=UTC)) == "2026-12"


def test_monthly_asset_materializes_markdown_numbers_and_html(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    _scenario(Timeline(db_url))
    path, rules = _rules(tmp_path)
    defs = build_report_definitions(rules)
    (asset,) = list(defs.assets or [])
    assert isinstance(asset, dg.AssetsDefinition)
    assert asset.key == REPORT_KEY and asset.group_names_by_key[REPORT_KEY] == "slo"
    # it reads the buckets every SLO asset stores in the timeline: downstream of it
    assert {k.to_user_string() for k in asset.dependency_keys} == {"alert_timeline"}
    resource = AlertJobsResource(rules_file=str(path), database_url=db_url)
    with in_memory_instance() as instance:
        result = dg.materialize([asset], partition_key="2026-10-01", instance=instance,
                                resources={"alert_jobs": resource},
                                selection=[REPORT_KEY])
        assert result.success
        meta = result.asset_materializations_for_node("slo_budget_report")[0].metadata
        assert meta["checkout_budget_spent_pct"].value == pytest.approx(31.25)
        assert meta["search_budget_spent_pct"].value == 0.0
        assert meta["checkout_alerts"].value == 1 and meta["search_alerts"].value == 0
        assert meta["alerts"].value == 1 and meta["slos_over_budget"].value == 0
        assert meta["checkout_coverage_pct"].value == pytest.approx(100 * 2 / 31, abs=0.01)
        assert "No alerts this month." in meta["report"].value
        assert Path(str(meta["html_report"].value)).exists()
        (schedule,) = list(defs.schedules or [])
        assert schedule.name == SCHEDULE_NAME and schedule.execution_timezone == "UTC"
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 1, 9, tzinfo=UTC))
        request = schedule(ctx)
        assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-10-01"


def test_no_slo_no_asset() -> None:
    rules = parse_rules("defaults: {receivers: [console]}\n")
    assert list(build_report_definitions(rules).assets or []) == []

