"""``alert_alerts`` and ``alert_evaluations``: the engine's decisions, persisted.

One call is one short transaction with a few statements, however many observations it
carries: the context (silences, disabled rules) is read once, every alert row is locked
(or created) by one statement in fingerprint order, and the writes go out as one
executemany per table (alerts, events, evaluations, episodes, queue rows, groups).
Two runs evaluating the same alert at once (a schedule and a manual trigger, or 16
processes) produce one notification: the second waits for the first's lock and sees
its result. On SQLite the lock is ``BEGIN IMMEDIATE`` (one writer at a time); on
PostgreSQL it is the row lock taken by ``INSERT … ON CONFLICT DO UPDATE``; rows are
always locked alerts first, then groups, each in key order, so writers never deadlock.
The outbox's unique ``(receiver, dedup_key)`` is the second line of defence.
Notifications are queued into their route's groups in the same transaction
(:mod:`alert_jobs.store.grouping`), and episodes are kept with them
(:mod:`alert_jobs.store.episodes`). Statements per decision: benchmarks/timeline_bench.py.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.engine import Decision, RulePolicy, evaluate
from alert_jobs.core.model import (
    AlertRecord,
    AlertState,
    Observation,
    Severity,
    Status,
    alert_labels,
)
from alert_jobs.core.routing import Router
from alert_jobs.store import episodes, grouping, rawsql, schema, time_mutes
from alert_jobs.store.context import read_context, read_one
from alert_jobs.store.db import Database, TimelineError, pg_lock_or_create, utcnow
from alert_jobs.store.events import event_row, write_events
from alert_jobs.store.outbox import flush_groups

#: Mints a notification's action links for the decided record (its episode is known only
#: then): see ``links`` in :meth:`AlertStore.process_many`.
LinkMinter = Callable[[AlertRecord], Mapping[str, object]]

_RECORD_FIELDS = [f.name for f in fields(AlertRecord)]
_ACTIVE = [str(AlertState.PENDING), str(AlertState.FIRING), str(AlertState.RECOVERING)]

# Statements built once: building one per call (``.values(**row)``) cost more CPU than
# running it (benchmarks/timeline_bench.py).
_a = schema.alerts
_SELECT_ALERTS = (sa.select(_a).where(_a.c.fingerprint.in_(sa.bindparam("fps", expanding=True)))
                  .order_by(_a.c.fingerprint))
_SELECT_ALERT = sa.select(_a).where(_a.c.fingerprint == sa.bindparam("fp"))
#: Every active alert, as SQL text for SQLite's driver (the responder's page lists
#: thousands; SQLAlchemy's row processing cost more than the query).
_ACTIVE_QUERY = sa.select(_a).where(_a.c.state.in_(_ACTIVE)).order_by(_a.c.rule, _a.c.fingerprint)


@functools.cache
def _active_sql(dialect: sa.engine.Dialect) -> str:
    return str(_ACTIVE_QUERY.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
_UPDATE_ALERT = _a.update().where(_a.c.fingerprint == sa.bindparam("b_fp"))
_INSERT_EVALUATION = schema.evaluations.insert()


@functools.cache
def _default_router() -> Router:
    """Routing without a rules file (every default): the same for every call, built once."""
    return Router()


def record_from_row(row: Any) -> AlertRecord:
    data = {name: getattr(row, name) for name in _RECORD_FIELDS}
    data["state"] = AlertState(data["state"])
    data["severity"] = Severity(data["severity"])
    data["last_status"] = Status(data["last_status"]) if data["last_status"] else None
    data["labels"] = dict(data["labels"] or {})
    data["last_summary"] = data["last_summary"] or ""
    data["last_expected"] = data["last_expected"] or ""
    return AlertRecord(**data)


# A driver row of alert_alerts holds the record's fields first, in the record's order
# (then updated_at), so it converts by position: no dict, no keywords.
assert [c.name for c in schema.alerts.c][:len(_RECORD_FIELDS)] == _RECORD_FIELDS
_CONVERT = [(i, f) for i, f in enumerate(rawsql.readers(list(schema.alerts.c)))
            if f is not None and i < len(_RECORD_FIELDS)]
_STATE, _SEVERITY, _LAST_STATUS, _SUMMARY, _EXPECTED = (
    _RECORD_FIELDS.index(n)
    for n in ("state", "severity", "last_status", "last_summary", "last_expected"))


_STATES = {str(s): s for s in AlertState}
_SEVERITIES = {str(s): s for s in Severity}
_STATUSES = {str(s): s for s in Status}


_PG_TIMES = [i for i, c in enumerate(list(schema.alerts.c)[:len(_RECORD_FIELDS)])
             if isinstance(c.type, schema.UTCDateTime)]


def record_from_pg(row: tuple[Any, ...]) -> AlertRecord:
    """:func:`record_from_row` for a psycopg row of every ``alert_alerts`` column (JSON
    and times come decoded; times are made UTC as :class:`~schema.UTCDateTime` does)."""
    values = list(row[:len(_RECORD_FIELDS)])
    for i in _PG_TIMES:
        moment = values[i]
        if moment is not None and moment.utcoffset():
            values[i] = moment.astimezone(UTC)
    return _record(values)


def record_from_raw(row: tuple[Any, ...]) -> AlertRecord:
    """:func:`record_from_row` for a driver row of every ``alert_alerts`` column."""
    values = list(row[:len(_RECORD_FIELDS)])
    for i, convert in _CONVERT:
        if values[i] is not None:
            values[i] = convert(values[i])
    return _record(values)


def _record(values: list[Any]) -> AlertRecord:
    """The record of a driver row's values with times and JSON already converted."""
    values[_STATE] = _STATES[values[_STATE]]  # a dict lookup: Enum(value) costs more
    values[_SEVERITY] = _SEVERITIES[values[_SEVERITY]]
    values[_LAST_STATUS] = _STATUSES[values[_LAST_STATUS]] if values[_LAST_STATUS] else None
    values[2] = values[2] or {}  # labels
    values[_SUMMARY] = values[_SUMMARY] or ""
    values[_EXPECTED] = values[_EXPECTED] or ""
    return AlertRecord(*values)


