"""sql_metric rules with a learned baseline, end to end on real timelines (SQLite and
PostgreSQL) and a real SQLite source of seasonal orders: a new rule backfills on its
first run and has a band at once; a learning rule never pages; a dip fires in the
standard's words; a lasting level shift (a rule every 5 minutes) is adopted once and the
alert resolves, while a dip shorter than ``adopt_after`` is not adopted; a source
that fails during the backfill is reported and the rule is still evaluated; and a
Dagster materialization plots the band and says which bound was crossed."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import AlertState, Status, fingerprint
from alert_jobs.families.sql_metric import run as sql_run
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.definitions import CHECK_NAME, asset_key
from alert_jobs.families.sql_metric.definitions import build_definitions as sql_definitions
from alert_jobs.families.sql_metric.run import BackfillBudget, evaluate_batch
from alert_jobs.runtime.baseline import BackfillProgress
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow
from tests.conftest import in_memory_instance
from tests.families.sql_metric.seasonal_source import NOW, QUERY, seasonal_db

HOUR = timedelta(hours=1)
NAME = "orders_last_hour"
#: Hourly rule, 4 weeks of the same hour of the week: 4 points per slot, 672 to backfill.
BASELINE = "{season: hour_of_week, history: 28d, min_points: 4, floor: 100, adopt_after: 2h}"
SENTENCE = re.compile(r"Expected orders in the last hour to be about ([\d,]+) \(([\d,]+)–([\d,]+), "
                      r"from the same hour of the week over the last 4 weeks\), got ([\d,.]+)$")


def rules_file(data: Path, *, name: str = NAME, expect: str = f"{{baseline: {BASELINE}}}",
               query: str = QUERY, more: str = "", extra: str = "", window: str = "1h"
               ) -> RulesFile:
    return parse_rules(f"""
