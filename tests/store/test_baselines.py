"""Baseline history and state on real SQLite and PostgreSQL: the read is one statement
on the indexes that returns exactly the slot's points, leaving out alerting evaluations
(but those of an adopted shift's streak), and the recent evaluations with what was
expected then; backfilled points are stored once however many runs store them; an
adopted shift keeps its factor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from alert_jobs.core.baseline import Point, Recent, Shift
from alert_jobs.store import Timeline, schema
from alert_jobs.store.baselines import BaselineState, Read, _history_sql

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)
RULE, FP, OTHER_FP = "orders_last_hour", "f" * 32, "e" * 32


def evaluation(at: datetime, value: float | None, *, status: str = "ok", rule: str = RULE,
               fp: str = FP, expected: float | None = None) -> dict[str, Any]:
    details = {} if expected is None else {"expected_value": expected}
    return {"at": at, "rule": rule, "fingerprint": fp, "status": status, "value": value,
            "expected": "", "summary": "", "state_after": "inactive", "run_id": None,
            "details": details}


def store_evaluations(timeline: Timeline, rows: list[dict[str, Any]]) -> None:
    with timeline.tx() as conn:
        conn.execute(schema.evaluations.insert(), rows)


def every_step(start: datetime, end: datetime) -> list[datetime]:
    out, at = [], start
    while at < end:
        out.append(at)
        at += STEP
    return out


@contextmanager
def statements(timeline: Timeline) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        seen.append(sql)

    sa.event.listen(timeline.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(timeline.engine, "before_cursor_execute", record)


def test_history_is_exactly_the_slot_points_in_one_statement(db_url: str) -> None:
    timeline = Timeline(db_url)
    three_weeks = every_step(T0, T0 + timedelta(days=21))
    store_evaluations(timeline, [evaluation(at, float(i)) for i, at in enumerate(three_weeks)])
    # Other instances and rules in the same times, and evaluations without a value.
    store_evaluations(timeline, [evaluation(at, -1.0, fp=OTHER_FP) for at in three_weeks[:500]]
                      + [evaluation(at, -2.0, rule="other") for at in three_weeks[:500]]
                      + [evaluation(at + timedelta(seconds=1), None) for at in three_weeks[:500]])
    # Backfilled points before the evaluations (one without a value).
    backfilled = every_step(T0 - timedelta(days=7), T0)
    assert timeline.baselines.add_points(RULE, FP, [(at, 1000.0) for at in backfilled]) == 2016
    timeline.baselines.add_points(RULE, OTHER_FP, [(at, -3.0) for at in backfilled])
    monday_noon = T0 - timedelta(days=7) + timedelta(hours=11, minutes=30)
    assert timeline.baselines.add_points(RULE, FP, [(monday_noon + timedelta(seconds=7), None)]
                                         ) == 1

    ranges = [(monday_noon + timedelta(days=7 * k), monday_noon + timedelta(days=7 * k, hours=1))
              for k in range(4)]  # Monday 11:30-12:30 of four weeks, the first backfilled
    with statements(timeline) as seen:
        points = timeline.baselines.history(RULE, FP, ranges)
    assert len(seen) == 1
    expected = [Point(at, 1000.0) for at in backfilled if ranges[0][0] <= at < ranges[0][1]]
    expected += [Point(at, float(i)) for i, at in enumerate(three_weeks)
                 if any(start <= at < end for start, end in ranges)]
    assert sorted(points, key=lambda p: p.at) == expected
    assert len(points) == 4 * 12  # [start, end): a point at the end belongs to the next slot
    assert all(p.at.tzinfo is not None for p in points)
    assert timeline.baselines.history(RULE, FP, []) == []


def test_alerting_evaluations_are_left_out_but_those_of_an_adopted_streak(db_url: str) -> None:
    timeline = Timeline(db_url)
    times = every_step(T0, T0 + timedelta(hours=2))
    ranges = [(T0, T0 + timedelta(hours=2))]
    store_evaluations(timeline, [evaluation(at, 5.0, status="alert") for at in times])
    assert timeline.baselines.history(RULE, FP, ranges) == []

    # Positive control: the same rows with status ok (or nodata, a learning value) are read.
    store_evaluations(timeline, [evaluation(at, 5.0, status="ok" if i % 2 else "nodata",
                                            fp=OTHER_FP) for i, at in enumerate(times)])
    assert len(timeline.baselines.history(RULE, OTHER_FP, ranges)) == len(times)
    assert timeline.baselines.history(RULE, FP, ranges) == []
    with timeline.tx() as conn:
        conn.execute(schema.evaluations.update().where(
            schema.evaluations.c.fingerprint == FP,
            schema.evaluations.c.at >= T0 + timedelta(hours=1)).values(status="ok"))
    assert len(timeline.baselines.history(RULE, FP, ranges)) == len(times) // 2

    # An adopted shift's streak [since, adopted_at] counts, alerting or not.
    shift = Shift(since=T0 + timedelta(minutes=30), adopted_at=T0 + timedelta(minutes=50),
                  offset=2.0)
    points = timeline.baselines.history(RULE, FP, ranges, [shift])
    assert {p.at for p in points} == {at for at in times if at >= T0 + timedelta(hours=1)
                                      or shift.since <= at <= shift.adopted_at}


def test_read_gets_the_slot_and_the_recent_evaluations_in_one_statement(
        db_url: str) -> None:
    timeline = Timeline(db_url)
    week_ago = T0 + timedelta(hours=11, minutes=30)  # Monday 11:30-12:30, a week before now
    now = week_ago + timedelta(days=7, minutes=30)
    slot = every_step(week_ago, week_ago + timedelta(hours=1))
    store_evaluations(timeline, [evaluation(at, 100.0 + i, expected=99.0)
                                 for i, at in enumerate(slot)])
    backfilled = [week_ago - timedelta(days=7) + k * STEP for k in range(12)]
    timeline.baselines.add_points(RULE, FP, [(at, 50.0) for at in backfilled])
    six_hours = every_step(now - timedelta(hours=6), now)
    rows = [evaluation(at, 200.0 + i, expected=190.0 + i, status="ok" if i % 3 else "alert")
            for i, at in enumerate(six_hours)]
    rows[5] = evaluation(six_hours[5], 7.0, status="nodata")  # learning: nothing expected
    rows[6] = evaluation(six_hours[6], None, status="error")  # no value: left out
    store_evaluations(timeline, rows)
    # Neither another instance's nor another rule's, nor evaluations before or at the end.
    store_evaluations(timeline, [evaluation(at, -1.0, fp=OTHER_FP, expected=1.0)
                                 for at in six_hours]
                      + [evaluation(at, -2.0, rule="other", expected=1.0) for at in six_hours]
                      + [evaluation(now - timedelta(hours=6, minutes=5), -3.0, expected=1.0),
                         evaluation(now, -4.0, expected=1.0)])
    ranges = [(week_ago - timedelta(days=7), week_ago - timedelta(days=7, hours=-1)),
              (week_ago, week_ago + timedelta(hours=1))]

    with statements(timeline) as seen:
        read = timeline.baselines.read(RULE, FP, ranges, recent=(now - timedelta(hours=6), now))
    assert len(seen) == 1
    assert isinstance(read, Read)
    assert sorted(read.points, key=lambda p: p.at) == (
        [Point(at, 50.0) for at in backfilled]
        + [Point(at, 100.0 + i) for i, at in enumerate(slot)])
    want = [Recent(at, 200.0 + i, 190.0 + i, i % 3 == 0) for i, at in enumerate(six_hours)]
    want[5] = Recent(six_hours[5], 7.0, None, False)
    del want[6]
    assert sorted(read.recent, key=lambda r: r.at) == want
    assert all(r.at.tzinfo is not None for r in read.recent)

    # history() is the slot part; recent() the recent part: one statement each.
    with statements(timeline) as seen:
        assert sorted(timeline.baselines.history(RULE, FP, ranges), key=lambda p: p.at) == \
            sorted(read.points, key=lambda p: p.at)
        recent = timeline.baselines.recent(RULE, FP, now - timedelta(hours=6), now)
    assert len(seen) == 2 and sorted(recent, key=lambda r: r.at) == want
    assert timeline.baselines.read(RULE, FP, []) == Read([], [])
    assert timeline.baselines.read(RULE, FP, ranges).recent == []  # not asked for


def test_the_read_uses_the_indexes(db_url: str) -> None:
    timeline = Timeline(db_url)
    # Four weeks of a rule's 5-minute evaluations, analysed as a live database has them:
    # the planner picks a range per slot only when the rule's entries are many.
    store_evaluations(timeline, [evaluation(at, 1.0) for at in
                                 every_step(T0, T0 + timedelta(days=28))])
    with timeline.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    times = {f"s{k}": T0 + timedelta(days=7 * k) for k in range(4)}
    times.update({f"e{k}": T0 + timedelta(days=7 * k, hours=1) for k in range(4)})
    times.update(a0=T0, b0=T0 + timedelta(hours=2), rs=T0 + timedelta(days=27, hours=18),
                 re=T0 + timedelta(days=28))  # distinct: equal ranges would be merged
    for recent in (False, True):
        sql = _history_sql(4, 1, timeline.dialect, recent)
        with timeline.read() as conn:
            if timeline.dialect == "sqlite":
                params = {name: at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
                          for name, at in times.items()}
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + sql, {**params, "rule": RULE, "fp": FP}))
                assert "SCAN" not in plan, plan
                # a range seek per slot range on both tables (not a seek on the key alone),
                # and one more on the evaluations for the recent part
                assert plan.count("USING INDEX ix_alert_evaluations_rule_at (rule=? AND at>? "
                                  "AND at<?)") == 4 + recent, plan
                assert plan.count("alert_baseline_points_1 (fingerprint=? AND at>? AND at<?)"
                                  ) == 4, plan
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table is scanned
                params = dict(times)
                plan = " | ".join(str(r[0]) for r in conn.exec_driver_sql(
                    "EXPLAIN " + sql, {**params, "rule": RULE, "fp": FP}))
                assert "Seq Scan" not in plan, plan
                assert "alert_baseline_points_pkey" in plan, plan
                # the slot's ranges (a BitmapOr) and the recent range, each on (rule, at)
                assert plan.count("ix_alert_evaluations_rule_at") == 4 + recent, plan
                assert plan.count("Index Cond: (((rule)::text = 'orders_last_hour'::text) "
                                  "AND (at >=") == 4 + recent, plan


def test_add_points_is_idempotent_also_for_two_runs_at_once(db_url: str) -> None:
    timeline = Timeline(db_url)
    times = every_step(T0, T0 + timedelta(days=1))
    assert timeline.baselines.add_points(RULE, FP, [(at, 1.0) for at in times[:100]]) == 100
    assert timeline.baselines.add_points(RULE, FP, [(at, 2.0) for at in times[:100]]) == 0
    assert timeline.baselines.add_points(RULE, FP, [(at, 3.0) for at in times[50:150]]) == 50
    assert timeline.baselines.add_points(RULE, FP, []) == 0

    counts: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        mine = Timeline(db_url)  # a separate engine, as a second run process has
        barrier.wait()
        counts.append(mine.baselines.add_points(RULE, FP, [(at, 4.0) for at in times]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == len(times) - 150
    stored = timeline.baselines.stored_times(FP, T0, T0 + timedelta(days=1))
    assert stored == set(times)
    points = timeline.baselines.history(RULE, FP, [(T0, T0 + timedelta(days=1))])
    assert len(points) == len(times)
    assert [p.value for p in sorted(points, key=lambda p: p.at)[:150]] == [1.0] * 100 + [3.0] * 50


def test_state_round_trip_and_upsert(db_url: str) -> None:
    timeline = Timeline(db_url)
    assert timeline.baselines.states([FP]) == {}
    first = BaselineState(FP, RULE, backfill_before=T0, backfill_done=10, backfill_total=8064)
    timeline.baselines.save(first, T0)
    assert timeline.baselines.states([FP, OTHER_FP]) == {FP: first}
    assert not first.backfill_finished
    shift = Shift(since=T0, adopted_at=T0 + timedelta(hours=2), offset=-300.5)
    scaled = Shift(since=T0 + timedelta(days=1), adopted_at=T0 + timedelta(days=1, hours=2),
                   factor=1.8)  # a shift keeps its factor (points before since × 1.8)
    second = BaselineState(FP, RULE, shifts=(shift, scaled), backfill_before=T0,
                           backfill_done=8064, backfill_total=8064)
    timeline.baselines.save(second, T0 + timedelta(hours=2))
    timeline.baselines.save(BaselineState(OTHER_FP, "other"), T0)
    states = timeline.baselines.states([FP, OTHER_FP])
    assert states[FP] == second and states[FP].backfill_finished
    assert states[OTHER_FP] == BaselineState(OTHER_FP, "other")
    many = [f"{i:032d}" for i in range(1200)]  # more than one IN list
    for fp in many[::100]:
        timeline.baselines.save(BaselineState(fp, "many"), T0)
    assert set(timeline.baselines.states(many)) == set(many[::100])
    with timeline.read() as conn:
        stored = conn.execute(sa.text("SELECT shifts FROM alert_baselines WHERE fingerprint = :f"),
                              {"f": FP}).scalar()
    assert "2026-03-02T00:00:00+00:00" in str(stored)  # ISO strings, readable in SQL

    # A shift stored before factors existed ({since, adopted_at, offset}) reads as factor 1.
    with timeline.tx() as conn:
        conn.execute(sa.update(sa.table("alert_baselines", sa.column("fingerprint"),
                                        sa.column("shifts", sa.JSON)))
                     .where(sa.column("fingerprint") == OTHER_FP)
                     .values(shifts=[{"since": "2026-03-02T00:00:00+00:00",
                                      "adopted_at": "2026-03-02T02:00:00+00:00",
                                      "offset": 5.0}]))
    assert timeline.baselines.states([OTHER_FP])[OTHER_FP].shifts == (
        Shift(since=T0, adopted_at=T0 + timedelta(hours=2), offset=5.0, factor=1.0),)


def test_recent_forget_and_trim(db_url: str) -> None:
    timeline = Timeline(db_url)
    store_evaluations(timeline, [
        evaluation(T0 - STEP, 10.0, expected=100.0),  # before the window
        evaluation(T0, 40.0, status="alert", expected=100.0),
        evaluation(T0 + STEP, 45.0, status="alert", expected=110.0),
        evaluation(T0 + 2 * STEP, None, status="error"),
        evaluation(T0 + 3 * STEP, 50.0, status="alert"),  # no expected value
        evaluation(T0 + 4 * STEP, 95.0, expected=100.0),
        evaluation(T0 + 4 * STEP, 30.0, status="alert", expected=100.0, fp=OTHER_FP),
        evaluation(T0 + 5 * STEP, 1.0, expected=1.0),  # at the end: not in [start, end)
    ])
    assert sorted(timeline.baselines.recent(RULE, FP, T0, T0 + 5 * STEP),
                  key=lambda r: r.at) == [
        Recent(T0, 40.0, 100.0, True), Recent(T0 + STEP, 45.0, 110.0, True),
        Recent(T0 + 3 * STEP, 50.0, None, True), Recent(T0 + 4 * STEP, 95.0, 100.0, False)]

    timeline.baselines.add_points(RULE, FP, [(T0 - timedelta(days=d), 1.0) for d in range(1, 30)])
    timeline.baselines.add_points("other", OTHER_FP, [(T0 - timedelta(days=40), 1.0)])
    timeline.baselines.save(BaselineState(FP, RULE), T0)
    assert timeline.baselines.trim(T0 - timedelta(days=28), limit=1) == 1
    assert timeline.baselines.trim(T0 - timedelta(days=28)) == 1
    assert timeline.baselines.trim(T0 - timedelta(days=28)) == 0
    assert timeline.baselines.forget(RULE) == 28 + 1  # points of days 1-28, the state
    assert timeline.baselines.states([FP]) == {}
    assert timeline.baselines.stored_times(FP, T0 - timedelta(days=60), T0) == set()
    assert len(timeline.alerts.evaluations(RULE)) == 8  # evaluations stay (all instances)