def record_values(record: AlertRecord, now: datetime) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    values["state"] = str(record.state)
    values["severity"] = str(record.severity)
    values["last_status"] = str(record.last_status) if record.last_status else None
    values["updated_at"] = now
    return values


#: Never change for a fingerprint (it is a hash of them): not rewritten, so an UPDATE
#: leaves the primary-key and rule indexes alone.
_IDENTITY = ("fingerprint", "rule", "labels")


def _changed_values(record: AlertRecord, now: datetime, fp: str) -> dict[str, Any]:
    values = record_values(record, now)
    for name in _IDENTITY:
        del values[name]
    values["b_fp"] = fp
    return values


_MUTABLE = [name for name in _RECORD_FIELDS if name not in _IDENTITY]
_ENUMS = {"state", "severity", "last_status"}


def _changes(prior: AlertRecord | None, record: AlertRecord, now: datetime
             ) -> dict[str, Any]:
    """The columns of ``record`` that differ from ``prior`` (the row as read in this
    transaction), plus ``updated_at``: what an UPDATE must write, as column values."""
    out: dict[str, Any] = {}
    for name in _MUTABLE:
        value = getattr(record, name)
        if prior is None or value != getattr(prior, name):
            out[name] = (str(value) if value is not None else None) if name in _ENUMS \
                else value
    out["updated_at"] = now
    return out


def episode_times(record: AlertRecord) -> dict[str, str | None]:
    """``starts_at``/``ends_at`` of the alert's episode, for messages (ISO 8601)."""
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    ends = record.resolved_at if record.state == AlertState.RESOLVED else None
    return {"starts_at": iso(record.fired_at), "ends_at": iso(ends)}