version: 1
defaults: {{receivers: [console], group_interval: 0s, schedule: "0 * * * *"}}
receivers: [{{name: console, type: console}}]
checks:
  sql_metric:
    - {{name: {name}, description: orders, database: "sqlite:///{data}", query: "{query}",
       window: {window}, expect: {expect}{', ' + more if more else ''}}}
{extra}""")


def run(rules: RulesFile, timeline: Timeline, now: datetime,
        lines: list[BackfillProgress] | None = None) -> list[Any]:
    return evaluate_batch(rules, rules.rules_of(SqlMetricRule), timeline, now=now,
                          progress=(lines.append if lines is not None else None))


def test_a_new_rule_backfills_on_its_first_run_and_has_a_band_at_once(
        db_url: str, tmp_path: Path) -> None:
    rules = rules_file(seasonal_db(tmp_path))
    timeline = Timeline(db_url)
    lines: list[BackfillProgress] = []
    (outcome,) = run(rules, timeline, NOW, lines)
    assert [p.line() for p in lines] == [
        "backfill orders_last_hour: 672 of 672 points (this run 672), done"]
    obs = outcome.observation
    assert obs.status == Status.OK and not obs.learning
    match = SENTENCE.match(obs.summary)
    assert match, obs.summary
    expected, lower, upper, seen = (float(g.replace(",", "")) for g in match.groups())
    assert lower < seen < upper and 1700 < expected < 1900
    assert obs.details["points"] == 4.0 and obs.details["crossed"] is None
    assert obs.details["lower"] < obs.details["expected_value"] < obs.details["upper"]

    # The next run has nothing left to backfill and judges from the same history.
    lines.clear()
    (again,) = run(rules, timeline, NOW + HOUR, lines)
    assert lines == [] and again.observation.status == Status.OK


def test_learning_is_nodata_that_never_pages_even_with_nodata_alert(
        db_url: str, tmp_path: Path) -> None:
    data = seasonal_db(tmp_path)
    learning = BASELINE.replace("min_points: 4", "min_points: 20, backfill: false")
    rules = rules_file(data, expect=f"{{baseline: {learning}}}", more="nodata: alert")
    timeline = Timeline(db_url)
    for k in range(3):  # three hourly runs: still learning, never an alert
        (outcome,) = run(rules, timeline, NOW + k * HOUR)
        obs = outcome.observation
        assert obs.status == Status.NODATA and obs.learning and obs.value is not None
        assert outcome.state == AlertState.INACTIVE
        assert outcome.result.outbox_ids == [] and not outcome.result.decision.notifications
    assert "(learning: 0 of 20 points for Tuesday 16:00)" in obs.summary  # other hours

    # Positive control: a fixed max crossed while learning does page.
    capped = rules_file(data, name="capped_orders",
                        expect=f"{{max: 10, baseline: {learning}}}", more="nodata: alert")
    (paged,) = run(capped, timeline, NOW)
    assert paged.observation.status == Status.ALERT
    assert paged.observation.details["crossed"] == "max"
    assert paged.state == AlertState.FIRING and len(paged.result.outbox_ids) == 1
    assert paged.observation.summary.startswith("Expected orders to be at most 10 ")


def test_a_dip_fires_in_the_standard_words(db_url: str, tmp_path: Path) -> None:
    def dip(at: datetime, n: float) -> float:
        return n * 0.25 if NOW - HOUR <= at < NOW else n

    rules = rules_file(seasonal_db(tmp_path, change=dip))
    timeline = Timeline(db_url)
    (outcome,) = run(rules, timeline, NOW)
    obs = outcome.observation
    assert obs.status == Status.ALERT and obs.details["crossed"] == "lower"
    match = SENTENCE.match(obs.summary)
    assert match, obs.summary
    expected, lower, _, seen = (float(g.replace(",", "")) for g in match.groups())
    assert seen < lower and seen == pytest.approx(expected / 4, rel=0.1)
    assert outcome.state == AlertState.FIRING and len(outcome.result.outbox_ids) == 1
    record = timeline.alerts.get(fingerprint(NAME, {}))
    assert record is not None and record.last_summary == obs.summary


#: A rule every 5 minutes on the last 5 minutes' orders (about 150 at 14:00), 2 weeks of
#: the same hour of the week: 24 points per slot, 4,032 to backfill.
FIVE_MINUTES = timedelta(minutes=5)
EVERY_5_MINUTES = ("{baseline: {season: hour_of_week, history: 14d, min_points: 20, "
                   "adopt_after: 2h}}")


def every_five_minutes(change: Any, tmp_path: Path, db_url: str, until: datetime
                       ) -> tuple[Timeline, list[tuple[datetime, Any]]]:
    """A 5-minute rule over orders altered by ``change``, run every 5 minutes from an hour
    before NOW until ``until``: each run's time and outcome."""
    rules = rules_file(seasonal_db(tmp_path, change=change), expect=EVERY_5_MINUTES,
                       window="5m", more='schedule: "*/5 * * * *"')
    timeline = Timeline(db_url)
    outcomes = []
    at = NOW - HOUR
    while at < until:
        (outcome,) = run(rules, timeline, at)
        outcomes.append((at, outcome))
        at += FIVE_MINUTES
    return timeline, outcomes


def test_a_lasting_level_shift_is_adopted_once_and_the_alert_resolves(
        db_url: str, tmp_path: Path) -> None:
    def up_from_now(at: datetime, n: float) -> float:  # 80 % more orders from NOW on
        return n * 1.8 if at >= NOW else n

    timeline, outcomes = every_five_minutes(up_from_now, tmp_path, db_url, NOW + 5 * HOUR)
    fp = fingerprint(NAME, {})
    (shift,) = timeline.baselines.states([fp])[fp].shifts  # adopted once in 5 hours
    adopted = shift.adopted_at
    # The first window with more orders ends at NOW + 5m; the sign test adopts the level
    # once most of the last 2 hours lay above what was expected (before all of them did).
    assert shift.since == NOW + FIVE_MINUTES and NOW < adopted <= NOW + 2 * HOUR + FIVE_MINUTES
    assert shift.factor == pytest.approx(1.8, rel=0.1) and shift.offset == 0.0
    states = {at: (o.observation.status, o.state) for at, o in outcomes}
    assert {states[at] for at in states if at < shift.since} == {(Status.OK,
                                                                  AlertState.INACTIVE)}
    assert {states[at][0] for at in states if shift.since <= at < adopted} == {Status.ALERT}
    assert states[adopted - FIVE_MINUTES] == (Status.ALERT, AlertState.FIRING)
    assert states[adopted] == (Status.OK, AlertState.RESOLVED)  # the resolve is sent
    # Judged at the new level from then on (more than adopt_after: no second adoption).
    assert max(states) >= adopted + 2 * HOUR
    assert {states[at][0] for at in states if at >= adopted} == {Status.OK}
    later = [o.observation for at, o in outcomes if at > adopted]
    assert all(o.details["expected_value"] == pytest.approx(o.value, rel=0.2) for o in later)
    # The streak's alerting evaluations stay what they were.
    kinds = [e["status"] for e in reversed(timeline.alerts.evaluations(NAME, limit=1000))]
    assert kinds == [states[at][0].value for at in sorted(states)]


