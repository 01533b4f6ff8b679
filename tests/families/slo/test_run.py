"""One SLO evaluation end to end on a real SQLite traffic table and a real timeline:
each run reads only the new buckets (queries counted), a new SLO backfills its history
newest first within a per-run cap and resumes after it (restart-safe), a gap is
``nodata``, a source that cannot be read is that SLO's ``error`` (never a crashed run)
and the interval it missed is read at the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.core.model import Status, fingerprint
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.run import (
    evaluate,
    evaluate_batch,
    plan,
    recent_span,
)
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.store import Timeline
from tests.families.slo.slo_env import MIN, Traffic, parse, rules_file, slo_yaml, text

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)  # mid-minute: 12:00 is the last edge
EDGE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def traffic(tmp_path: Path) -> Traffic:
    t = Traffic(f"sqlite:///{tmp_path / 'app.db'}")
    t.add(EDGE - timedelta(days=1, hours=2), EDGE + timedelta(hours=1), ok=999, failed=1)
    return t


def test_a_new_slo_backfills_newest_first_within_the_cap_and_resumes(
        traffic: Traffic, db_url: str) -> None:
    rules = parse(rules_file(slo_yaml(traffic.url)))
    (rule,) = rules.rules_of(SloRule)
    # 1 day of history: the last 6 h in 1-minute buckets, the 18 h before in hours.
    assert recent_span(rule) == timedelta(hours=6)
    assert plan(rule, None, NOW).total == 360 + 18

    progress: list[tuple[str, int, int]] = []
    with traffic.queries() as seen:
        (first,) = evaluate_batch(rules, [rule], Timeline(db_url), now=NOW, max_reads=200,
                                  progress=lambda *p: progress.append(p))
    # Three chunks of 60 fit in 200 queries; the newest first: 09:00 … 12:00.
    assert len(seen) == 180
    assert seen[0] == (text(EDGE - 60 * MIN), text(EDGE - 59 * MIN))
    assert min(s for s, _ in seen) == text(EDGE - timedelta(hours=3))
    assert progress == [("checkout", 60, 378), ("checkout", 120, 378), ("checkout", 180, 378)]
    assert (first.ingest.backfilled, first.ingest.remaining) == (180, 198)
    # Its short windows are known at once: judged, not "no data" while history arrives.
    assert first.outcome.observation.status == Status.OK
    assert first.report is not None and first.report.burn[timedelta(hours=1)] == \
        pytest.approx(1.0)

    # The next run (a new process: a new Timeline) goes on where the cap stopped it.
    with traffic.queries() as seen:
        (second,) = evaluate_batch(rules, [rule], Timeline(db_url), now=NOW, max_reads=200)
    assert len(seen) == 180 + 18 and (second.ingest.read, second.ingest.remaining) == (198, 0)
    assert min(seen) == (text(EDGE - timedelta(days=1)), text(EDGE - timedelta(hours=23)))
    # Every request of the day is counted once: the stored sums are SQLite's own.
    counts = SloBucketStore(Timeline(db_url)).window_counts(
        "checkout", [timedelta(days=1), timedelta(hours=7)], end=EDGE)
    for span, c in counts.items():
        assert (c.good, c.total) == traffic.totals(EDGE - span, EDGE)
        assert c.coverage == 1.0

    # Three minutes later a run reads exactly the three new buckets.
    with traffic.queries() as seen:
        (third,) = evaluate_batch(rules, [rule], Timeline(db_url), now=NOW + 3 * MIN)
    assert seen == [(text(EDGE + i * MIN), text(EDGE + (i + 1) * MIN)) for i in range(3)]
    assert (third.ingest.read, third.ingest.backfilled) == (3, 0)
    # And a run in the same minute reads nothing at all.
    with traffic.queries() as seen:
        evaluate(rules, rule, Timeline(db_url), now=NOW + 3 * MIN, run_id="manual")
    assert seen == []


def test_older_history_is_read_in_coarse_buckets(traffic: Traffic, sqlite_url: str) -> None:
    rules = parse(rules_file(slo_yaml(traffic.url, more="backfill: 1d")))
    (rule,) = rules.rules_of(SloRule)
    evaluate_batch(rules, [rule], Timeline(sqlite_url), now=NOW)
    buckets = SloBucketStore(Timeline(sqlite_url)).series(
        "checkout", EDGE - timedelta(days=2), EDGE)
    lengths = {b.end - b.start for b in buckets}
    assert lengths == {MIN, timedelta(hours=1)}
    assert buckets[0].start == EDGE - timedelta(days=1) and buckets[-1].end == EDGE
    assert all(b.end - b.start == MIN for b in buckets if b.start >= EDGE - timedelta(hours=6))


def test_a_gap_in_the_data_is_nodata_not_a_silent_zero(tmp_path: Path, sqlite_url: str
                                                       ) -> None:
    traffic = Traffic(f"sqlite:///{tmp_path / 'app.db'}")
    traffic.add(EDGE - timedelta(days=1), EDGE - 10 * MIN)  # nothing for the last 10 min
    rules = parse(rules_file(slo_yaml(traffic.url)))
    (rule,) = rules.rules_of(SloRule)
    (done,) = evaluate_batch(rules, [rule], Timeline(sqlite_url), now=NOW)
    obs = done.outcome.observation
    assert obs.status == Status.NODATA
    assert ("cannot be judged: no data for 100 % of the last 5 min and 17 % of the last "
            "1 h. Source: SQL on sqlite:///") in obs.summary
    assert "query select" in obs.summary.lower()  # it names the query that gave nothing
    # Positive control: the same minutes with traffic are judged.
    traffic.add(EDGE - 10 * MIN, EDGE + 2 * MIN)
    SloBucketStore(Timeline(sqlite_url)).forget("checkout")
    (again,) = evaluate_batch(rules, [rule], Timeline(sqlite_url), now=NOW)
    assert again.outcome.observation.status == Status.OK


def test_a_source_error_is_the_slos_error_and_the_missed_minutes_are_read_later(
        traffic: Traffic, db_url: str) -> None:
    rules = parse(rules_file(slo_yaml(traffic.url)))
    (rule,) = rules.rules_of(SloRule)
    timeline = Timeline(db_url)
    evaluate_batch(rules, [rule], timeline, now=NOW)
    store = SloBucketStore(timeline)
    assert store.last_end("checkout") == EDGE

    with traffic.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE traffic RENAME TO traffic_moved"))
    (failed,) = evaluate_batch(rules, [rule], timeline, now=NOW + 5 * MIN)
    obs = failed.outcome.observation
    assert obs.status == Status.ERROR
    assert "Checkout availability (checkout)" in obs.summary
    assert "SQL source cannot be read" in obs.summary and "no such table: traffic" in obs.summary
    assert str(traffic.url.split("///")[1]) in obs.summary  # which database
    assert store.last_end("checkout") == EDGE  # nothing stored for the failed minutes
    assert failed.outcome.result.decision.record.state.is_active  # an alert of its own

    with traffic.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE traffic_moved RENAME TO traffic"))
    with traffic.queries() as seen:
        (back,) = evaluate_batch(rules, [rule], timeline, now=NOW + 7 * MIN)
    assert len(seen) == 7 and back.ingest.read == 7  # the 5 missed minutes and 2 new
    assert back.outcome.observation.status == Status.OK
    assert str(back.outcome.result.decision.record.state) == "resolved"


def test_unreachable_and_slow_sources_are_errors_not_crashed_runs(
        traffic: Traffic, sqlite_url: str, tmp_path: Path) -> None:
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT count(*) AS good, count(*) AS total FROM n")
    rules = parse(rules_file(
        slo_yaml("postgresql://slo:hunter2@127.0.0.1:1/app", name="down", timeout="2s"),
        slo_yaml(f"sqlite:///{tmp_path / 'slow.db'}", name="slow", query=slow, timeout="1s"),
        slo_yaml(traffic.url, name="fine")))
    done = evaluate_batch(rules, rules.rules_of(SloRule), Timeline(sqlite_url), now=NOW)
    by_name = {d.rule.name: d.outcome.observation for d in done}
    assert by_name["fine"].status == Status.OK  # the batch went on
    assert by_name["down"].status == Status.ERROR and by_name["slow"].status == Status.ERROR
    assert "(down)" in by_name["down"].summary and "127.0.0.1:1/app" in by_name["down"].summary
    assert "hunter2" not in by_name["down"].summary
    assert "timed out after 1 s" in by_name["slow"].summary


def test_labels_changed_resolve_the_old_instance(traffic: Traffic, sqlite_url: str) -> None:
    """One alert per SLO: its fingerprint is the rule name and labels; an instance whose
    labels were edited away is resolved, not left open."""
    timeline = Timeline(sqlite_url)
    with traffic.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE traffic RENAME TO gone"))
    before = parse(rules_file(slo_yaml(traffic.url, more="labels: {team: shop}")))
    (old,) = evaluate_batch(before, before.rules_of(SloRule), timeline, now=NOW)
    assert old.outcome.result.decision.record.state.is_active
    after = parse(rules_file(slo_yaml(traffic.url, more="labels: {team: checkout}")))
    evaluate_batch(after, after.rules_of(SloRule), timeline, now=NOW + MIN)
    states = {team: str(timeline.alerts.get(fingerprint("checkout", {"team": team})).state)
              for team in ("shop", "checkout")}
    assert states == {"shop": "resolved", "checkout": "firing"}


def test_an_unreachable_prometheus_is_the_slos_error(sqlite_url: str) -> None:
    """The same path for the Prometheus source: an error observation naming the SLO."""
    rules = parse("version: 1\nreceivers: [{name: console, type: console}]\n"
                  "defaults: {receivers: [console]}\nchecks:\n  slo:\n"
                  "    - name: api\n      objective: 99.5\n      period: 1d\n"
                  "      pairs: [{long: 1h, short: 5m, factor: 14.4}]\n"
                  "      sli:\n        prometheus:\n          url: http://127.0.0.1:1\n"
                  "          total: sum(increase(requests_total[{{window}}]))\n"
                  "          bad: sum(increase(errors_total[{{window}}]))\n"
                  "          query_timeout: 2s\n")
    (done,) = evaluate_batch(rules, rules.rules_of(SloRule), Timeline(sqlite_url), now=NOW)
    obs = done.outcome.observation
    assert obs.status == Status.ERROR
    assert "SLO api (api): its Prometheus source cannot be read" in obs.summary
    assert "127.0.0.1:1" in obs.summary
    assert SloBucketStore(Timeline(sqlite_url)).last_end("api") is None
