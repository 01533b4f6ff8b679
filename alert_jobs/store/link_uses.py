"""``alert_link_uses``: an action link acts on one alert episode, once.

:func:`claim` runs inside the action's own transaction, after the alert's row is
locked (:class:`alert_jobs.store.actions.ActionStore`), and before anything changes:

1. the link must be for the alert's *current* episode (same number, same ``fired_at``)
   and, for ack and snooze, the alert must still be active — else :class:`LinkGone`
   (the page answers 410 and points at the current alert);
2. the link's row is inserted with ``ON CONFLICT DO NOTHING``; when a row was already
   there the link was used before — :class:`LinkUsed`, saying by whom and when (409).

Raising rolls the whole transaction back, so a refused link changes nothing. Two uses
at the same moment queue on the alert row's lock (``FOR UPDATE`` on PostgreSQL, the
write lock on SQLite), and the unique ``token_id`` decides regardless of timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import AlertRecord, AlertState
from alert_jobs.store import schema
from alert_jobs.store.db import Database, TimelineError

t = schema.link_uses
#: The states in which an episode is still going on. ``pending`` is not one of them: a
#: pending alert keeps the number of its last (ended) episode until it fires, so an ack
#: accepted then would mute the *next* incident before anyone was told about it.
LIVE = frozenset({AlertState.FIRING, AlertState.RECOVERING})


@dataclass(frozen=True)
class LinkUse:
    """A verified link about to act: what the server knows from its signed payload."""

    token_id: str  # digest of the signed payload (not the token)
    action: str
    episode: int
    fired_at: int  # the episode's fired_at in whole seconds since the epoch
    active_only: bool  # ack and snooze act only while the alert is active


class LinkGone(TimelineError):
    """The link's episode has ended: resolved since, or a newer episode exists."""

    def __init__(self, record: AlertRecord):
        super().__init__("this alert has resolved since; open the current one")
        self.record = record


class AlreadyDone(TimelineError):
    """What the action would do was already done: by whom and when."""

    def __init__(self, message: str, by: str, at: datetime | None):
        super().__init__(message)
        self.by, self.at = by, at


class LinkUsed(AlreadyDone):
    """This very link was used before."""


def _epoch(when: datetime | None) -> int:
    return int(when.timestamp()) if when is not None else 0


def is_current(record: AlertRecord, use: LinkUse) -> bool:
    """Whether ``use`` is for the record's current episode, and (ack, snooze) that
    episode is still going on."""
    same = record.episode == use.episode and _epoch(record.fired_at) == use.fired_at
    return same and (record.state in LIVE or not use.active_only)


def used(conn: Connection, token_id: str) -> sa.Row | None:
    return conn.execute(sa.select(t).where(t.c.token_id == token_id)).first()


def claim(conn: Connection, db: Database, record: AlertRecord, use: LinkUse, by: str,
          now: datetime) -> None:
    """Record that ``use`` acts now, or raise :class:`LinkGone` / :class:`LinkUsed`.
    Call with the alert's row locked, in the transaction that makes the change."""
    if not is_current(record, use):
        raise LinkGone(record)
    inserted = conn.execute(
        db.insert_ignore(t, ["token_id"]).values(
            token_id=use.token_id, action=use.action, fingerprint=record.fingerprint,
            episode=use.episode, used_by=by, used_at=now)
        .returning(t.c.token_id)).first()
    if inserted is None:
        row = used(conn, use.token_id)
        who, when = (row.used_by, row.used_at) if row is not None else ("someone", None)
        at = f" at {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
        raise LinkUsed(f"this link was already used by {who}{at}; nothing changed", who, when)
