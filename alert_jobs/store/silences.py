"""``alert_silences``: Alertmanager's silences (label matchers between two times).

A silence mutes every alert whose labels match all its matchers while it is active;
the engine still records what it would have sent. Creating one counts as a first
response for every active alert it mutes (alert quality).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import Matcher, Silence
from alert_jobs.store import episodes, schema
from alert_jobs.store.db import Database, TimelineError, utcnow
from alert_jobs.store.events import write_event


def silence_from_row(row: Any) -> Silence:
    matchers = tuple(Matcher(name, op, value) for name, op, value in row.matchers)
    return Silence(row.id, matchers, row.starts_at, row.ends_at, row.created_by, row.comment)


_NOW = sa.bindparam("now", type_=schema.UTCDateTime())
_ACTIVE = sa.select(schema.silences).where(schema.silences.c.starts_at <= _NOW,
                                           schema.silences.c.ends_at > _NOW)


def active_silences(conn: Connection, now: datetime) -> builtins.list[Silence]:
    return [silence_from_row(r) for r in conn.execute(_ACTIVE, {"now": now})]


class SilenceNotFound(TimelineError):
    """No silence has the id given (the API answers 404)."""


def _new_silence(matchers: Sequence[Matcher], starts_at: datetime, ends_at: datetime,
                 created_by: str, comment: str, silence_id: str | None = None) -> Silence:
    if not matchers:
        raise TimelineError("a silence needs at least one matcher")
    if ends_at <= starts_at:
        raise TimelineError("silence must end after it starts")
    if not comment.strip():
        raise TimelineError("a silence needs a comment saying why")
    return Silence(silence_id or str(uuid.uuid4()), tuple(matchers), starts_at, ends_at,
                   created_by, comment)


def _insert(conn: Connection, silence: Silence, now: datetime, *, actor: str, source: str,
            run_id: str | None = None, payload: dict[str, Any] | None = None) -> None:
    conn.execute(schema.silences.insert().values(
        id=silence.id, matchers=[[m.name, m.op, m.value] for m in silence.matchers],
        starts_at=silence.starts_at, ends_at=silence.ends_at, created_by=silence.created_by,
        comment=silence.comment, created_at=now, updated_at=now,
    ))
    write_event(conn, now, "silenced", silence.describe(), actor=actor, source=source,
                run_id=run_id, payload={"silence_id": silence.id,
                                        "ends_at": silence.ends_at.isoformat(),
                                        **(payload or {})})
    episodes.on_silence(conn, silence, now)


def _end(conn: Connection, silence: Silence, now: datetime, *, by: str, source: str,
         reason: str) -> None:
    """End ``silence`` now; one not started yet starts and ends now (Alertmanager)."""
    conn.execute(schema.silences.update().where(schema.silences.c.id == silence.id)
                 .values(starts_at=min(now, silence.starts_at), ends_at=now, updated_at=now))
    write_event(conn, now, "unsilenced", reason, actor=by, source=source,
                payload={"silence_id": silence.id})


def _can_update(old: Silence, matchers: tuple[Matcher, ...], starts_at: datetime,
                ends_at: datetime, now: datetime) -> bool:
    """Whether ``old`` may become the new times in place without rewriting what it
    muted (Alertmanager's ``canUpdate``)."""
    if old.matchers != matchers or ends_at <= starts_at:
        return False
    if old.starts_at <= now < old.ends_at:  # active
        return (int(old.starts_at.timestamp()) == int(starts_at.timestamp())
                and ends_at >= now)
    if now < old.starts_at:  # pending
        return starts_at >= now
    return False  # expired


class SilenceStore:
    def __init__(self, db: Database):
        self.db = db

    def add(
        self, matchers: Sequence[Matcher], *, ends_at: datetime, created_by: str, comment: str,
        starts_at: datetime | None = None, source: str = "cli", run_id: str | None = None,
        now: datetime | None = None, actor: str | None = None,
    ) -> Silence:
        """A new silence. ``actor`` is who asked (the timeline's actor; an API caller may
        create a silence in someone else's name), ``created_by`` by default."""
        now = now or utcnow()
        silence = _new_silence(matchers, starts_at or now, ends_at, created_by, comment)
        with self.db.tx() as conn:
            _insert(conn, silence, now, actor=actor or created_by, source=source,
                    run_id=run_id)
        return silence

    def replace(
        self, silence_id: str, matchers: Sequence[Matcher], *, starts_at: datetime,
        ends_at: datetime, created_by: str, comment: str, actor: str, source: str,
        now: datetime | None = None,
    ) -> Silence:
        """Alertmanager's update of silence ``silence_id`` (exact id), in one transaction.

        When the change does not rewrite history (same matchers; an active silence keeps
        its start and still ends in the future; a pending one still starts in the
        future), the silence is changed in place and keeps its id. Otherwise the old one
        is expired (unless it already was) and a new one made, starting no earlier than
        now. :class:`SilenceNotFound` when there is no such silence."""
        now = now or utcnow()
        with self.db.tx() as conn:
            row = conn.execute(sa.select(schema.silences).where(
                schema.silences.c.id == silence_id).with_for_update()).first()
            if row is None:
                raise SilenceNotFound(f"no silence with id {silence_id!r}")
            old = silence_from_row(row)
            if _can_update(old, tuple(matchers), starts_at, ends_at, now):
                silence = _new_silence(matchers, starts_at, ends_at, created_by, comment,
                                       silence_id=old.id)
                conn.execute(schema.silences.update().where(
                    schema.silences.c.id == old.id).values(
                    starts_at=starts_at, ends_at=ends_at, created_by=created_by,
                    comment=comment, updated_at=now))
                write_event(conn, now, "silence_updated",
                            f"{silence.describe()} (updated by {actor})", actor=actor,
                            source=source, payload={"silence_id": old.id,
                                                    "starts_at": starts_at.isoformat(),
                                                    "ends_at": ends_at.isoformat()})
                episodes.on_silence(conn, silence, now)
                return silence
            silence = _new_silence(matchers, max(starts_at, now), ends_at, created_by,
                                   comment)
            if old.ends_at > now:
                _end(conn, old, now, by=actor, source=source,
                     reason=f"silence {old.id} replaced by {silence.id} by {actor}")
            _insert(conn, silence, now, actor=actor, source=source,
                    payload={"replaces": old.id})
        return silence

    def expire(self, silence_id: str, *, by: str, source: str = "cli",
               now: datetime | None = None) -> Silence:
        """End a silence now (Alertmanager's expire). Idempotent for already-ended ones.

        A silence that has not started yet starts and ends now, as in Alertmanager: it
        is over, not a zero-length silence still waiting to start."""
        now = now or utcnow()
        with self.db.tx() as conn:
            row = conn.execute(sa.select(schema.silences).where(
                schema.silences.c.id.startswith(silence_id, autoescape=True))).all()
            if not row:
                raise TimelineError(f"no silence with id {silence_id!r} "
                                    "(see `alert-jobs silences`)")
            if len(row) > 1:
                raise TimelineError(f"{silence_id!r} matches {len(row)} silences; "
                                    "give more of the id")
            silence = silence_from_row(row[0])
            if silence.ends_at > now:
                _end(conn, silence, now, by=by, source=source,
                     reason=f"silence {silence.id} expired by {by}")
        return silence

    def get(self, silence_id: str) -> Silence | None:
        """The silence with exactly this id (:meth:`expire` also takes a prefix, for
        people typing ids; a page's form names one silence and must not reach another)."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(schema.silences).where(
                schema.silences.c.id == silence_id)).first()
        return silence_from_row(row) if row else None

    def updated_at(self, silence_ids: Iterable[str]) -> dict[str, datetime]:
        """When each of these silences was last changed (Alertmanager's ``updatedAt``)."""
        ids = builtins.list(silence_ids)
        if not ids:
            return {}
        c = schema.silences.c
        with self.db.read() as conn:
            return {r.id: r.updated_at
                    for r in conn.execute(sa.select(c.id, c.updated_at).where(c.id.in_(ids)))}

    def list(self, *, include_expired: bool = False, ended_after: datetime | None = None,
             now: datetime | None = None) -> builtins.list[Silence]:
        """Silences not ended at ``now``; with ``ended_after``, also those that ended
        since then (the responder's page shows the last day's); all with
        ``include_expired``."""
        now = now or utcnow()
        query = sa.select(schema.silences).order_by(schema.silences.c.starts_at)
        if not include_expired:
            cutoff = now if ended_after is None else min(now, ended_after)
            query = query.where(schema.silences.c.ends_at > cutoff)
        with self.db.read() as conn:
            return [silence_from_row(r) for r in conn.execute(query)]
