"""The baseline runtime on real timelines (SQLite and PostgreSQL) and a real SQLite source:
a backfill is bounded per call, goes on where it stopped, stores each point once and
reports a source error instead of raising; an assessment reads the slot's history and
the last hours in one statement, judges at today's level, keeps a Poisson floor for
counts, and adopts a level shift once the last ``adopt_after`` lay on its side (once per
``adopt_after``), but not a dip shorter than that."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alert_jobs.config import Baseline
from alert_jobs.core import baseline as core
from alert_jobs.core.baseline import Settings, history_start
from alert_jobs.families.sql_metric.source import query_number
from alert_jobs.runtime.baseline import (
    BackfillProgress,
    assess_value,
    backfill,
    cadence,
)
from alert_jobs.store import Timeline, schema
from tests.families.sql_metric.seasonal_source import NOW, QUERY, seasonal_db

RULE, FP = "orders_last_hour", "a" * 32
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
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
    assert SPEC.settings() == Settings(season="hour_of_week", history=timedelta(days=28),
                                         width=4.0, min_points=3, direction="both", floor=0.0,
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


STEP = MINUTE * 5
WEEK = 7 * 24 * HOUR


def evaluation(at: datetime, value: float, status: str, expected: float | None,
               fp: str = FP) -> dict[str, Any]:
    return {"at": at, "rule": RULE, "fingerprint": fp, "status": status, "value": value,
            "expected": "", "summary": "", "state_after": "firing", "run_id": None,
            "details": {} if expected is None else {"expected_value": expected}}


def steady(k: int, level: float = 1000.25) -> float:
    """A steady metric: alternately 1 % above and below ``level`` (never a whole number,
    so no Poisson floor), so an ordinary stretch lies half on each side of expected."""
    return level * (1.01 if k % 2 else 0.99)


def fill_slots(timeline: Timeline, start: datetime, end: datetime, fp: str = FP,
               value: Any = steady) -> None:
    """Backfilled points every 5 minutes in ``[start, end)`` of each of the 4 past weeks."""
    points = []
    for week in range(1, 5):
        at, k = start - week * WEEK - HOUR, 0  # the slots' half hours around the edges
        while at < end - week * WEEK + HOUR:
            points.append((at, value(k)))
            at, k = at + STEP, k + 1
    timeline.baselines.add_points(RULE, fp, points)


def judge(timeline: Timeline, value: float, now: datetime, spec: Baseline = SPEC,
          fp: str = FP, *, record: bool = True) -> Any:
    """One evaluation as the engine makes it: assess, then store the evaluation with its
    status (alert when the baseline is crossed) and the assessment's details."""
    state = timeline.baselines.states([fp]).get(fp)
    judged = assess_value(timeline, rule=RULE, fingerprint=fp, value=value, spec=spec,
                          now=now, timezone="UTC", state=state)
    if record:
        a = judged.assessment
        status = "nodata" if a.learning else "alert" if a.is_alert else "ok"
        row = evaluation(now, value, status, None, fp)
        row["details"] = core.details(a)
        with timeline.tx() as conn:
            conn.execute(schema.evaluations.insert(), row)
    return judged


