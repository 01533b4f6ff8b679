"""``alert_outbox``: notifications waiting to be sent, claimed, and marked.

Claim-then-send (Healthchecks' pattern): a worker claims due rows for a short lease,
renews the lease of the rows it has not finished while it sends (:meth:`OutboxStore.renew`),
and marks the rows whose sends finished in batches, one short transaction each
(:meth:`OutboxStore.record`). A worker that dies
stops renewing: its rows are due again once the lease runs out (seconds, not the length
of the batch), and only a row that was sent but not yet marked is sent again: at most
one duplicate per lost lease, never a loss. Receivers get the stable ``dedup_key`` to
drop such duplicates. The unique ``(receiver, dedup_key)`` makes queuing idempotent.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.routing import Router
from alert_jobs.store import grouping, schema
from alert_jobs.store.db import Database, utcnow
from alert_jobs.store.events import write_event


@dataclass(frozen=True)
class OutboxItem:
    id: int
    receiver: str
    kind: str
    dedup_key: str
    payload: dict[str, Any]
    attempts: int
    fingerprint: str | None
    rule: str | None
    claim_token: str


@dataclass(frozen=True)
class Attempt:
    """How one send of a claimed row ended, to be recorded.

    ``error`` None: delivered (or ``skipped``: the receiver does not want it). Else a
    failed attempt, retried at ``retry_at``, or never again when ``retry_at`` is None.
    """

    item: OutboxItem
    error: str | None = None
    retry_at: datetime | None = None
    skipped: bool = False


def enqueue(db: Database, conn: Connection, now: datetime, receiver: str, fp: str | None,
            rule: str | None, kind: str, dedup_key: str, payload: dict[str, Any],
            run_id: str | None) -> int | None:
    """Insert one outbox row unless ``(receiver, dedup_key)`` is queued already."""
    stmt = db.insert_ignore(schema.outbox, ["receiver", "dedup_key"]).values(
        created_at=now, receiver=receiver, fingerprint=fp, rule=rule, kind=kind,
        dedup_key=dedup_key, payload=payload, attempts=0, next_attempt_at=now, run_id=run_id,
    ).returning(schema.outbox.c.id)
    new_id = conn.execute(stmt).scalar()
    return None if new_id is None else int(new_id)


def flush_groups(db: Database, conn: Connection, now: datetime, router: Router,
                 groups: Sequence[Any] | None = None, *, run_id: str | None = None
                 ) -> builtins.list[tuple[int, builtins.list[str]]]:
    """Turn every due notification group into one outbox row (inside ``conn``), or just
    ``groups``: due rows this transaction has locked already (see
    :func:`alert_jobs.store.grouping.queue_many`).

    The row carries the flushing run's ``run_id``: a grouped message belongs to the run
    that flushes it, which is the run that delivers it (``deliver(raised_by=...)``).
    """

    def enqueue_group(conn: Connection, now: datetime, receiver: str, rule: str | None,
                      kind: str, dedup_key: str, payload: dict[str, Any]) -> int | None:
        return enqueue(db, conn, now, receiver, None, rule, kind, dedup_key, payload,
                       run_id or payload.get("run_id"))

    out: builtins.list[tuple[int, builtins.list[str]]] = []
    if groups is None:
        groups = grouping.due_groups(conn, now, limit=1000, skip_locked=db.lock_rows())
    for group in groups:
        outbox_id, fps = grouping.flush(
            conn, group, now=now, max_alerts=router.defaults.max_alerts,
            dagster_url=router.defaults.external_url, enqueue=enqueue_group)
        if outbox_id is not None:
            out.append((outbox_id, fps))
    return out


class OutboxStore:
    def __init__(self, db: Database):
        self.db = db

    def flush_due(self, *, router: Router | None = None, now: datetime | None = None,
                  run_id: str | None = None) -> builtins.list[int]:
        """Flush every group whose timer is due into the outbox; returns the outbox ids
        (their rows carry ``run_id``: the flushing run delivers them)."""
        now = now or utcnow()
        with self.db.tx() as conn:
            flushed = flush_groups(self.db, conn, now, router or Router(), run_id=run_id)
            grouping.forget_idle(conn, now)
        return [outbox_id for outbox_id, _ in flushed]

    def groups_waiting(self, now: datetime | None = None) -> tuple[int, datetime | None]:
        """Notification groups waiting for their timer, and the first one's due time."""
        with self.db.read() as conn:
            return grouping.waiting(conn, now or utcnow())

    def enqueue(self, receiver: str, kind: str, dedup_key: str, payload: dict[str, Any], *,
                fingerprint: str | None = None, rule: str | None = None,
                run_id: str | None = None, now: datetime | None = None) -> int | None:
        """Queue one message outside an evaluation (e.g. the monthly review)."""
        with self.db.tx() as conn:
            return enqueue(self.db, conn, now or utcnow(), receiver, fingerprint, rule, kind,
                           dedup_key, payload, run_id)

    def claim_due(self, *, limit: int = 100, lease: timedelta = timedelta(minutes=2),
                  now: datetime | None = None, ids: Sequence[int] | None = None,
                  raised_by: str | None = None) -> builtins.list[OutboxItem]:
        """Claim undelivered rows that are due, for ``lease``; another worker skips them.

        With ``ids`` and/or ``raised_by``, only those rows, and rows whose ``run_id`` is
        ``raised_by`` (queued or flushed by that run): a run delivers what it raised.
        """
        now = now or utcnow()
        t = schema.outbox
        token = str(uuid.uuid4())
        due = sa.and_(
            t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now,
            sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
        )
        with self.db.tx() as conn:
            pick = sa.select(t.c.id).where(due).order_by(t.c.id).limit(limit)
            if ids is not None or raised_by is not None:
                mine: builtins.list[sa.ColumnElement[bool]] = [t.c.id.in_(list(ids or []))]
                if raised_by is not None:
                    mine.append(t.c.run_id == raised_by)
                pick = pick.where(sa.or_(*mine))
            if self.db.lock_rows():
                pick = pick.with_for_update(skip_locked=True)
            chosen = builtins.list(conn.execute(pick).scalars())
            if not chosen:
                return []
            conn.execute(t.update().where(t.c.id.in_(chosen), due)
                         .values(claimed_until=now + lease, claim_token=token))
            rows = conn.execute(sa.select(t).where(t.c.id.in_(chosen), t.c.claim_token == token)
                                .order_by(t.c.id)).all()
        return [OutboxItem(r.id, r.receiver, r.kind, r.dedup_key, dict(r.payload), r.attempts,
                           r.fingerprint, r.rule, token) for r in rows]

    def renew(self, items: Sequence[OutboxItem], *, lease: timedelta,
              now: datetime | None = None) -> set[int]:
        """Extend the lease of claimed rows still unsent; returns the ids still held.

        A row missing from the answer was marked already, or its lease ran out and
        another worker claimed it: it is that worker's to send now.
        """
        if not items:
            return set()
        now = now or utcnow()
        t = schema.outbox
        tokens: dict[str, builtins.list[int]] = {}
        for item in items:
            tokens.setdefault(item.claim_token, []).append(item.id)
        held: set[int] = set()
        with self.db.tx() as conn:
            for token, ids in tokens.items():
                mine = sa.and_(t.c.id.in_(ids), t.c.claim_token == token,
                               t.c.delivered_at.is_(None), t.c.failed_at.is_(None))
                conn.execute(t.update().where(mine).values(claimed_until=now + lease))
                held.update(conn.execute(sa.select(t.c.id).where(mine)).scalars())
        return held

    def record(self, attempts: Sequence[Attempt], *, run_id: str | None = None,
               now: datetime | None = None) -> set[int]:
        """Record finished sends in one short transaction; returns the ids recorded.

        Only rows this worker still holds are changed: a row reclaimed by another worker
        after a lost lease is that worker's to mark.
        """
        if not attempts:
            return set()
        now = now or utcnow()
        done: set[int] = set()
        delivered: dict[str, builtins.list[Attempt]] = {}
        for attempt in attempts:
            if attempt.error is None:
                delivered.setdefault(attempt.item.claim_token, []).append(attempt)
        with self.db.tx() as conn:
            events: builtins.list[dict[str, Any]] = []
            for token, group in delivered.items():
                held = _mark_delivered(conn, group, token, now=now)
                done |= held
                events += [_sent_event(a.item, run_id=run_id, now=now) for a in group
                           if a.item.id in held and not a.skipped]
            if events:
                conn.execute(schema.events.insert(), events)
            for attempt in attempts:
                if attempt.error is not None and _mark_failed(
                        conn, attempt.item, attempt.error, retry_at=attempt.retry_at,
                        run_id=run_id, now=now):
                    done.add(attempt.item.id)
        return done

    def mark_delivered(self, item: OutboxItem, *, run_id: str | None = None,
                       now: datetime | None = None, skipped: bool = False) -> None:
        """Done with a row: sent, or ``skipped`` because the receiver does not want it
        (a resolve to a receiver with send_resolved off)."""
        self.record([Attempt(item, skipped=skipped)], run_id=run_id, now=now)

    def mark_failed(self, item: OutboxItem, error: str, *, retry_at: datetime | None,
                    run_id: str | None = None, now: datetime | None = None) -> None:
        """Record a failed attempt; ``retry_at=None`` means permanent (never retried)."""
        self.record([Attempt(item, error, retry_at)], run_id=run_id, now=now)

    def rows(self, *, pending_only: bool = False) -> builtins.list[dict[str, Any]]:
        t = schema.outbox
        query = sa.select(t).order_by(t.c.id)
        if pending_only:
            query = query.where(t.c.delivered_at.is_(None), t.c.failed_at.is_(None))
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def problems(self) -> dict[str, Any]:
        """Counts and latest errors of undelivered messages, without loading the outbox."""
        t = schema.outbox
        waiting = sa.and_(t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.attempts > 0)
        failed = t.c.failed_at.is_not(None)
        out: dict[str, Any] = {}
        with self.db.read() as conn:
            for name, cond in (("retrying", waiting), ("failed", failed)):
                count = conn.execute(sa.select(sa.func.count()).select_from(t).where(cond)).scalar()
                last = conn.execute(sa.select(t.c.receiver, t.c.last_error).where(cond)
                                    .order_by(t.c.id.desc()).limit(1)).first()
                out[name] = int(count or 0)
                out[f"{name}_last_error"] = f"{last.receiver}: {last.last_error}" if last else None
        return out

    def backlog(self, now: datetime | None = None) -> dict[str, Any]:
        """Queued-but-unsent messages: how many, the oldest's age, how many are leased
        (in flight with a live worker), orphaned (leased by a worker whose lease ran out,
        e.g. one that crashed: the next delivery run takes them), and retrying."""
        now = now or utcnow()
        t = schema.outbox
        queued = sa.and_(t.c.delivered_at.is_(None), t.c.failed_at.is_(None))
        leased = sa.and_(t.c.claimed_until.is_not(None), t.c.claimed_until >= now)
        orphaned = sa.and_(t.c.claimed_until.is_not(None), t.c.claimed_until < now)
        count = sa.func.count
        query = sa.select(
            count(),
            sa.func.min(t.c.created_at),
            count().filter(leased),
            count().filter(orphaned),
            count().filter(t.c.attempts > 0),
            count().filter(sa.and_(t.c.next_attempt_at <= now, sa.not_(leased))),
        ).select_from(t).where(queued)
        with self.db.read() as conn:
            total, oldest, in_flight, stale, retrying, due = conn.execute(query).one()
        return {"queued": int(total or 0), "oldest_created_at": oldest,
                "oldest_age": (now - oldest) if oldest is not None else None,
                "leased": int(in_flight or 0), "lease_expired": int(stale or 0),
                "retrying": int(retrying or 0), "due": int(due or 0)}

    def due_count(self, now: datetime | None = None, *,
                  settle: timedelta = timedelta(0)) -> int:
        """Outbox rows due plus groups due for a flush: cheap enough for a sensor tick.

        A row whose lease ran out counts as due: its worker died (a live one renews), so
        the next delivery run must take it. A row never tried and queued less than
        ``settle`` ago is not counted: the run (or sensor tick's run) that raised it is
        about to send it, and it is that run's to send (attribution, issue #12).
        """
        now = now or utcnow()
        t, g = schema.outbox, schema.groups
        outbox_due = sa.select(sa.func.count()).select_from(t).where(
            t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now,
            sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
        if settle > timedelta(0):
            outbox_due = outbox_due.where(sa.or_(t.c.attempts > 0,
                                                 t.c.claimed_until.is_not(None),
                                                 t.c.created_at <= now - settle))
        groups_due = sa.select(sa.func.count()).select_from(g).where(g.c.next_flush_at <= now)
        with self.db.read() as conn:
            return int(conn.execute(outbox_due).scalar() or 0) + int(
                conn.execute(groups_due).scalar() or 0)


def _mark_delivered(conn: Connection, attempts: Sequence[Attempt], token: str, *,
                    now: datetime) -> set[int]:
    """Mark rows of one claim delivered in one UPDATE; the ids this claim still held."""
    t = schema.outbox
    ids = [a.item.id for a in attempts]
    held = conn.execute(t.update().where(t.c.id.in_(ids), t.c.claim_token == token).values(
        delivered_at=now, claimed_until=None, claim_token=None, attempts=t.c.attempts + 1,
        last_error=None).returning(t.c.id))
    return set(held.scalars())


def _sent_event(item: OutboxItem, *, run_id: str | None, now: datetime) -> dict[str, Any]:
    """The ``notification_sent`` event row of a delivered item (see ``write_event``)."""
    return {"at": now, "fingerprint": item.fingerprint, "rule": item.rule,
            "kind": "notification_sent", "reason": f"{item.kind} sent to {item.receiver}",
            "actor": "system", "source": "outbox", "run_id": run_id,
            "payload": {"receiver": item.receiver, "dedup_key": item.dedup_key,
                        "attempt": item.attempts + 1}}


def _mark_failed(conn: Connection, item: OutboxItem, error: str, *,
                 retry_at: datetime | None, run_id: str | None, now: datetime) -> bool:
    t = schema.outbox
    values: dict[str, Any] = {"claimed_until": None, "claim_token": None,
                              "attempts": t.c.attempts + 1, "last_error": error}
    if retry_at is None:
        values["failed_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    held = conn.execute(t.update().where(t.c.id == item.id,
                                         t.c.claim_token == item.claim_token)
                        .values(**values))
    if held.rowcount == 0:
        return False
    when = ("gave up" if retry_at is None
            else f"retry at {retry_at.isoformat(timespec='seconds')}")
    write_event(conn, now, "notification_failed",
                f"{item.kind} to {item.receiver} failed: {error}; {when}",
                fingerprint=item.fingerprint, rule=item.rule, source="outbox",
                run_id=run_id, payload={"receiver": item.receiver,
                                        "dedup_key": item.dedup_key,
                                        "attempt": item.attempts + 1,
                                        "permanent": retry_at is None})
    return True
