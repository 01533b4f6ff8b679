"""``alert_sessions``: who is signed in to the responder pages, and until when.

A session is a random token in an HttpOnly cookie; the table keeps only its SHA-256,
so reading the database (a backup, a replica) signs nobody in. Each session has its
own CSRF token, which every form of the pages carries. A session ends at
``expires_at`` (absolute), after ``idle`` without a request, or at sign-out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from alert_jobs.store import schema
from alert_jobs.store.db import Database, utcnow

#: How often a session's ``last_seen_at`` is written: not on every page view.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    username: str
    csrf: str
    created_at: datetime
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database):
        self.db = db

    def start(self, username: str, *, lifetime: timedelta,
              now: datetime | None = None) -> tuple[str, Session]:
        """A new session for ``username``: (the cookie's token, the session)."""
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), now, now + lifetime)
        with self.db.tx() as conn:
            conn.execute(schema.sessions.insert().values(
                token_hash=_hash(token), username=username, csrf=session.csrf,
                created_at=now, last_seen_at=now, expires_at=session.expires_at))
            # Whoever signs in sweeps the ended sessions: the table stays small.
            conn.execute(schema.sessions.delete().where(schema.sessions.c.expires_at <= now))
        return token, session

    def get(self, token: str, *, idle: timedelta,
            now: datetime | None = None) -> Session | None:
        """The live session of ``token``, or ``None`` (unknown, expired or idle too long).
        Marks it seen, at most once per :data:`TOUCH_EVERY`."""
        if not token or len(token) > 128:
            return None
        now = now or utcnow()
        t = schema.sessions
        with self.db.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.token_hash == _hash(token))).first()
        if row is None or row.expires_at <= now or row.last_seen_at + idle <= now:
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            with self.db.tx() as conn:
                conn.execute(t.update().where(t.c.token_hash == row.token_hash)
                             .values(last_seen_at=now))
        return Session(row.username, row.csrf, row.created_at, row.expires_at)

    def end(self, token: str) -> None:
        """Sign out: the token no longer works, on any server sharing the database."""
        with self.db.tx() as conn:
            conn.execute(schema.sessions.delete().where(
                schema.sessions.c.token_hash == _hash(token)))
