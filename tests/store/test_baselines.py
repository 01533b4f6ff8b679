"""Baseline history and state on real SQLite and PostgreSQL: the slot read is one
statement on the indexes that returns exactly the slot's points, leaves out alerting
evaluations (but those of an adopted shift's streak), and backfilled points are stored
once however many runs store them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from alert_jobs.core.baseline import Point, Shift
from alert_jobs.store import Timeline, schema
from alert_jobs.store.baselines import BaselineState, _history_sql

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


def test_history_uses_the_indexes(db_url: str) -> None:
    timeline = Timeline(db_url)
    timeline.ensure_schema()
    sql = _history_sql(4, 1, timeline.dialect)
    with timeline.read() as conn:
        if timeline.dialect == "sqlite":
            params = {name: "2026-01-01 00:00:00.000000" for name in
                      ("s0", "e0", "s1", "e1", "s2", "e2", "s3", "e3", "a0", "b0")}
            plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql, {**params, "rule": RULE, "fp": FP}))
            assert "SCAN" not in plan, plan
            # a range seek per slot range on both tables, not a seek on the key alone
            assert plan.count("USING INDEX ix_alert_evaluations_rule_at (rule=? AND at>? "
                              "AND at<?)") == 4, plan
            assert plan.count("alert_baseline_points_1 (fingerprint=? AND at>? AND at<?)"
                              ) == 4, plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be scanned
            params = {name: T0 for name in
                      ("s0", "e0", "s1", "e1", "s2", "e2", "s3", "e3", "a0", "b0")}
            plan = " | ".join(str(r[0]) for r in conn.exec_driver_sql(
                "EXPLAIN " + sql, {**params, "rule": RULE, "fp": FP}))
            assert "Seq Scan" not in plan, plan
            assert "ix_alert_evaluations_rule_at" in plan and "alert_baseline_points_pkey" in plan


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
    second = BaselineState(FP, RULE, shifts=(shift,), backfill_before=T0, backfill_done=8064,
                           backfill_total=8064)
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


def test_residuals_forget_and_trim(db_url: str) -> None:
    timeline = Timeline(db_url)
    store_evaluations(timeline, [
        evaluation(T0 - STEP, 10.0, expected=100.0),  # before the streak
        evaluation(T0, 40.0, status="alert", expected=100.0),
        evaluation(T0 + STEP, 45.0, status="alert", expected=110.0),
        evaluation(T0 + 2 * STEP, None, status="error"),
        evaluation(T0 + 3 * STEP, 50.0, status="alert"),  # no expected value
        evaluation(T0 + 4 * STEP, 30.0, status="alert", expected=100.0, fp=OTHER_FP),
    ])
    assert timeline.baselines.residuals(RULE, FP, T0) == [-60.0, -65.0]

    timeline.baselines.add_points(RULE, FP, [(T0 - timedelta(days=d), 1.0) for d in range(1, 30)])
    timeline.baselines.add_points("other", OTHER_FP, [(T0 - timedelta(days=40), 1.0)])
    timeline.baselines.save(BaselineState(FP, RULE), T0)
    assert timeline.baselines.trim(T0 - timedelta(days=28), limit=1) == 1
    assert timeline.baselines.trim(T0 - timedelta(days=28)) == 1
    assert timeline.baselines.trim(T0 - timedelta(days=28)) == 0
    assert timeline.baselines.forget(RULE) == 28 + 1  # points of days 1-28, the state
    assert timeline.baselines.states([FP]) == {}
    assert timeline.baselines.stored_times(FP, T0 - timedelta(days=60), T0) == set()
    assert len(timeline.alerts.evaluations(RULE)) == 6  # evaluations stay