def test_assess_learns_then_judges_from_one_statement(db_url: str) -> None:
    timeline = Timeline(db_url)
    learning = judge(timeline, 1000.0, NOW, record=False)
    assert learning.assessment.learning == "learning: 0 of 3 points for Tuesday 14:00"
    assert learning.assessment.band is None and learning.adopted is None
    timeline.baselines.add_points(RULE, FP, [(NOW - k * WEEK, v) for k, v in
                                             ((1, 1000.5), (2, 1100.5), (3, 900.5),
                                              (4, 1050.5))])
    seen: list[str] = []
    sa.event.listen(timeline.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    inside = assess_value(timeline, rule=RULE, fingerprint=FP, value=1000.0, spec=SPEC,
                          now=NOW, timezone="UTC", state=None)
    assert len(seen) == 1, seen  # the slot and the last 6 hours: one statement
    band = inside.assessment.band
    assert band is not None and inside.assessment.crossed is None and inside.adopted is None
    assert band.expected == 1025.5 and band.points == 4 and band.level == 1.0


def test_today_level_lifts_the_band_once_the_last_six_hours_show_it(db_url: str) -> None:
    timeline = Timeline(db_url)
    for fp in (FP, "b" * 32, "c" * 32, "d" * 32):
        fill_slots(timeline, NOW, NOW + HOUR, fp)
    today = NOW - core.RECENT  # a day 20 % above its slot's weeks, for the last 6 hours
    recent = [today + k * STEP for k in range(72)]
    with timeline.tx() as conn:
        conn.execute(schema.evaluations.insert(), [
            evaluation(at, steady(k, 1200.3), "ok", steady(k + 1)) for k, at in enumerate(recent)])
        # the same day, but every evaluation of it alerted: not a level to learn from
        conn.execute(schema.evaluations.insert(), [
            evaluation(at, steady(k, 1200.3), "alert", 1000.25, "c" * 32)
            for k, at in enumerate(recent)])
        # too few evaluations to say what today is like (5 of RECENT_MIN 6)
        conn.execute(schema.evaluations.insert(), [
            evaluation(at, steady(k, 1200.3), "ok", 1000.25, "d" * 32)
            for k, at in enumerate(recent[-5:])])

    lifted = judge(timeline, 1200.3, NOW, record=False).assessment
    assert lifted.band is not None and lifted.crossed is None
    assert lifted.band.level == pytest.approx(1.2, rel=0.01)
    assert lifted.band.expected == pytest.approx(1200.3, rel=0.01)
    assert core.details(lifted)["level"] == lifted.band.level
    # Positive controls: the same value without those evaluations is an alert (judged
    # without adoption: a day that alerted for 6 hours would be adopted as a new level) …
    never = SPEC.model_copy(update={"adopt_after": None})
    for fp in ("b" * 32, "c" * 32, "d" * 32):
        plain = judge(timeline, 1200.3, NOW, never, fp, record=False).assessment
        assert plain.band is not None and plain.band.level == 1.0, fp
        assert plain.crossed == "upper" and plain.band.expected == pytest.approx(1000.25), fp
    # … and so is a value 20 % above today's level.
    above = judge(timeline, 1.2 * 1200.3, NOW, never, record=False).assessment
    assert above.crossed == "upper"


def test_a_count_slot_whose_weeks_agreed_does_not_page_on_a_poisson_wobble(
        db_url: str) -> None:
    timeline = Timeline(db_url)
    exact, fractional = "b" * 32, "c" * 32
    fill_slots(timeline, NOW, NOW + HOUR, exact, value=lambda k: 100.0)  # 48 × exactly 100
    fill_slots(timeline, NOW, NOW + HOUR, fractional, value=lambda k: 100.5)
    wobble = judge(timeline, 100.0 + 10.0, NOW, fp=exact, record=False).assessment  # + √100
    assert wobble.band is not None and wobble.band.points == 48
    assert wobble.crossed is None and wobble.band.spread == 10.0
    assert judge(timeline, 100.0 - 10.0, NOW, fp=exact, record=False).assessment.crossed is None
    # Positive controls: five √expected away pages; a slot that is not counts has no floor.
    assert judge(timeline, 150.0, NOW, fp=exact, record=False).assessment.crossed == "upper"
    measured = judge(timeline, 100.5 + 10.0, NOW, fp=fractional, record=False).assessment
    assert measured.band is not None and measured.band.spread == 0.0
    assert measured.crossed == "upper"


def test_a_lasting_shift_is_adopted_once_per_adopt_after(db_url: str) -> None:
    timeline = Timeline(db_url)
    start, end = NOW - 3 * HOUR, NOW + 7 * HOUR
    fill_slots(timeline, start, end)
    seen: list[tuple[datetime, Any]] = []
    at, k, second_jump = start, 0, None
    while at < end:
        level = 1000.25 if at < NOW else 1800.45  # ×1.8 from NOW on
        state = timeline.baselines.states([FP]).get(FP)
        adopted_at = state.shifts[0].adopted_at if state and state.shifts else None
        if adopted_at is not None and at >= adopted_at + 15 * MINUTE:
            second_jump = second_jump or at
            level *= 1.5  # soon after the adoption the level moves again
        seen.append((at, judge(timeline, steady(k, level), at)))
        at, k = at + STEP, k + 1

    def status(judged: Any) -> str:
        return "alert" if judged.assessment.is_alert else "ok"

    adoptions = [(at, j.adopted) for at, j in seen if j.adopted is not None]
    assert len(adoptions) == 2, [(at, j.assessment.crossed) for at, j in seen]
    (first_at, first), (again_at, again) = adoptions
    # Adopted once the last 2 hours lay above (the sign test), before they all did.
    assert NOW < first_at <= NOW + 2 * HOUR
    (shift,) = first.shifts
    assert shift.since == NOW and shift.adopted_at == first_at
    assert shift.factor == pytest.approx(1.8, rel=0.02) and shift.offset == 0.0
    assert timeline.baselines.states([FP])[FP].shifts[0] == shift  # stored with its factor
    # Everything from NOW alerted until the adoption, which judged this value inside.
    assert {status(j) for at, j in seen if at < NOW} == {"ok"}
    assert {status(j) for at, j in seen if NOW <= at < first_at} == {"alert"}
    first_band = dict(seen)[first_at].assessment.band
    assert first_band is not None and first_band.expected == pytest.approx(1800.45, rel=0.03)
    assert {status(j) for at, j in seen if first_at <= at < second_jump} == {"ok"}
    # The second move alerts and lies on its side at once, but is not adopted within
    # adopt_after of the first adoption …
    assert second_jump == first_at + 15 * MINUTE
    assert {status(j) for at, j in seen if second_jump <= at < again_at} == {"alert"}
    assert again_at == first_at + 2 * HOUR  # … and is, as soon as that has passed
    assert again.shifts[0] == shift and again.shifts[1].since == second_jump
    assert again.shifts[1].factor == pytest.approx(1.5, rel=0.04)
    assert {status(j) for at, j in seen if at >= again_at} == {"ok"}


def test_a_dip_shorter_than_adopt_after_is_not_adopted(db_url: str) -> None:
    timeline = Timeline(db_url)
    start, end = NOW - 3 * HOUR, NOW + 4 * HOUR
    fill_slots(timeline, start, end)
    seen: list[tuple[datetime, Any]] = []
    at, k = start, 0
    while at < end:
        dip = NOW <= at < NOW + HOUR  # an hour at 40 %
        seen.append((at, judge(timeline, steady(k, 400.1 if dip else 1000.25), at)))
        at, k = at + STEP, k + 1
    assert [at for at, j in seen if j.assessment.crossed == "lower"] == [
        NOW + k * STEP for k in range(12)]
    assert all(j.assessment.crossed is None for at, j in seen if not NOW <= at < NOW + HOUR)
    assert all(j.adopted is None for _, j in seen)
    assert timeline.baselines.states([FP]) == {}
    # The baseline did not learn the dip: after it, the band is where it was.
    after = seen[-1][1].assessment.band
    assert after is not None and after.expected == pytest.approx(1000.25, rel=0.01)


def test_naive_times_are_refused(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    with pytest.raises(ValueError, match="naive"):
        timeline.baselines.history(RULE, FP, [(datetime(2026, 1, 1), datetime(2026, 1, 2))])
    assert datetime(2026, 1, 1, tzinfo=UTC)  # aware ones are fine (the other tests)