def test_a_dip_shorter_than_adopt_after_is_not_adopted(db_url: str, tmp_path: Path) -> None:
    def an_hour_down(at: datetime, n: float) -> float:  # 60 % fewer orders for an hour
        return n * 0.4 if NOW <= at < NOW + HOUR else n

    timeline, outcomes = every_five_minutes(an_hour_down, tmp_path, db_url, NOW + 4 * HOUR)
    fp = fingerprint(NAME, {})
    assert timeline.baselines.states([fp])[fp].shifts == ()
    alerting = [at for at, o in outcomes if o.observation.status == Status.ALERT]
    assert alerting == [NOW + k * FIVE_MINUTES for k in range(1, 13)]  # windows in the dip
    assert all(o.observation.details["crossed"] == "lower" for at, o in outcomes
               if at in alerting)
    resolved = min(at for at, o in outcomes if o.state == AlertState.RESOLVED)
    assert resolved == NOW + 13 * FIVE_MINUTES  # it ended by itself, and so did the alert
    assert all(o.observation.status == Status.OK for at, o in outcomes if at > resolved)


def test_a_source_that_fails_during_the_backfill_is_reported_and_the_rule_still_evaluates(
        db_url: str, tmp_path: Path) -> None:
    cutoff = (NOW - 2 * HOUR).strftime("%Y-%m-%d %H:%M:%S")
    failing = (f"SELECT CASE WHEN :window_end < '{cutoff}' THEN abs(-9223372036854775807 - 1) "
               f"ELSE (SELECT sum(n) FROM orders WHERE at >= :window_start AND "
               f"at < :window_end) END")  # old windows fail in the database, new ones work
    rules = rules_file(seasonal_db(tmp_path), query=failing)
    timeline = Timeline(db_url)
    lines: list[BackfillProgress] = []
    (outcome,) = run(rules, timeline, NOW, lines)
    (progress,) = lines
    assert progress.failed is not None and "integer overflow" in progress.failed
    assert progress.line().startswith("backfill orders_last_hour: 0 of 672 points (this run 0)"
                                      "; stopped by a source error: query on sqlite:///")
    assert progress.line().endswith("integer overflow; the points so far are kept and the "
                                    "next run tries again")
    obs = outcome.observation
    assert obs.status == Status.NODATA and obs.learning and obs.value is not None
    assert outcome.result.outbox_ids == []
    # The next run tries again (and says so again).
    lines.clear()
    run(rules, timeline, NOW + HOUR, lines)
    assert len(lines) == 1 and lines[0].failed is not None