@dataclass
class _Plan:
    """Everything one transaction's decisions will write, gathered before writing."""

    priors: dict[str, AlertRecord | None]  # the locked rows (missing: new alert)
    current: dict[str, AlertRecord] = field(default_factory=dict)  # latest decided record
    decisions: dict[int, Decision] = field(default_factory=dict)  # by item index
    decided: builtins.list[tuple[Decision, AlertRecord | None]] = field(default_factory=list)
    events: builtins.list[dict[str, Any]] = field(default_factory=list)
    evaluations: builtins.list[dict[str, Any]] = field(default_factory=list)
    intents: builtins.list[grouping.Intent] = field(default_factory=list)

    def prior(self, fp: str) -> AlertRecord | None:
        """What the engine decides ``fp`` from: this batch's last decision, else the row."""
        return self.current.get(fp) or self.priors.get(fp)

    def add(self, index: int, fp: str, obs: Observation, message: dict[str, Any] | None,
            decision: Decision, now: datetime, run_id: str | None,
            intents: Callable[[Decision, Observation, dict[str, Any] | None],
                              builtins.list[grouping.Intent]]) -> None:
        self.decided.append((decision, self.prior(fp)))
        self.current[fp] = decision.record
        self.decisions[index] = decision
        self.events.extend(event_row(now, ev.kind, ev.reason, fingerprint=fp, rule=obs.rule,
                                     run_id=run_id, payload=ev.payload)
                           for ev in decision.events)
        self.evaluations.append({
            "at": now, "rule": obs.rule, "fingerprint": fp, "status": str(obs.status),
            "value": obs.value, "expected": obs.expected, "summary": obs.summary,
            "state_after": str(decision.record.state), "run_id": run_id,
            "details": obs.details})
        if decision.notifications:
            self.intents.extend(intents(decision, obs, message))


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
        this call queued into that are due now are flushed into the outbox at the end
        of the same transaction (groups due by time alone are flushed by delivery,
        :meth:`alert_jobs.store.outbox.OutboxStore.flush_due`). Pass ``flush=False`` to
        process many batches first and flush once.

        ``links`` mints the ``actions`` of each queued message from the decided record,
        inside this transaction, so signed links name the episode the message is sent
        for (a link made before the decision could only guess it).
        """
        now = now or utcnow()
        router = router or _default_router()
        if not items:
            return []
        # Decide in one global order (fingerprint), the order the rows are locked in.
        fps = [obs.fingerprint for obs, _, _ in items]  # a hash of the labels: once each
        order = sorted(range(len(items)), key=lambda i: fps[i])
        rules = {obs.rule for obs, _, _ in items}
        one = len(set(fps)) == 1 and not self.db.lock_rows()
        with self.db.tx() as conn:
            sqlite = rawsql.is_sqlite(conn)  # the hot statements run on the driver
            if one:  # SQLite, one alert: its row and the context in one statement
                row, silences, disabled = read_one(conn, now, fps[0], items[0][0].rule)
                found: dict[str, AlertRecord | None] = (
                    {fps[0]: record_from_raw(row)} if row is not None else {})
            else:
                silences, disabled = read_context(conn, now, rules)
            firing = self._firing_labels(conn) if router.inhibit_rules else []
            inhibition = router.inhibition(firing) if firing else None

            def decide(priors: dict[str, AlertRecord | None]) -> _Plan:
                plan = _Plan(priors)
                for i in order:
                    obs, policy, message = items[i]
                    labels = alert_labels(obs, obs.severity or policy.severity)
                    inhibited = (inhibition.inhibited_by(labels)
                                 if inhibition is not None else None)
                    if inhibited is None and router.time_intervals:
                        # every target in a maintenance window: muted as a whole
                        inhibited = router.all_time_muted(labels, policy.receivers, now)
                    plan.add(i, fps[i], obs, message, evaluate(
                        obs, plan.prior(fps[i]), policy, now, silences,
                        obs.rule in disabled, inhibited), now, run_id,
                        lambda d, o, m: self._intents(d, o, m, router, run_id, links))
                return plan

            if self.db.lock_rows():
                # PostgreSQL: every row locked (or created) by one statement, in
                # fingerprint order, so writers that share alerts never deadlock.
                plan = decide(self._lock_or_create(conn, items, fps, now))
                created: set[str] = set()
            else:
                # SQLite: BEGIN IMMEDIATE holds the database; new alerts are inserted
                # with their decided values (no INSERT-then-UPDATE).
                if not one:
                    found = self._select_alerts(conn, set(fps))
                plan = decide(found)
                created = set(fps) - set(found)
                if created:
                    rawsql.INSERT_ALERT.run(conn, [record_values(plan.current[fp], now)
                                                   for fp in sorted(created)])
            episodes.on_decisions(conn, plan.decided, now)
            if sqlite:  # SQLite: only the columns that changed since the row was read
                changed = [(fp, _changes(found[fp], plan.current[fp], now))
                           for fp in sorted(plan.current) if fp not in created]
                if changed:
                    rawsql.update_alerts(conn, changed)
            else:
                updates = [_changed_values(plan.current[fp], now, fp)
                           for fp in sorted(plan.current) if fp not in created]
                if updates:
                    conn.execute(_UPDATE_ALERT, updates)
            # Maintenance windows: what a route's time intervals mute now is not queued
            # for that target, and the timeline says so (store/time_mutes.py).
            intents = time_mutes.mute_by_time(conn, plan.intents, router, now, plan.events)
            write_events(conn, plan.events)
            if sqlite:
                rawsql.INSERT_EVALUATION.run(conn, plan.evaluations)
            else:
                conn.execute(_INSERT_EVALUATION, plan.evaluations)
            due = grouping.queue_many(conn, intents, now=now, lock=self.db.lock_rows())
            # The groups this call queued into that are due now (already locked) are
            # flushed here; groups due by time alone are flushed by delivery
            # (OutboxStore.flush_due), so a decision that queued nothing looks for none.
            flushed = (flush_groups(self.db, conn, now, router, due, run_id=run_id)
                       if flush and due else [])
        carried: dict[str, builtins.list[int]] = {}
        for outbox_id, fingerprints in flushed:
            for fp in fingerprints:
                carried.setdefault(fp, []).append(outbox_id)
        return [ProcessResult(plan.decisions[i], carried.get(fps[i], []))
                for i in range(len(items))]

    def _intents(self, decision: Decision, obs: Observation, message: dict[str, Any] | None,
                 router: Router, run_id: str | None, links: LinkMinter | None,
                 ) -> builtins.list[grouping.Intent]:
        """The decision's notifications, one intent per route target; action links are
        minted here, inside the transaction, for the episode just decided."""
        record = decision.record
        labels = alert_labels(record, record.severity)
        actions = dict(links(record)) if links else None
        out: builtins.list[grouping.Intent] = []
        for n in decision.notifications:
            body = {**(message or {}), **({"actions": actions} if actions is not None else {}),
                    "rule": obs.rule, "fingerprint": record.fingerprint,
                    "severity": str(record.severity), "labels": labels,
                    **episode_times(record)}
            out.extend(grouping.Intent(target, labels, record.fingerprint, obs.rule, n.kind,
                                       n.reason, body, run_id)
                       for target in router.targets(labels, n.receivers))
        return out

    def firing_labels(self) -> builtins.list[dict[str, str]]:
        """The labels (with ``alertname`` and ``severity``) of every firing alert: what
        inhibit rules compare with."""
        with self.db.read() as conn:
            return self._firing_labels(conn)

    def _firing_labels(self, conn: Connection) -> builtins.list[dict[str, str]]:
        t = schema.alerts
        rows = conn.execute(sa.select(t.c.rule, t.c.labels, t.c.severity)
                            .where(t.c.state == str(AlertState.FIRING))).all()
        return [{**(r.labels or {}), "alertname": r.rule, "severity": r.severity} for r in rows]

    def _select_alerts(self, conn: Connection, fps: set[str]) -> dict[str, AlertRecord | None]:
        """The existing rows of ``fps`` (SQLite: the transaction holds the database)."""
        if len(fps) == 1:  # no expanding IN: it costs a re-render per call
            rows = conn.execute(_SELECT_ALERT, {"fp": next(iter(fps))})
        else:
            rows = conn.execute(_SELECT_ALERTS, {"fps": sorted(fps)})
        return {r.fingerprint: record_from_row(r) for r in rows}

    def _lock_or_create(
        self, conn: Connection,
        items: Sequence[tuple[Observation, RulePolicy, dict[str, Any] | None]],
        fps: Sequence[str], now: datetime,
    ) -> dict[str, AlertRecord | None]:
        """Lock every alert row of the batch, creating the missing ones, with one
        ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in fingerprint order: each row is
        inserted or locked in that order, so two writers that share alerts can never
        deadlock (a SELECT … FOR UPDATE then an INSERT of the missing rows would lock
        in two rounds, and a row committed between them breaks the order). Returns
        each fingerprint's prior record, None for the rows this statement created.
        """
        fresh: dict[str, dict[str, Any]] = {}
        for (obs, policy, _), fp in zip(items, fps, strict=True):
            if fp not in fresh:
                values = record_values(AlertRecord.new(obs.rule, obs.labels), now)
                values["severity"] = str(policy.severity)
                fresh[fp] = values
        rows = conn.execute(pg_lock_or_create(schema.alerts, ("fingerprint",)),
                            [fresh[fp] for fp in sorted(fresh)])
        return {r.fingerprint: None if r.created else record_from_row(r) for r in rows}

    # ----- reads ------------------------------------------------------------------

    def list(self, *, include_inactive: bool = False) -> builtins.list[AlertRecord]:
        """Active alerts (pending, firing, recovering), or every alert instance."""
        if not include_inactive and self.db.dialect in ("sqlite", "postgresql"):
            # On the driver: SQLAlchemy's row processing cost more than the query, and
            # the responder's page lists thousands (benchmarks/responder_bench.py).
            convert = record_from_raw if self.db.dialect == "sqlite" else record_from_pg
            sql = _active_sql(self.db.engine.dialect)
            with self.db.read() as conn:
                return [convert(r) for r in conn.exec_driver_sql(sql)]
        query = sa.select(schema.alerts).order_by(schema.alerts.c.rule,
                                                  schema.alerts.c.fingerprint)
        if not include_inactive:
            query = query.where(schema.alerts.c.state.in_(_ACTIVE))
        with self.db.read() as conn:
            return [record_from_row(r) for r in conn.execute(query)]

    def active_of(self, rule: str) -> builtins.list[AlertRecord]:
        """The active alerts of one rule (read by the rule index)."""
        t = schema.alerts
        query = sa.select(t).where(t.c.rule == rule, t.c.state.in_(_ACTIVE))
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

    def run_evaluations(self, run_id: str, limit: int = 1000) -> builtins.list[dict[str, Any]]:
        """The newest ``limit`` evaluations a run made, oldest first: also those that
        changed nothing, which leave no event (indexed by run_id, migration 0008)."""
        t = schema.evaluations
        query = sa.select(t).where(t.c.run_id == run_id).order_by(t.c.id.desc()).limit(limit)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows[::-1]

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
