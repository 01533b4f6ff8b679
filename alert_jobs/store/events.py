"""``alert_events``: the append-only timeline of every decision and action.

Every store writes its events inside the transaction of the change they describe
(:func:`write_event`), so the timeline never disagrees with the state. Events made
inside a Dagster run carry its ``run_id``: the timeline links to the run, and the
run's page lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.store import rawsql, schema
from alert_jobs.store.db import Database, utcnow

#: Event kinds an evaluation writes when an alert's state changes (they carry its run).
STATE_KINDS = ("pending", "firing", "recovering", "resolved", "nodata", "error")
_INSERT = schema.events.insert()


def event_row(now: datetime, kind: str, reason: str, *, fingerprint: str | None = None,
              rule: str | None = None, actor: str = "system", source: str = "engine",
              run_id: str | None = None, payload: dict[str, Any] | None = None
              ) -> dict[str, Any]:
    """One ``alert_events`` row, for :func:`write_events`."""
    return {"at": now, "fingerprint": fingerprint, "rule": rule, "kind": kind,
            "reason": reason, "actor": actor, "source": source, "run_id": run_id,
            "payload": payload or {}}


def write_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append rows made by :func:`event_row`: one statement (an executemany) for all."""
    if not rows:
        return
    if rawsql.is_sqlite(conn):  # on the decision's hot path: see store/rawsql.py
        rawsql.INSERT_EVENT.run(conn, rows)
    else:
        conn.execute(_INSERT, list(rows))


def write_event(
    conn: Connection, now: datetime, kind: str, reason: str, *,
    fingerprint: str | None = None, rule: str | None = None, actor: str = "system",
    source: str = "engine", run_id: str | None = None, payload: dict[str, Any] | None = None,
) -> None:
    conn.execute(_INSERT, event_row(now, kind, reason, fingerprint=fingerprint, rule=rule,
                                    actor=actor, source=source, run_id=run_id,
                                    payload=payload))


class EventStore:
    """Reads of the event timeline, and events recorded outside an evaluation."""

    def __init__(self, db: Database):
        self.db = db

    def record(
        self, kind: str, reason: str, *, fingerprint: str | None = None, rule: str | None = None,
        actor: str = "system", source: str = "engine", run_id: str | None = None,
        payload: dict[str, Any] | None = None, now: datetime | None = None,
    ) -> None:
        """Append one event outside an evaluation (delivery results, admin actions)."""
        with self.db.tx() as conn:
            write_event(conn, now or utcnow(), kind, reason, fingerprint=fingerprint, rule=rule,
                        actor=actor, source=source, run_id=run_id, payload=payload)

    def list(
        self, *, rule: str | None = None, fingerprint: str | None = None,
        since: datetime | None = None, kinds: Sequence[str] = (), run_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events that match, oldest first."""
        t = schema.events
        query = sa.select(t)
        if rule:
            query = query.where(t.c.rule == rule)
        if fingerprint:
            query = query.where(t.c.fingerprint == fingerprint)
        if since:
            query = query.where(t.c.at >= since)
        if kinds:
            query = query.where(t.c.kind.in_(list(kinds)))
        if run_id:
            query = query.where(t.c.run_id == run_id)
        query = query.order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return list(reversed(rows))

    def raising_runs(self, fingerprints: Iterable[str], since: datetime) -> dict[str, str]:
        """The Dagster run that last changed each alert's state since ``since`` (the
        responder's "open the run" link): one indexed range read for any number of
        alerts, not one query each."""
        wanted = set(fingerprints)
        t = schema.events
        query = (sa.select(t.c.fingerprint, t.c.run_id)
                 .where(t.c.kind.in_(STATE_KINDS), t.c.at >= since, t.c.run_id.is_not(None))
                 .order_by(t.c.id))
        runs: dict[str, str] = {}
        with self.db.read() as conn:
            for fp, run_id in conn.execute(query):
                if fp in wanted:
                    runs[fp] = run_id
        return runs
