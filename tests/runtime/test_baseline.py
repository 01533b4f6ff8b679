"""The baseline runtime on real timelines (SQLite and PostgreSQL) and a real SQLite source:
a backfill is bounded per call, goes on where it stopped, stores each point once and
reports a source error instead of raising; an assessment reads the slot's history and
adopts a level shift that has lasted ``adopt_after``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import Baseline
from alert_jobs.core.baseline import Settings, history_start
from alert_jobs.families.sql_metric.source import query_number
from alert_jobs.runtime.baseline import (
    BackfillProgress,
    assess_value,
    backfill,
    cadence,
    settings_of,
)
from alert_jobs.store import Timeline, schema
from tests.families.sql_metric.seasonal_source import NOW, QUERY, seasonal_db

RULE, FP = "orders_last_hour", "a" * 32
HOUR = timedelta(hours=1)
SPEC = Baseline.model_validate({"season": "hour_of_week", "history": "28d", "min_points": 3,
                                "adopt_after": "2h"})


def source(tmp_path: Path) -> tuple[str, list[tuple[datetime, datetime]]]:
    return f"sqlite:///{seasonal_db(tmp_path)}", []


def reader(url: str, calls: list[tuple[datetime, datetime]]) -> Any:
    def query(start: datetime, end: datetime) -> float | None:
        calls.append((start, end))
        return query_number(url, QUERY, window_start=start, window_end=end,
                            timeout=timedelta(seconds=10))
    return query


def test_settings_and_cadence() -> None:
    assert settings_of(SPEC) == Settings(season="hour_of_week", history=timedelta(days=28),
                                         width=3.0, min_points=3, direction="both", floor=0.0,
                                         adopt_after=timedelta(hours=2))
    assert cadence("*/5 * * * *", "UTC", NOW) == timedelta(minutes=5)
    assert cadence("0 * * * *", "Europe/Berlin", NOW) == HOUR
    # Around a DST change the ticks are local: 03:00 Berlin to 03:00 is 23 hours.
    spring = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # DST starts on 29 March
    assert cadence("0 3 * * *", "Europe/Berlin", spring) == timedelta(hours=23)


def test_progress_lines() -> None:
    assert BackfillProgress("orders_last_hour", 1000, 1000, 8064).line() == \
        "backfill orders_last_hour: 1,000 of 8,064 points (this run 1,000)"
    assert BackfillProgress("orders_last_hour", 64, 8064, 8064).line() == \
        "backfill orders_last_hour: 8,064 of 8,064 points (this run 64), done"
    failed = BackfillProgress("orders_last_hour", 12, 12, 8064,
                              failed="query on sqlite:///x.db failed: no such table: orders")
    assert failed.line() == (
        "backfill orders_last_hour: 12 of 8,064 points (this run 12); stopped by a source "
        "error: query on sqlite:///x.db failed: no such table: orders; the points so far "
        "are kept and the next run tries again")


def test_backfill_is_bounded_resumes_and_stores_each_point_once(db_url: str,
                                                               tmp_path: Path) -> None:
    timeline = Timeline(db_url)
    url, calls = source(tmp_path)
    query = reader(url, calls)
    first = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=NOW,
                     timezone="UTC", state=None, query=query, window=HOUR, max_queries=100)
    total = 28 * 24  # every hour of 4 weeks
    assert first == BackfillProgress(RULE, 100, 100, total)
    assert calls[0] == (NOW - 7 * 24 * HOUR - HOUR, NOW - 7 * 24 * HOUR)  # the slot now
    state = timeline.baselines.states([FP])[FP]
    assert (state.backfill_before, state.backfill_done, state.backfill_total) == (NOW, 100,
                                                                                   total)

    # The next run (an hour on) computes only what is missing, up to the end.
    later = NOW + HOUR
    second = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=later,
                      timezone="UTC", state=state, query=query, window=HOUR)
    assert second is not None
    assert second.done == second.total == total - 1  # the oldest hour left the history
    assert second.computed == second.total - 100 or second.computed == second.total - 99
    assert "done" in second.line()
    assert len(set(calls)) == len(calls)  # no window computed twice
    state = timeline.baselines.states([FP])[FP]
    assert state.backfill_finished and state.backfill_before == NOW
    stored = timeline.baselines.stored_times(FP, history_start(later, "hour_of_week",
                                                               SPEC.history), NOW)
    assert len(stored) == total - 1
    assert all(at < NOW and (NOW - at) % HOUR == timedelta(0) for at in stored)
    # Finished: nothing more to do, no query.
    assert backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=later,
                    timezone="UTC", state=state, query=query, window=HOUR) is None
    assert len(calls) == 100 + second.computed
    # Off in the rules: nothing.
    off = SPEC.model_copy(update={"backfill": False})
    assert backfill(timeline, rule="other", fingerprint="b" * 32, spec=off, step=HOUR,
                    now=NOW, timezone="UTC", state=None, query=query, window=HOUR) is None


def test_backfill_stops_at_its_time_budget(sqlite_url: str, tmp_path: Path) -> None:
    timeline = Timeline(sqlite_url)
    url, calls = source(tmp_path)
    ticks = iter(range(1000))
    done = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=NOW,
                    timezone="UTC", state=None, query=reader(url, calls), window=HOUR,
                    max_seconds=10, clock=lambda: float(next(ticks)))
    assert done is not None and 0 < done.computed < 20 and done.computed == len(calls)
    assert done.done == done.computed < done.total


def test_a_source_error_stops_the_backfill_keeps_the_points_and_is_reported(
        db_url: str, tmp_path: Path) -> None:
    timeline = Timeline(db_url)
    url, calls = source(tmp_path)
    real = reader(url, calls)

    def breaks_after_five(start: datetime, end: datetime) -> float | None:
        if len(calls) == 5:  # the source loses its table mid-backfill
            with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
                db.execute("ALTER TABLE orders RENAME TO orders_old")
        return real(start, end)

    done = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=NOW,
                    timezone="UTC", state=None, query=breaks_after_five, window=HOUR)
    assert done is not None and done.computed == 5 and done.done == 5
    assert done.failed is not None and "no such table: orders" in done.failed
    assert "stopped by a source error" in done.line() and "no such table" in done.line()
    state = timeline.baselines.states([FP])[FP]
    assert state.backfill_done == 5 and not state.backfill_finished
    assert len(timeline.baselines.stored_times(FP, NOW - 30 * 24 * HOUR, NOW)) == 5

    # Fixed, the next run goes on from there.
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("ALTER TABLE orders_old RENAME TO orders")
    again = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=NOW,
                     timezone="UTC", state=state, query=real, window=HOUR)
    assert again is not None and again.failed is None and again.done == again.total
    assert again.computed == again.total - 5


def test_a_rule_that_gains_a_baseline_backfills_only_before_its_first_evaluation(
        sqlite_url: str, tmp_path: Path) -> None:
    timeline = Timeline(sqlite_url)
    url, calls = source(tmp_path)
    first = NOW - 3 * 24 * HOUR
    with timeline.tx() as conn:
        conn.execute(schema.evaluations.insert(), [
            {"at": first + k * HOUR, "rule": RULE, "fingerprint": FP, "status": "ok",
             "value": 1.0, "expected": "", "summary": "", "state_after": "inactive",
             "run_id": None, "details": {}} for k in range(72)])
    done = backfill(timeline, rule=RULE, fingerprint=FP, spec=SPEC, step=HOUR, now=NOW,
                    timezone="UTC", state=None, query=reader(url, calls), window=HOUR)
    assert done is not None and done.total == 25 * 24
    assert max(end for _, end in calls) == first - HOUR
    assert timeline.baselines.states([FP])[FP].backfill_before == first


def evaluation(at: datetime, value: float, status: str, expected: float | None) -> dict[str, Any]:
    return {"at": at, "rule": RULE, "fingerprint": FP, "status": status, "value": value,
            "expected": "", "summary": "", "state_after": "firing", "run_id": None,
            "details": {} if expected is None else {"expected_value": expected}}


def test_assess_learns_then_judges_then_adopts_a_lasting_shift(db_url: str) -> None:
    timeline = Timeline(db_url)

    def judged(value: float, now: datetime = NOW, bad_since: datetime | None = None) -> Any:
        state = timeline.baselines.states([FP]).get(FP)
        return assess_value(timeline, rule=RULE, fingerprint=FP, value=value, spec=SPEC,
                            now=now, timezone="UTC", state=state, bad_since=bad_since)

    learning = judged(1000.0)
    assert learning.assessment.learning == "learning: 0 of 3 points for Tuesday 14:00"
    timeline.baselines.add_points(RULE, FP, [(NOW - k * 7 * 24 * HOUR, v) for k, v in
                                             ((1, 1000.0), (2, 1100.0), (3, 900.0),
                                              (4, 1050.0))])
    inside = judged(1000.0)
    assert inside.assessment.band is not None and inside.assessment.crossed is None
    assert inside.assessment.band.expected == 1025.0 and inside.adopted is None
    # The same slot an hour earlier holds the streak's evaluations (alerting: left out).
    with timeline.tx() as conn:
        conn.execute(schema.evaluations.insert(), [
            evaluation(NOW - 2 * HOUR, 400.0, "alert", 1000.0),
            evaluation(NOW - HOUR, 420.0, "alert", 1030.0)])
    short = judged(410.0, bad_since=NOW - HOUR)  # bad for 1h of adopt_after 2h: an alert
    assert short.assessment.crossed == "lower" and short.adopted is None
    assert timeline.baselines.states([FP]) == {}

    adopted = judged(410.0, bad_since=NOW - 2 * HOUR)
    assert adopted.adopted is not None and adopted.assessment.crossed is None
    (shift,) = adopted.adopted.shifts
    # the median of the residuals 400-1000, 420-1030 and 410-1025 (this value's)
    assert (shift.since, shift.adopted_at, shift.offset) == (NOW - 2 * HOUR, NOW, -610.0)
    assert timeline.baselines.states([FP])[FP].shifts == (shift,)
    band = adopted.assessment.band
    assert band is not None and band.expected == pytest.approx(1025.0 - 610.0)
    # The next week's same slot judges against the new level too.
    week_on = judged(430.0, now=NOW + 7 * 24 * HOUR)
    assert week_on.assessment.crossed is None and week_on.adopted is None


def test_naive_times_are_refused(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    with pytest.raises(ValueError, match="naive"):
        timeline.baselines.history(RULE, FP, [(datetime(2026, 1, 1), datetime(2026, 1, 2))])
    assert datetime(2026, 1, 1, tzinfo=UTC)  # aware ones are fine (the other tests)
