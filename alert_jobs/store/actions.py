"""What people do to alerts: ack, unack, snooze, say what an alert was, escalate.

Each action is one transaction that locks the alert's row, writes the change, its
event (with the actor and where it came from: cli, link, dagster) and the episode's
first response, so alert quality always agrees with the timeline.

An action that comes from a signed link carries a :class:`LinkUse`: the same
transaction then checks that the link is for the alert's current episode and was not
used before (:mod:`alert_jobs.store.link_uses`), so a link acts on one incident, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import AlertRecord, AlertState, alert_labels
from alert_jobs.core.routing import Router, RouteTarget
from alert_jobs.store import episodes, grouping, link_uses, schema
from alert_jobs.store.alerts import episode_times, record_from_row
from alert_jobs.store.db import Database, TimelineError, utcnow
from alert_jobs.store.events import write_event
from alert_jobs.store.link_uses import AlreadyDone, LinkUse

#: Computes an action's change from the locked record: (column values, event reason).
Change = Callable[[AlertRecord], tuple[dict[str, Any], str]]


class ActionStore:
    def __init__(self, db: Database):
        self.db = db

    def ack(
        self, fingerprint: str, *, by: str, note: str = "", outcome: str | None = None,
        source: str = "cli", run_id: str | None = None, now: datetime | None = None,
        link: LinkUse | None = None,
    ) -> AlertRecord:
        """Acknowledge: no more pages until it resolves, even if it re-triggers.

        Through a ``link``, an alert someone already acked stays as it is (raises
        :class:`AlreadyDone` naming who and when): a link never overwrites ``acked_by``.
        """
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            if not rec.state.is_active:
                raise TimelineError(f"alert {fingerprint[:8]} ({rec.rule}) is {rec.state}; "
                                    "only firing alerts can be acked")
            if link is not None and rec.is_acked:
                who = rec.acked_by or "someone"
                at = f" at {rec.acked_at:%Y-%m-%d %H:%M} UTC" if rec.acked_at else ""
                raise AlreadyDone(f"already acknowledged by {who}{at}; nothing changed",
                                  who, rec.acked_at)
            values = {"acked_at": now, "acked_by": by, "ack_note": note, "ack_outcome": outcome}
            reason = f"acked by {by}" + (f" as {outcome}" if outcome else "") + (
                f": {note}" if note else "")
            return values, reason

        return self._act(fingerprint, "acked", change, by, source, run_id, now,
                         {"note": note, "outcome": outcome}, link)

    def unack(self, fingerprint: str, *, by: str, source: str = "cli",
              now: datetime | None = None) -> AlertRecord:
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            return {"acked_at": None, "acked_by": None, "ack_note": None}, f"unacked by {by}"

        return self._act(fingerprint, "unacked", change, by, source, None, now, {})

    def record_outcome(self, fingerprint: str, *, outcome: str, by: str, source: str = "cli",
                       run_id: str | None = None, now: datetime | None = None,
                       link: LinkUse | None = None) -> AlertRecord:
        """Say what an alert was (actionable, false-positive, …) in any state, even resolved."""
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            return {"ack_outcome": outcome}, f"{by} marked it {outcome}"

        return self._act(fingerprint, "outcome", change, by, source, run_id, now,
                         {"outcome": outcome}, link)

    def snooze(
        self, fingerprint: str, *, until: datetime, by: str, note: str = "", source: str = "cli",
        run_id: str | None = None, now: datetime | None = None, link: LinkUse | None = None,
    ) -> AlertRecord:
        """Mute one alert instance until ``until``; it speaks again after, if still firing."""
        now = now or utcnow()
        if until <= now:
            raise TimelineError("snooze end must be in the future")

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            reason = f"snoozed by {by} until {until.isoformat(timespec='minutes')}" + (
                f": {note}" if note else "")
            return {"snoozed_until": until}, reason

        return self._act(fingerprint, "snoozed", change, by, source, run_id, now,
                         {"until": until.isoformat(), "note": note}, link)

    def _act(
        self, fingerprint: str, kind: str, change: Change, actor: str, source: str,
        run_id: str | None, now: datetime, payload: dict[str, Any],
        link: LinkUse | None = None,
    ) -> AlertRecord:
        t = schema.alerts
        with self.db.tx() as conn:
            rec = self._locked(conn, fingerprint)
            if rec is None:
                raise TimelineError(f"no alert with fingerprint {fingerprint!r}")
            if link is not None:  # the episode check and the use, before any change
                link_uses.claim(conn, self.db, rec, link, actor, now)
            values, reason = change(rec)
            conn.execute(t.update().where(t.c.fingerprint == fingerprint)
                         .values(**values, updated_at=now))
            write_event(conn, now, kind, reason, fingerprint=fingerprint, rule=rec.rule,
                        actor=actor, source=source, run_id=run_id, payload=payload)
            episodes.on_action(conn, rec, kind, actor, payload.get("outcome"), now)
            return rec.evolve(**values)

    def link_used(self, token_id: str) -> tuple[str, datetime] | None:
        """Who used the link ``token_id`` and when, or None if it was never used."""
        with self.db.read() as conn:
            row = link_uses.used(conn, token_id)
        return (row.used_by, row.used_at) if row is not None else None

    def _locked(self, conn: Connection, fingerprint: str) -> AlertRecord | None:
        """The alert's record, its row locked until the transaction ends."""
        t = schema.alerts
        query = sa.select(t).where(t.c.fingerprint == fingerprint)
        if self.db.lock_rows():
            query = query.with_for_update()
        row = conn.execute(query).first()
        return record_from_row(row) if row is not None else None

    def queue_acknowledged(self, record: AlertRecord, router: Router, *, by: str,
                           now: datetime | None = None,
                           direct_receivers: Sequence[str] = ()) -> None:
        """Tell incident tools (PagerDuty) that an alert was acked, through its groups."""
        now = now or utcnow()
        labels = alert_labels(record, record.severity)
        payload = {"rule": record.rule, "fingerprint": record.fingerprint, "labels": labels,
                   "severity": str(record.severity), "summary": record.last_summary,
                   "acked_by": by, **episode_times(record)}
        with self.db.tx() as conn:
            for target in router.targets(labels, direct_receivers):
                grouping.queue(conn, now=now, target=target, labels=labels,
                               fingerprint=record.fingerprint, rule=record.rule,
                               kind="acknowledged", reason="acknowledged", payload=payload,
                               run_id=None, lock=self.db.lock_rows())

    def escalate(self, fingerprint: str, *, step: int, receiver: str, after: timedelta,
                 now: datetime | None = None, run_id: str | None = None) -> bool:
        """Run escalation ``step`` (0-based) of a firing, un-acked alert, exactly once.

        Returns False when another tick already did it or the alert no longer qualifies
        (acked, resolved, snoozed): the check and the write share one locked transaction.
        """
        now = now or utcnow()
        t = schema.alerts
        with self.db.tx() as conn:
            rec = self._locked(conn, fingerprint)
            if rec is None:
                return False
            if (rec.state != AlertState.FIRING or rec.is_acked or rec.is_snoozed(now)
                    or rec.escalation_step != step or not rec.notified_firing):
                return False
            labels = alert_labels(rec, rec.severity)
            target = RouteTarget(f"escalation.{step}", receiver, ("alertname",), timedelta(0),
                                 timedelta(0), timedelta(0))
            payload = {"rule": rec.rule, "fingerprint": rec.fingerprint, "labels": labels,
                       "severity": str(rec.severity), "summary": rec.last_summary,
                       "escalation_step": step + 1, **episode_times(rec)}
            grouping.queue(conn, now=now, target=target, labels=labels, fingerprint=fingerprint,
                           rule=rec.rule, kind="escalation", reason="escalation",
                           payload=payload, run_id=run_id, lock=self.db.lock_rows())
            conn.execute(t.update().where(t.c.fingerprint == fingerprint)
                         .values(escalation_step=step + 1, updated_at=now))
            episodes.notified(conn, fingerprint, rec.episode, str(rec.severity), now)
            write_event(conn, now, "escalated",
                        f"not acked {format_duration(after)} after firing: escalated to "
                        f"{receiver} (step {step + 1})", fingerprint=fingerprint, rule=rec.rule,
                        source="escalation", run_id=run_id,
                        payload={"step": step + 1, "receiver": receiver})
        return True
