"""Marks are batched: one short transaction settles many finished sends (issue #12, 5).

Real parts: SQLite and PostgreSQL, a real HTTP receiver on 127.0.0.1 that counts each
message it gets. Batching must not weaken the lease: a row another worker took over
is neither marked nor given an event by the worker that lost it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from alert_jobs.runtime.batch import RECORD_MAX
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import Attempt, Timeline, utcnow
from tests.conftest import make_receiver
from tests.runtime.test_delivery_crash import SlowReceiver, queue, serving

MESSAGES = 300


@pytest.fixture
def fast_receiver() -> Iterator[SlowReceiver]:
    yield from serving(0.0)


@contextmanager
def counted_commits(timeline: Timeline) -> Iterator[list[int]]:
    """How many transactions the timeline's engine commits meanwhile."""
    commits = [0]

    def on_commit(conn: Any) -> None:
        commits[0] += 1

    sa.event.listen(timeline.outbox.db.engine, "commit", on_commit)
    try:
        yield commits
    finally:
        sa.event.remove(timeline.outbox.db.engine, "commit", on_commit)


def test_a_batch_is_settled_in_few_transactions(db_url: str, fast_receiver: SlowReceiver
                                                ) -> None:
    timeline = Timeline(db_url)
    keys = queue(timeline, MESSAGES)
    hook = {"hook": make_receiver("webhook", name="hook", url=fast_receiver.url,
                                  timeout="10s")}
    with counted_commits(timeline) as commits:
        report = deliver_due(timeline, hook, concurrency=8)
    assert report.sent == MESSAGES
    assert all(fast_receiver.hits[k] == 1 for k in keys) and len(fast_receiver.hits) == MESSAGES
    rows = timeline.outbox.rows()
    assert all(r["delivered_at"] is not None and r["claim_token"] is None
               and r["attempts"] == 1 for r in rows)
    sent = timeline.events.list(kinds=["notification_sent"], limit=1000)
    assert sorted(e["payload"]["dedup_key"] for e in sent) == sorted(keys)
    # One claim, then at most one write per RECORD_EVERY_S (100 ms) or RECORD_MAX sends
    # (positive control of the count: one per message would be 300).
    assert commits[0] >= 2
    assert commits[0] <= 1 + MESSAGES // 5, f"{commits[0]} transactions for {MESSAGES} marks"
    timeline.dispose()


def test_one_record_settles_every_kind_of_outcome(db_url: str) -> None:
    timeline = Timeline(db_url)
    queue(timeline, 4)
    t0 = utcnow()
    sent, skipped, retry, dead = timeline.outbox.claim_due(now=t0, lease=timedelta(seconds=30))
    retry_at = t0 + timedelta(minutes=5)
    with counted_commits(timeline) as commits:
        held = timeline.outbox.record([Attempt(sent), Attempt(skipped, skipped=True),
                                       Attempt(retry, "HTTP 503", retry_at=retry_at),
                                       Attempt(dead, "HTTP 404")], run_id="run-1", now=t0)
    assert commits[0] == 1
    assert held == {sent.id, skipped.id, retry.id, dead.id}
    rows = {r["id"]: r for r in timeline.outbox.rows()}
    assert rows[sent.id]["delivered_at"] and rows[skipped.id]["delivered_at"]
    assert rows[retry.id]["delivered_at"] is None and rows[retry.id]["next_attempt_at"] == retry_at
    assert rows[dead.id]["failed_at"] is not None and rows[dead.id]["last_error"] == "HTTP 404"
    assert all(r["attempts"] == 1 and r["claim_token"] is None for r in rows.values())
    events = timeline.events.list(run_id="run-1", limit=10)
    assert sorted(e["kind"] for e in events) == ["notification_failed", "notification_failed",
                                                 "notification_sent"]  # none for the skip
    timeline.dispose()


def test_a_batch_never_marks_rows_another_worker_took_over(db_url: str) -> None:
    """The crash/lease case: this worker stalled past its lease, another claimed part of
    its rows (its own claim token). One batched record of everything this worker sent
    marks only what it still holds; the rest is the other worker's, unmarked, no event."""
    timeline, other = Timeline(db_url), Timeline(db_url)
    queue(timeline, 6)
    t0 = utcnow()
    mine = timeline.outbox.claim_due(now=t0, lease=timedelta(seconds=5))
    later = t0 + timedelta(seconds=30)
    # The other worker takes the first three once the lease ran out (ids= scope).
    theirs = other.outbox.claim_due(now=later, lease=timedelta(seconds=30),
                                    ids=[i.id for i in mine[:3]])
    assert [i.id for i in theirs] == [i.id for i in mine[:3]]
    held = timeline.outbox.record([Attempt(i) for i in mine], run_id="stalled", now=later)
    assert held == {i.id for i in mine[3:]}
    rows = {r["id"]: r for r in timeline.outbox.rows()}
    assert all(rows[i.id]["delivered_at"] is None and rows[i.id]["claim_token"] ==
               theirs[0].claim_token for i in mine[:3])
    assert all(rows[i.id]["delivered_at"] is not None for i in mine[3:])
    stalled = timeline.events.list(run_id="stalled", limit=20)
    assert sorted(e["payload"]["dedup_key"] for e in stalled) == sorted(i.dedup_key
                                                                        for i in mine[3:])
    # Positive control: the worker holding them now marks them, once.
    assert other.outbox.record([Attempt(i) for i in theirs], run_id="rescuer",
                               now=later) == {i.id for i in theirs}
    assert all(r["delivered_at"] is not None for r in timeline.outbox.rows())
    assert len(timeline.events.list(kinds=["notification_sent"], limit=20)) == 6
    timeline.dispose()
    other.dispose()


def test_record_max_bounds_one_write(db_url: str, fast_receiver: SlowReceiver) -> None:
    """A write settles at most RECORD_MAX sends, so a big batch stays short writes."""
    timeline = Timeline(db_url)
    sizes: list[int] = []
    record = timeline.outbox.record

    def spy(attempts: Any, **kwargs: Any) -> set[int]:
        sizes.append(len(attempts))
        return record(attempts, **kwargs)

    timeline.outbox.record = spy  # type: ignore[method-assign]
    queue(timeline, RECORD_MAX + 50)
    hook = {"hook": make_receiver("webhook", name="hook", url=fast_receiver.url,
                                  timeout="10s")}
    assert deliver_due(timeline, hook, concurrency=4).sent == RECORD_MAX + 50
    assert sum(sizes) == RECORD_MAX + 50 and max(sizes) <= RECORD_MAX
    timeline.dispose()


def test_receiver_url_never_logged(sqlite_url: str, fast_receiver: SlowReceiver,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs each request's URL at INFO; a receiver's URL is a secret."""
    timeline = Timeline(sqlite_url)
    queue(timeline, 3)
    secret_url = f"{fast_receiver.url}/s3cr3t-path-token"
    hook = {"hook": make_receiver("webhook", name="hook", url=secret_url, timeout="10s")}
    with caplog.at_level(logging.DEBUG):
        assert deliver_due(timeline, hook).sent == 3
    assert "s3cr3t" not in caplog.text
    assert "delivered hook:m:0000 to hook" in caplog.text  # positive control: logs captured
    timeline.dispose()
