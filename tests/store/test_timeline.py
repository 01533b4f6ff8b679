"""Timeline on real SQLite and PostgreSQL: schema, persistence, actions, concurrency."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import AlertState, Matcher, Observation, Status
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import Timeline, TimelineError, migrate, schema
from tests.conftest import make_receiver

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RulePolicy(rule="dead_letters", receivers=("hook",), repeat_interval=timedelta(hours=1))


def bad(rule: str = "dead_letters", **labels: str) -> Observation:
    return Observation(rule, Status.ALERT, labels or {"team": "payments"}, 1000.0,
                       summary="Expected dead letters to be 0 in the last 30 minutes, got 1,000")


def good(rule: str = "dead_letters", **labels: str) -> Observation:
    return Observation(rule, Status.OK, labels or {"team": "payments"}, 0.0, summary="got 0")


REVISIONS = ["1: initial timeline schema", "2: redis quota samples and windows",
             "3: grouped notifications", "4: drift reference summaries", "5: heartbeats",
             "6: alert quality", "7: action link uses",
             "8: evaluations by run", "9: outbox by run", "10: slo buckets", "11: baselines",
             "12: responder pages", "13: external alerts", "14: incident records",
             "15: rules disabled for a while"]


def test_upgrade_is_idempotent(db_url: str) -> None:
    timeline = Timeline(db_url)
    assert timeline.schema_version() == 0
    assert timeline.upgrade() == REVISIONS
    assert timeline.upgrade() == []
    assert Timeline(db_url).upgrade() == []
    assert timeline.schema_version() == migrate.HEAD == len(REVISIONS)
    tables = set(sa.inspect(timeline.engine).get_table_names())
    assert {"alert_alerts", "alert_events", "alert_silences", "alert_outbox",
            "alert_evaluations"} <= tables


def test_sqlite_uses_wal_and_busy_timeout(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    with timeline.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_lifecycle_is_persisted_with_run_ids(db_url: str) -> None:
    timeline = Timeline(db_url)
    fired = timeline.alerts.process(bad(), POLICY, now=T0, run_id="run-1",
                                    message={"rule": "dead_letters"})
    assert fired.decision.record.state == AlertState.FIRING
    assert len(fired.outbox_ids) == 1
    fp = fired.decision.record.fingerprint

    acked = timeline.actions.ack(fp, by="alice", note="on it", outcome="actionable",
                                 now=T0 + timedelta(minutes=1))
    assert acked.acked_by == "alice"
    repeat = timeline.alerts.process(bad(), POLICY, now=T0 + timedelta(hours=2), run_id="run-2")
    assert repeat.outbox_ids == [], "acked alerts must not page again"

    resolved = timeline.alerts.process(good(), POLICY, now=T0 + timedelta(hours=3), run_id="run-3")
    assert resolved.decision.record.state == AlertState.RESOLVED
    assert len(resolved.outbox_ids) == 1
    record = timeline.alerts.get(fp)
    assert record is not None and record.acked_at is None, "ack ends with the incident"

    events = timeline.events.list(fingerprint=fp)
    kinds = [(e["kind"], e["run_id"]) for e in events]
    assert ("firing", "run-1") in kinds
    assert ("acked", None) in kinds
    assert ("suppressed", "run-2") in kinds
    assert ("resolved", "run-3") in kinds
    acked_event = next(e for e in events if e["kind"] == "acked")
    assert acked_event["actor"] == "alice" and acked_event["payload"]["outcome"] == "actionable"
    assert [e["run_id"] for e in timeline.events.list(run_id="run-3")] == ["run-3"] * len(
        timeline.events.list(run_id="run-3"))

    evaluations = timeline.alerts.evaluations("dead_letters")
    assert [e["status"] for e in evaluations] == ["ok", "alert", "alert"]
    assert evaluations[-1]["value"] == 1000.0 and evaluations[-1]["run_id"] == "run-1"

    outbox = timeline.outbox.rows()
    assert [o["kind"] for o in outbox] == ["firing", "resolved"]
    assert outbox[0]["payload"]["alerts"][0]["starts_at"] == T0.isoformat()
    assert outbox[1]["payload"]["alerts"][0]["ends_at"] == (T0 + timedelta(hours=3)).isoformat()


def test_state_survives_a_new_process_object(db_url: str) -> None:
    slow = RulePolicy(rule="dead_letters", for_=timedelta(minutes=10), receivers=("hook",))
    Timeline(db_url).alerts.process(bad(), slow, now=T0)
    restarted = Timeline(db_url)
    still = restarted.alerts.process(bad(), slow, now=T0 + timedelta(minutes=5))
    assert still.decision.record.state == AlertState.PENDING
    fired = restarted.alerts.process(bad(), slow, now=T0 + timedelta(minutes=10))
    assert fired.decision.record.state == AlertState.FIRING


def test_silence_from_the_database_mutes_and_expires(db_url: str) -> None:
    timeline = Timeline(db_url)
    silence = timeline.silences.add([Matcher.parse("team=~pay.*")], created_by="bob",
                                    comment="migration", ends_at=T0 + timedelta(hours=1),
                                    starts_at=T0 - timedelta(minutes=1), now=T0)
    muted = timeline.alerts.process(bad(), POLICY, now=T0)
    assert muted.outbox_ids == []
    assert muted.decision.muted_by is not None and silence.id in muted.decision.muted_by
    timeline.silences.expire(silence.id[:8], by="bob", now=T0 + timedelta(minutes=5))
    unmuted = timeline.alerts.process(bad(), POLICY, now=T0 + timedelta(minutes=6))
    assert len(unmuted.outbox_ids) == 1
    assert timeline.silences.list(now=T0 + timedelta(minutes=6)) == []
    with pytest.raises(TimelineError, match="no silence"):
        timeline.silences.expire("does-not-exist", by="bob")


def test_disable_rule_is_read_at_evaluation(db_url: str) -> None:
    timeline = Timeline(db_url)
    timeline.rule_settings.set_disabled("dead_letters", True, by="carol", now=T0)
    muted = timeline.alerts.process(bad(), POLICY, now=T0)
    assert muted.outbox_ids == [] and muted.decision.muted_by == "rule disabled"
    timeline.rule_settings.set_disabled("dead_letters", False, by="carol",
                                        now=T0 + timedelta(minutes=1))
    again = timeline.alerts.process(bad(), POLICY, now=T0 + timedelta(minutes=2))
    assert len(again.outbox_ids) == 1
    assert [e["kind"] for e in timeline.events.list(kinds=["disabled", "enabled"])] == [
        "disabled", "enabled"]


def test_snooze_and_targets(db_url: str) -> None:
    timeline = Timeline(db_url)
    fp = timeline.alerts.process(bad(), POLICY, now=T0).decision.record.fingerprint
    with pytest.raises(TimelineError, match="future"):
        timeline.actions.snooze(fp, until=T0 - timedelta(minutes=1), by="x", now=T0)
    timeline.actions.snooze(fp, until=T0 + timedelta(hours=6), by="dave", now=T0)
    assert timeline.alerts.process(bad(), POLICY, now=T0 + timedelta(hours=2)).outbox_ids == []
    assert [a.fingerprint for a in timeline.alerts.resolve_target("dead_letters")] == [fp]
    assert [a.fingerprint for a in timeline.alerts.resolve_target(fp[:6])] == [fp]
    with pytest.raises(TimelineError, match="no active alert"):
        timeline.alerts.resolve_target("nothing_like_this")


def _evaluate_in_process(url: str, hook_url: str, barrier: mp.synchronize.Barrier,
                         index: int) -> None:
    timeline = Timeline(url)
    barrier.wait(timeout=60)
    timeline.alerts.process(bad(), POLICY, run_id=f"worker-{index}",
                            message={"rule": "dead_letters"})
    hook = make_receiver("webhook", name="hook", url=hook_url, timeout="5s")
    deliver_due(timeline, {"hook": hook})


def _processes() -> mp.context.BaseContext:
    """Fresh processes, forked from a server that imported this module once: with
    ``spawn`` each of the 16 imported alert-jobs itself (1.5 s of CPU each, 50 s a run
    of this file); forked from a process without threads, they stay safe to fork."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def test_sixteen_processes_one_notification(db_url: str, http_receiver) -> None:
    """16 processes evaluate the same failing alert at the same moment → one page."""
    Timeline(db_url).upgrade()
    ctx = _processes()
    barrier = ctx.Barrier(16)
    workers = [ctx.Process(target=_evaluate_in_process,
                           args=(db_url, http_receiver.url, barrier, i)) for i in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 16

    timeline = Timeline(db_url)
    assert len(http_receiver.requests) == 1, "exactly one firing notification reached the receiver"
    assert http_receiver.requests[0].json()["status"] == "firing"
    assert [o["kind"] for o in timeline.outbox.rows()] == ["firing"]
    assert len(timeline.events.list(kinds=["firing"])) == 1
    assert len(timeline.events.list(kinds=["notification_sent"])) == 1
    assert len(timeline.alerts.evaluations("dead_letters")) == 16


def _upgrade_in_process(url: str, barrier: mp.synchronize.Barrier) -> None:
    barrier.wait(timeout=60)
    Timeline(url).upgrade()


def test_concurrent_upgrades_are_safe(db_url: str) -> None:
    ctx = _processes()
    barrier = ctx.Barrier(4)
    workers = [ctx.Process(target=_upgrade_in_process, args=(db_url, barrier)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 4
    with Timeline(db_url).engine.connect() as conn:
        versions = conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}"))
        assert versions.scalars().all() == [migrate.revision_id(migrate.HEAD)]


def test_naive_datetimes_are_refused(sqlite_url: str) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        Timeline(sqlite_url).alerts.process(bad(), POLICY, now=datetime(2026, 1, 1))


# ----- lean writes: a batch is one transaction with a few statements ------------------


def _count_statements(timeline: Timeline) -> list[str]:
    seen: list[str] = []
    sa.event.listen(timeline.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


@pytest.mark.parametrize("n", [5, 50])
def test_a_batch_costs_the_same_few_statements_whatever_its_size(db_url: str, n: int) -> None:
    """n alerts firing at once (a heartbeat tick where many go down): one transaction
    whose statement count does not grow with n; everything is still written."""
    timeline = Timeline(db_url)
    timeline.upgrade()
    timeline.alerts.process(good(queue="warm-up"), POLICY, now=T0)  # a known group route
    seen = _count_statements(timeline)
    items = [(bad(queue=f"q{i}"), POLICY, {"rule": "dead_letters"}) for i in range(n)]
    results = timeline.alerts.process_many(items, now=T0, run_id="tick")
    assert [r.decision.record.state for r in results] == [AlertState.FIRING] * n
    # the same for 5 and 50: context, alerts, episodes, events, evaluations, queue, group,
    # and the group's flush into one outbox row (measured 15 on SQLite with its BEGIN)
    assert len(seen) <= 15, seen
    assert len(timeline.events.list(kinds=["firing"], run_id="tick")) == n
    assert len(timeline.alerts.run_evaluations("tick")) == n
    with timeline.engine.connect() as conn:
        episodes = conn.execute(sa.select(schema.episodes)).all()
        queued = conn.execute(sa.select(sa.func.count()).select_from(schema.notify_queue)
                              ).scalar()
    assert len(episodes) == n and all(e.notifications == 1 for e in episodes)
    outbox = timeline.outbox.rows()
    assert queued == 0 and len(outbox) == 1, "one group message for the whole batch"
    assert len(outbox[0]["payload"]["alerts"]) == n

    seen.clear()  # a steady re-evaluation: context, lock, update, evaluation (SQLite
    timeline.alerts.process(bad(queue="q0"), POLICY, now=T0 + timedelta(minutes=1))
    # reads its row and the context with one statement: its transaction locks already)
    assert len([s for s in seen if not s.startswith("BEGIN")]) == (
        4 if timeline.lock_rows() else 3), seen


def test_overlapping_batches_never_deadlock_and_notify_once(db_url: str) -> None:
    """8 writers process overlapping batches of the same alerts, each in its own order:
    no deadlock, one firing (and one episode row) per alert."""
    import random
    import threading

    timeline = Timeline(db_url)
    timeline.upgrade()
    fps = [bad(queue=f"q{i}") for i in range(12)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait(timeout=30)
            for _ in range(5):
                batch = rng.sample(fps, 6)
                timeline.alerts.process_many([(o, POLICY, None) for o in batch], now=T0)
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    touched = {e["fingerprint"] for e in timeline.events.list(kinds=["firing"], limit=1000)}
    assert len(timeline.events.list(kinds=["firing"], limit=1000)) == len(touched) > 0
    with timeline.engine.connect() as conn:
        episodes = conn.execute(sa.select(schema.episodes.c.fingerprint)).scalars().all()
    assert sorted(episodes) == sorted(touched)
