"""``alert_alerts`` and ``alert_evaluations``: the engine's decisions, persisted.

One evaluation is one transaction that locks the alert's row, so two runs evaluating
the same alert at once (a schedule and a manual trigger, or 16 processes) produce one
notification: the second sees the first's result. On SQLite the lock is
``BEGIN IMMEDIATE`` (one writer at a time); on PostgreSQL it is ``SELECT … FOR UPDATE``
on the alert row. The outbox's unique ``(receiver, dedup_key)`` is the second line of
defence. Notifications are queued into their route's groups in the same transaction
(:mod:`alert_jobs.store.grouping`), and episodes are kept with them
(:mod:`alert_jobs.store.episodes`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.engine import Decision, RulePolicy, evaluate
from alert_jobs.core.model import (
    AlertRecord,
    AlertState,
    Observation,
    Severity,
    Silence,
    Status,
    alert_labels,
)
from alert_jobs.core.routing import Router
from alert_jobs.store import episodes, grouping, schema
from alert_jobs.store.db import Database, TimelineError, utcnow
from alert_jobs.store.events import write_event
from alert_jobs.store.outbox import flush_groups
from alert_jobs.store.rule_settings import rule_disabled
from alert_jobs.store.silences import active_silences

#: Mints a notification's action links for the decided record (its episode is known only
#: then): see ``links`` in :meth:`AlertStore.process_many`.
LinkMinter = Callable[[AlertRecord], Mapping[str, object]]

_RECORD_FIELDS = [f.name for f in fields(AlertRecord)]
_ACTIVE = [str(AlertState.PENDING), str(AlertState.FIRING), str(AlertState.RECOVERING)]


def record_from_row(row: Any) -> AlertRecord:
    data = {name: getattr(row, name) for name in _RECORD_FIELDS}
    data["state"] = AlertState(data["state"])
    data["severity"] = Severity(data["severity"])
    data["last_status"] = Status(data["last_status"]) if data["last_status"] else None
    data["labels"] = dict(data["labels"] or {})
    data["last_summary"] = data["last_summary"] or ""
    return AlertRecord(**data)


def record_values(record: AlertRecord, now: datetime) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    values["state"] = str(record.state)
    values["severity"] = str(record.severity)
    values["last_status"] = str(record.last_status) if record.last_status else None
    values["updated_at"] = now
    return values


def episode_times(record: AlertRecord) -> dict[str, str | None]:
    """``starts_at``/``ends_at`` of the alert's episode, for messages (ISO 8601)."""
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    ends = record.resolved_at if record.state == AlertState.RESOLVED else None
    return {"starts_at": iso(record.fired_at), "ends_at": iso(ends)}


@dataclass(frozen=True)
class ProcessResult:
    """What one observation did: the decision and the outbox rows it queued."""

    decision: Decision
    outbox_ids: builtins.list[int]