def test_the_batch_shares_its_backfill_budget(sqlite_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = seasonal_db(tmp_path)
    second = (f"    - {{name: orders_again, description: orders, database: \"sqlite:///{data}\", "
              f"query: \"{QUERY}\", window: 1h, expect: {{baseline: {BASELINE}}}}}")
    rules = rules_file(data, extra=second)
    monkeypatch.setattr(sql_run, "BATCH_BACKFILL_QUERIES", 150)
    lines: list[BackfillProgress] = []
    outcomes = run(rules, Timeline(sqlite_url), NOW, lines)
    assert [p.line() for p in lines] == [
        "backfill orders_last_hour: 75 of 672 points (this run 75)",
        "backfill orders_again: 75 of 672 points (this run 75)"]
    # The slot coming up is computed first: both have their band already.
    assert [o.observation.status for o in outcomes] == [Status.OK, Status.OK]


def test_budget_shares_and_deadline() -> None:
    clock = iter([0.0, 1.0, 2.0, 3.0, 100.0])
    budget = BackfillBudget(queries=1000, seconds=50, rules=40, clock=lambda: next(clock))
    assert budget.take() == (60, 30.0)  # at least a slot's worth each, at most 30 s
    budget.give_back(60)
    assert budget.take() == (60, 30.0)
    assert budget.take() == (60, 30.0)
    assert budget.take() == (0, -50.0)  # past the run's backfill time: none
    assert BackfillBudget(queries=20_000, seconds=60, rules=1).share == 1000
    assert BackfillBudget(queries=20_000, seconds=60, rules=100).share == 200


def test_materialize_plots_the_band_and_the_check_says_which_bound(
        tmp_path: Path) -> None:
    now = utcnow()

    def dip(at: datetime, n: float) -> float:
        return n * 0.25 if at >= now - HOUR - timedelta(minutes=5) else n

    data = seasonal_db(tmp_path, now=now, change=dip)
    rules_path = tmp_path / "alerts.yaml"
    rules_path.write_text(f"""
version: 1
defaults: {{receivers: [console], schedule: "0 * * * *"}}
receivers: [{{name: console, type: console}}]
checks:
  sql_metric:
    - {{name: {NAME}, description: orders, database: "sqlite:///{data}", query: "{QUERY}",
       window: 1h, expect: {{baseline: {BASELINE}}}}}
""")
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules_path), database_url=db_url)
    family = sql_definitions(parse_rules(rules_path.read_text()))
    with in_memory_instance() as instance:
        result = dg.materialize(list(family.assets or []), selection=[asset_key(NAME)],
                                instance=instance, resources={"alert_jobs": resource})
        assert result.success
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    (materialization,) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in materialization.materialization.metadata.items()}
    for key in ("value", "expected", "lower", "upper", "baseline_points", "baseline_level"):
        assert isinstance(meta[key], float), key
    assert meta["lower"] <= meta["expected"] <= meta["upper"]
    assert meta["value"] < meta["lower"] and meta["baseline_points"] == 4.0
    assert meta["status"] == "alert"
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == CHECK_NAME]
    assert not check.passed
    assert check.metadata["crossed"].value == "lower"
    assert check.description == meta["summary"]
    assert SENTENCE.match(check.description or ""), check.description
    assert any(m.startswith("backfill orders_last_hour: ") and m.endswith("points (this run "
                                                                         "672), done")
               for m in logs), logs


def test_learning_metadata_omits_the_band(tmp_path: Path) -> None:
    from alert_jobs.families.sql_metric.definitions import baseline_metadata

    assert baseline_metadata({"expected_value": None, "lower": None, "upper": None,
                              "points": None, "learning": "learning: 0 of 4 points"}) == {}
    assert baseline_metadata({"expected_value": 10, "lower": None, "upper": 12.5,
                              "points": 4.0, "level": 1.1}) == {
        "expected": 10.0, "upper": 12.5, "baseline_points": 4.0, "baseline_level": 1.1}


def test_a_batch_reads_the_states_once_and_each_rule_its_slot_once(sqlite_url: str,
                                                                    tmp_path: Path) -> None:
    import sqlalchemy as sa

    data = seasonal_db(tmp_path)
    quiet = BASELINE.replace("min_points: 4", "min_points: 4, backfill: false")
    extra = "".join(
        f"    - {{name: orders_{i}, database: \"sqlite:///{data}\", query: \"{QUERY}\", "
        f"window: 1h, expect: {{baseline: {quiet}}}}}\n" for i in range(3))
    rules = rules_file(data, expect=f"{{baseline: {quiet}}}", extra=extra)
    timeline = Timeline(sqlite_url)
    timeline.ensure_schema()
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    sa.event.listen(timeline.engine, "before_cursor_execute", record)
    try:
        outcomes = run(rules, timeline, NOW)
    finally:
        sa.event.remove(timeline.engine, "before_cursor_execute", record)
    assert len(outcomes) == 4
    assert sum("FROM alert_baselines" in sql for sql in seen) == 1
    assert sum("FROM alert_baseline_points" in sql for sql in seen) == 4
