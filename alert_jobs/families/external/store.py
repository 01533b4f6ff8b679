"""``alert_external_alerts``: the pushed alerts still open, with their ``endsAt``.

One row per Alertmanager alert (all its labels, severity included: ``key``), grouped by
our alert instance (``fingerprint``). A row lives from the first push that fires it to
the decision that resolves it (a push with a past ``endsAt``, or the sweep once
``ends_at`` has passed): resolved alerts are forgotten, so the resolved alerts Prometheus
keeps re-sending for a while find no row and change nothing. ``ends_at`` is indexed: the
sweep reads only the rows past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import Severity
from alert_jobs.families.external.check import Stored
from alert_jobs.store import Timeline, schema
from alert_jobs.store.db import upsert

external_alerts = sa.Table(
    "alert_external_alerts",
    schema.metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("fingerprint", sa.String(32), nullable=False, index=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("severity_label", sa.Text),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("generator_url", sa.Text, nullable=False, default=""),
    sa.Column("starts_at", schema.UTCDateTime, nullable=False),
    sa.Column("ends_at", schema.UTCDateTime, nullable=False, index=True),
    sa.Column("timeout", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", schema.UTCDateTime, nullable=False),
    sa.Column("pushed_by", sa.String(128), nullable=False, default=""),
)

#: The PostgreSQL advisory lock pushes take turns on (see :meth:`ExternalStore.push`).
PUSH_LOCK = 7438219
#: Keys per ``IN (…)`` list: well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _row(s: Stored) -> dict[str, Any]:
    return {"key": s.key, "fingerprint": s.fingerprint, "rule": s.rule, "labels": s.labels,
            "severity": str(s.severity), "severity_label": s.severity_label,
            "annotations": s.annotations, "generator_url": s.generator_url,
            "starts_at": s.starts_at, "ends_at": s.ends_at, "timeout": s.timeout,
            "updated_at": s.updated_at, "pushed_by": s.pushed_by}


def _stored(row: Any) -> Stored:
    m = row._mapping
    return Stored(m["key"], m["fingerprint"], m["rule"], dict(m["labels"]),
                  Severity(m["severity"]), m["severity_label"], dict(m["annotations"]),
                  m["generator_url"], m["starts_at"], m["ends_at"], bool(m["timeout"]),
                  m["updated_at"], m["pushed_by"])


def _upsert(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` every other column."""
    return upsert(dialect, external_alerts, "key")


class ExternalStore:
    """Reads and writes of the open pushed alerts."""

    def __init__(self, timeline: Timeline):
        self.timeline = timeline

    def of_fingerprints(self, conn: Connection, fingerprints: Iterable[str]
                        ) -> dict[str, list[Stored]]:
        """Every kept alert of these alert instances, by fingerprint."""
        t = external_alerts
        out: dict[str, list[Stored]] = {}
        for part in _chunks(sorted(set(fingerprints))):
            for r in conn.execute(sa.select(t).where(t.c.fingerprint.in_(part))):
                out.setdefault(r.fingerprint, []).append(_stored(r))
        return out

    def upsert(self, conn: Connection, rows: Sequence[Stored]) -> None:
        if rows:
            conn.execute(_upsert(conn.dialect.name), [_row(s) for s in rows])

    def push(self, merge: Callable[[dict[str, list[Stored]]], list[Stored]],
             fingerprints: Iterable[str]) -> dict[str, list[Stored]]:
        """One push's writes in one transaction: read the kept alerts of these alert
        instances, let ``merge(kept)`` return the rows to write, write them; returns every
        kept alert of each instance after the push (what the engine decides it from)."""
        with self.timeline.tx() as conn:
            if self.timeline.lock_rows():
                # Pushes (an HA pair of Prometheus sends the same alerts at once) take
                # turns here: a read-merge-write of overlapping rows must not interleave,
                # and one lock cannot deadlock. SQLite's BEGIN IMMEDIATE does the same.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUSH_LOCK})
            kept = self.of_fingerprints(conn, fingerprints)
            rows = sorted(merge(kept), key=lambda s: s.key)
            self.upsert(conn, rows)
        after = {fp: {s.key: s for s in alerts} for fp, alerts in kept.items()}
        for s in rows:
            after.setdefault(s.fingerprint, {})[s.key] = s
        return {fp: list(alerts.values()) for fp, alerts in after.items()}

    def kept(self, fingerprints: Iterable[str]) -> dict[str, list[Stored]]:
        with self.timeline.read() as conn:
            return self.of_fingerprints(conn, fingerprints)

    def ended_fingerprints(self, now: datetime, limit: int = 10_000) -> list[str]:
        """Alert instances with an alert past its ``endsAt`` (the sweep's work)."""
        t = external_alerts
        with self.timeline.read() as conn:
            return sorted({r.fingerprint for r in conn.execute(
                sa.select(t.c.fingerprint).where(t.c.ends_at <= now).limit(limit))})

    def forget(self, keys: Sequence[str], now: datetime) -> int:
        """Delete the alerts of ``keys`` that have still ended at ``now`` (a push that
        fired one again meanwhile keeps it)."""
        t = external_alerts
        gone = 0
        with self.timeline.tx() as conn:
            for part in _chunks(sorted(set(keys))):
                gone += conn.execute(sa.delete(t).where(t.c.key.in_(part),
                                                        t.c.ends_at <= now)).rowcount or 0
        return gone

    def all(self) -> list[Stored]:
        with self.timeline.read() as conn:
            return [_stored(r) for r in conn.execute(
                sa.select(external_alerts).order_by(external_alerts.c.key))]