class AlertStore:
    """Alert instances: evaluate observations through the engine, and read them back."""

    def __init__(self, db: Database):
        self.db = db

    # ----- evaluation -------------------------------------------------------------

    def process(
        self, obs: Observation, policy: RulePolicy, *, now: datetime | None = None,
        run_id: str | None = None, message: dict[str, Any] | None = None,
    ) -> ProcessResult:
        """Run the engine on ``obs`` inside one locked transaction and persist everything.

        ``message`` is the rendered, secret-free notification body (see
        :mod:`alert_jobs.notify.render`) stored with each queued outbox row.
        """
        return self.process_many([(obs, policy, message)], now=now, run_id=run_id)[0]

    def process_many(
        self,
        items: Sequence[tuple[Observation, RulePolicy, dict[str, Any] | None]],
        *,
        now: datetime | None = None,
        run_id: str | None = None,
        router: Router | None = None,
        flush: bool = True,
        links: LinkMinter | None = None,
    ) -> builtins.list[ProcessResult]:
        """:meth:`process` for several observations (e.g. one target's checks) in one
        transaction: one commit instead of one per alert, same locks, same results.

        Notifications are queued into their route's groups; with ``flush`` the groups
        that are due are flushed into the outbox at the end of the same transaction.
        Pass ``flush=False`` to process many batches first and flush once
        (:meth:`alert_jobs.store.outbox.OutboxStore.flush_due`).

        ``links`` mints the ``actions`` of each queued message from the decided record,
        inside this transaction, so signed links name the episode the message is sent
        for (a link made before the decision could only guess it).
        """
        now = now or utcnow()
        router = router or Router()
        # Lock alert rows in one global order (fingerprint), so two transactions that
        # touch overlapping alerts can never deadlock on PostgreSQL.
        order = sorted(range(len(items)), key=lambda i: items[i][0].fingerprint)
        decisions: builtins.list[Decision | None] = [None] * len(items)
        with self.db.tx() as conn:
            silences = active_silences(conn, now)
            firing = self._firing_labels(conn) if router.inhibit_rules else []
            for i in order:
                obs, policy, message = items[i]
                decisions[i] = self._process_one(conn, obs, policy, now, run_id, message,
                                                 silences, router, firing, links)
            flushed = flush_groups(self.db, conn, now, router, run_id) if flush else []
        carried: dict[str, builtins.list[int]] = {}
        for outbox_id, fingerprints in flushed:
            for fp in fingerprints:
                carried.setdefault(fp, []).append(outbox_id)
        return [ProcessResult(d, carried.get(d.record.fingerprint, []))
                for d in decisions if d is not None]

    def _firing_labels(self, conn: Connection) -> builtins.list[dict[str, str]]:
        t = schema.alerts
        rows = conn.execute(sa.select(t.c.rule, t.c.labels, t.c.severity)
                            .where(t.c.state == str(AlertState.FIRING))).all()
        return [{**(r.labels or {}), "alertname": r.rule, "severity": r.severity} for r in rows]

    def _process_one(
        self, conn: Connection, obs: Observation, policy: RulePolicy, now: datetime,
        run_id: str | None, message: dict[str, Any] | None, silences: builtins.list[Silence],
        router: Router, firing: builtins.list[dict[str, str]], links: LinkMinter | None = None,
    ) -> Decision:
        fp = obs.fingerprint
        prior = self._lock_alert(conn, obs, policy, now)
        disabled = rule_disabled(conn, obs.rule)
        labels = alert_labels(obs, obs.severity or policy.severity)
        inhibited = router.inhibited_by(labels, firing) if firing else None
        decision = evaluate(obs, prior, policy, now, silences, disabled, inhibited)
        episodes.on_decision(conn, decision, prior, now)
        conn.execute(
            schema.alerts.update()
            .where(schema.alerts.c.fingerprint == fp)
            .values(**record_values(decision.record, now))
        )
        for ev in decision.events:
            write_event(conn, now, ev.kind, ev.reason, fingerprint=fp, rule=obs.rule,
                        run_id=run_id, payload=ev.payload)
        conn.execute(schema.evaluations.insert().values(
            at=now, rule=obs.rule, fingerprint=fp, status=str(obs.status), value=obs.value,
            expected=obs.expected, summary=obs.summary, state_after=str(decision.record.state),
            run_id=run_id, details=obs.details,
        ))
        labels = alert_labels(decision.record, decision.record.severity)
        actions = dict(links(decision.record)) if links and decision.notifications else None
        for n in decision.notifications:
            body = {**(message or {}), **({"actions": actions} if actions is not None else {}),
                    "rule": obs.rule, "fingerprint": fp,
                    "severity": str(decision.record.severity), "labels": labels,
                    **episode_times(decision.record)}
            for target in router.targets(labels, n.receivers):
                grouping.queue(conn, now=now, target=target, labels=labels, fingerprint=fp,
                               rule=obs.rule, kind=n.kind, reason=n.reason, payload=body,
                               run_id=run_id, lock=self.db.lock_rows())
        return decision

    def _lock_alert(
        self, conn: Connection, obs: Observation, policy: RulePolicy, now: datetime
    ) -> AlertRecord | None:
        """Create the alert row if missing, then lock it for this transaction."""
        fp = obs.fingerprint
        fresh = record_values(AlertRecord.new(obs.rule, obs.labels), now)
        fresh["severity"] = str(policy.severity)
        insert = (self.db.insert_ignore(schema.alerts, ["fingerprint"]).values(**fresh)
                  .returning(schema.alerts.c.fingerprint))
        created = conn.execute(insert).first() is not None
        query = sa.select(schema.alerts).where(schema.alerts.c.fingerprint == fp)
        if self.db.lock_rows():
            query = query.with_for_update()
        row = conn.execute(query).one()
        return None if created else record_from_row(row)

    # ----- reads ------------------------------------------------------------------

    def list(self, *, include_inactive: bool = False) -> builtins.list[AlertRecord]:
        """Active alerts (pending, firing, recovering), or every alert instance."""
        query = sa.select(schema.alerts).order_by(schema.alerts.c.rule,
                                                  schema.alerts.c.fingerprint)
        if not include_inactive:
            query = query.where(schema.alerts.c.state.in_(_ACTIVE))
        with self.db.read() as conn:
            return [record_from_row(r) for r in conn.execute(query)]

    def get(self, fingerprint: str) -> AlertRecord | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(schema.alerts).where(
                schema.alerts.c.fingerprint == fingerprint)).first()
        return record_from_row(row) if row else None

    def evaluations(self, rule: str, limit: int = 100) -> builtins.list[dict[str, Any]]:
        t = schema.evaluations
        query = sa.select(t).where(t.c.rule == rule).order_by(t.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def known_rules(self) -> set[str]:
        with self.db.read() as conn:
            return set(conn.execute(sa.select(schema.alerts.c.rule).distinct()).scalars())

    def resolve_target(self, target: str, *,
                       active_only: bool = True) -> builtins.list[AlertRecord]:
        """Alerts named by a fingerprint (or unique prefix of 6+) or a rule name."""
        candidates = self.list(include_inactive=not active_only)
        by_rule = [a for a in candidates if a.rule == target]
        if by_rule:
            return by_rule
        if len(target) >= 6:
            by_fp = [a for a in candidates if a.fingerprint.startswith(target)]
            if len(by_fp) > 1:
                raise TimelineError(f"{target!r} matches {len(by_fp)} alerts; give more "
                                    "characters")
            if by_fp:
                return by_fp
        scope = "active alert" if active_only else "alert"
        raise TimelineError(f"no {scope} matches {target!r} (give a rule name or a "
                            "fingerprint; see `alert-jobs status`)")
