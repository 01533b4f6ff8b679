"""``alert_silences``: Alertmanager's silences (label matchers between two times).

A silence mutes every alert whose labels match all its matchers while it is active;
the engine still records what it would have sent. Creating one counts as a first
response for every active alert it mutes (alert quality).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
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


class SilenceStore:
    def __init__(self, db: Database):
        self.db = db

    def add(
        self, matchers: Sequence[Matcher], *, ends_at: datetime, created_by: str, comment: str,
        starts_at: datetime | None = None, source: str = "cli", run_id: str | None = None,
        now: datetime | None = None,
    ) -> Silence:
        now = now or utcnow()
        starts_at = starts_at or now
        if not matchers:
            raise TimelineError("a silence needs at least one matcher")
        if ends_at <= starts_at:
            raise TimelineError("silence must end after it starts")
        if not comment.strip():
            raise TimelineError("a silence needs a comment saying why")
        silence = Silence(str(uuid.uuid4()), tuple(matchers), starts_at, ends_at, created_by,
                          comment)
        with self.db.tx() as conn:
            conn.execute(schema.silences.insert().values(
                id=silence.id, matchers=[[m.name, m.op, m.value] for m in matchers],
                starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment,
                created_at=now, updated_at=now,
            ))
            write_event(conn, now, "silenced", silence.describe(), actor=created_by,
                        source=source, run_id=run_id,
                        payload={"silence_id": silence.id, "ends_at": ends_at.isoformat()})
            episodes.on_silence(conn, silence, now)
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
                conn.execute(schema.silences.update().where(schema.silences.c.id == silence.id)
                             .values(starts_at=min(now, silence.starts_at), ends_at=now,
                                     updated_at=now))
                write_event(conn, now, "unsilenced", f"silence {silence.id} expired by {by}",
                            actor=by, source=source, payload={"silence_id": silence.id})
        return silence

    def get(self, silence_id: str) -> Silence | None:
        """The silence with exactly this id (:meth:`expire` also takes a prefix, for
        people typing ids; a page's form names one silence and must not reach another)."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(schema.silences).where(
                schema.silences.c.id == silence_id)).first()
        return silence_from_row(row) if row else None

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
