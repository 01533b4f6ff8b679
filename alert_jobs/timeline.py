"""The SQL timeline: current alert state, append-only events, silences, outbox, evaluations.

One engine decision is one database transaction that locks the alert's row, so two
runs evaluating the same alert at once (a schedule and a manual trigger, or 16
processes) produce one notification: the second sees the first's result. On SQLite
the lock is ``BEGIN IMMEDIATE`` (one writer at a time, with a busy timeout); on
PostgreSQL it is ``SELECT … FOR UPDATE`` on the alert row. The outbox's unique
``(receiver, dedup_key)`` is the second line of defence.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alert_jobs import schema
from alert_jobs.durations import format_duration
from alert_jobs.engine import Decision, Event, RulePolicy, evaluate
from alert_jobs.model import (
    AlertRecord,
    AlertState,
    Matcher,
    Observation,
    Severity,
    Silence,
    Status,
    alert_labels,
)
from alert_jobs.notify import grouping
from alert_jobs.quality import episodes
from alert_jobs.routing import Router, RouteTarget
from alert_jobs.urls import driver_url, safe_url

DATABASE_URL_ENV = "ALERT_JOBS_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class TimelineError(RuntimeError):
    """A timeline operation that cannot be done as asked (unknown id, bad state)."""


def default_database_url() -> str:
    """``$ALERT_JOBS_DATABASE_URL``, else SQLite at ``$DAGSTER_HOME/alerts.db``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(home / 'alerts.db').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine tuned for the timeline: WAL + busy timeout + IMMEDIATE writes on SQLite."""
    url = driver_url(url)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, future=True)

    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        future=True,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, own transaction boundaries, so BEGIN IMMEDIATE
        # below takes the write lock up front instead of failing mid-transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProcessResult:
    """What one observation did: the decision and the outbox rows it queued."""

    decision: Decision
    outbox_ids: list[int]


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


_RECORD_FIELDS = [f.name for f in fields(AlertRecord)]


def _record_from_row(row: Any) -> AlertRecord:
    data = {name: getattr(row, name) for name in _RECORD_FIELDS}
    data["state"] = AlertState(data["state"])
    data["severity"] = Severity(data["severity"])
    data["last_status"] = Status(data["last_status"]) if data["last_status"] else None
    data["labels"] = dict(data["labels"] or {})
    data["last_summary"] = data["last_summary"] or ""
    return AlertRecord(**data)


def _record_values(record: AlertRecord, now: datetime) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    values["state"] = str(record.state)
    values["severity"] = str(record.severity)
    values["last_status"] = str(record.last_status) if record.last_status else None
    values["updated_at"] = now
    return values


class Timeline:
    """Repository over the timeline tables. Safe to share across threads; one per process."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None):
        self.url = url or default_database_url()
        self.engine = engine or make_engine(self.url)
        self._schema_ready = False
        self._default_router: Router | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ----- schema -----------------------------------------------------------------

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns what was applied. Safe to run twice, or at once."""
        applied: list[str] = []
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7438201)"))
            schema.schema_version.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema.schema_version.c.version)).scalars())
            for version, title, step in schema.MIGRATIONS:
                if version in done:
                    continue
                step(conn)
                conn.execute(schema.schema_version.insert().values(version=version,
                                                                   applied_at=utcnow()))
                applied.append(f"{version}: {title}")
        self._schema_ready = True
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(schema.schema_version.name):
                return 0
            return int(conn.execute(sa.select(sa.func.max(schema.schema_version.c.version)))
                       .scalar() or 0)

    def ensure_schema(self) -> None:
        """Upgrade on first use, so a new install needs no separate step."""
        if not self._schema_ready:
            if self.schema_version() < schema.LATEST_VERSION:
                self.upgrade()
            self._schema_ready = True

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        self.ensure_schema()
        with self.engine.begin() as conn:
            yield conn

    # ----- evaluation -------------------------------------------------------------

    def process(
        self,
        obs: Observation,
        policy: RulePolicy,
        *,
        now: datetime | None = None,
        run_id: str | None = None,
        message: dict[str, Any] | None = None,
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
    ) -> list[ProcessResult]:
        """:meth:`process` for several observations (e.g. one target's checks) in one
        transaction: one commit instead of one per alert, same locks, same results.

        Notifications are queued into their route's groups; with ``flush`` the groups
        that are due are flushed into the outbox at the end of the same transaction.
        Pass ``flush=False`` to process many batches first and :meth:`flush_due` once.
        """
        now = now or utcnow()
        router = router or self.default_router
        # Lock alert rows in one global order (fingerprint), so two transactions that
        # touch overlapping alerts can never deadlock on PostgreSQL.
        order = sorted(range(len(items)), key=lambda i: items[i][0].fingerprint)
        decisions: list[Decision | None] = [None] * len(items)
        with self._tx() as conn:
            silences = self._active_silences(conn, now)
            firing = self._firing_labels(conn) if router.inhibit_rules else []
            for i in order:
                obs, policy, message = items[i]
                decisions[i] = self._process_one(conn, obs, policy, now, run_id, message,
                                                 silences, router, firing)
            flushed = self._flush(conn, now, router) if flush else []
        carried: dict[str, list[int]] = {}
        for outbox_id, fingerprints in flushed:
            for fp in fingerprints:
                carried.setdefault(fp, []).append(outbox_id)
        return [ProcessResult(d, carried.get(d.record.fingerprint, []))
                for d in decisions if d is not None]

    @property
    def default_router(self) -> Router:
        """Routing when the caller has no rules file: each rule's own receivers, ungrouped
        beyond ``alertname``, no waiting. Real runs pass the rules file's router."""
        if self._default_router is None:
            from alert_jobs.config import RulesFile

            self._default_router = Router(RulesFile())
        return self._default_router

    def flush_due(self, *, router: Router | None = None,
                  now: datetime | None = None) -> list[int]:
        """Flush every group whose timer is due into the outbox; returns the outbox ids."""
        now = now or utcnow()
        with self._tx() as conn:
            flushed = self._flush(conn, now, router or self.default_router)
            grouping.forget_idle(conn, now)
        return [outbox_id for outbox_id, _ in flushed]

    def _flush(self, conn: Connection, now: datetime, router: Router
               ) -> list[tuple[int, list[str]]]:
        out: list[tuple[int, list[str]]] = []
        for group in grouping.due_groups(conn, now, limit=1000,
                                         skip_locked=self.dialect == "postgresql"):
            outbox_id, fps = grouping.flush(
                conn, group, now=now, max_alerts=router.rules.defaults.max_alerts,
                dagster_url=router.rules.defaults.dagster_url, enqueue=self._enqueue_group)
            if outbox_id is not None:
                out.append((outbox_id, fps))
        return out

    def _enqueue_group(self, conn: Connection, now: datetime, receiver: str, rule: str | None,
                       kind: str, dedup_key: str, payload: dict[str, Any]) -> int | None:
        return self._enqueue(conn, now, receiver, None, rule, kind, dedup_key, payload,
                             payload.get("run_id"))

    def _firing_labels(self, conn: Connection) -> list[dict[str, str]]:
        t = schema.alerts
        rows = conn.execute(sa.select(t.c.rule, t.c.labels, t.c.severity)
                            .where(t.c.state == str(AlertState.FIRING))).all()
        return [{**(r.labels or {}), "alertname": r.rule, "severity": r.severity} for r in rows]

    def _process_one(
        self, conn: Connection, obs: Observation, policy: RulePolicy, now: datetime,
        run_id: str | None, message: dict[str, Any] | None, silences: list[Silence],
        router: Router, firing: list[dict[str, str]],
    ) -> Decision:
        fp = obs.fingerprint
        prior = self._lock_alert(conn, obs, policy, now)
        disabled = self._rule_disabled(conn, obs.rule)
        labels = alert_labels(obs, obs.severity or policy.severity)
        inhibited = router.inhibited_by(labels, firing) if firing else None
        decision = evaluate(obs, prior, policy, now, silences, disabled, inhibited)
        episodes.on_decision(conn, decision, prior, now)
        conn.execute(
            schema.alerts.update()
            .where(schema.alerts.c.fingerprint == fp)
            .values(**_record_values(decision.record, now))
        )
        for ev in decision.events:
            self._event(conn, now, ev.kind, ev.reason, fingerprint=fp, rule=obs.rule,
                        run_id=run_id, payload=ev.payload)
        conn.execute(schema.evaluations.insert().values(
            at=now, rule=obs.rule, fingerprint=fp, status=str(obs.status), value=obs.value,
            expected=obs.expected, summary=obs.summary, state_after=str(decision.record.state),
            run_id=run_id, details=obs.details,
        ))
        labels = alert_labels(decision.record, decision.record.severity)
        for n in decision.notifications:
            body = {**(message or {}), "rule": obs.rule, "fingerprint": fp,
                    "severity": str(decision.record.severity), "labels": labels,
                    **_episode_times(decision.record)}
            for target in router.targets(labels, n.receivers):
                grouping.queue(conn, now=now, target=target, labels=labels, fingerprint=fp,
                               rule=obs.rule, kind=n.kind, reason=n.reason, payload=body,
                               run_id=run_id, lock=self.dialect == "postgresql")
        return decision

    def _lock_alert(
        self, conn: Connection, obs: Observation, policy: RulePolicy, now: datetime
    ) -> AlertRecord | None:
        """Create the alert row if missing, then lock it for this transaction."""
        fp = obs.fingerprint
        fresh = _record_values(AlertRecord.new(obs.rule, obs.labels), now)
        fresh["severity"] = str(policy.severity)
        insert = (self._insert_ignore(schema.alerts, ["fingerprint"]).values(**fresh)
                  .returning(schema.alerts.c.fingerprint))
        created = conn.execute(insert).first() is not None
        query = sa.select(schema.alerts).where(schema.alerts.c.fingerprint == fp)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one()
        return None if created else _record_from_row(row)

    def _insert_ignore(self, table: sa.Table, keys: list[str]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
        raise TimelineError(f"unsupported timeline database {self.dialect!r}: "
                            "use SQLite or PostgreSQL")

    def _enqueue(
        self, conn: Connection, now: datetime, receiver: str, fp: str | None, rule: str | None,
        kind: str, dedup_key: str, payload: dict[str, Any], run_id: str | None,
    ) -> int | None:
        stmt = self._insert_ignore(schema.outbox, ["receiver", "dedup_key"]).values(
            created_at=now, receiver=receiver, fingerprint=fp, rule=rule, kind=kind,
            dedup_key=dedup_key, payload=payload, attempts=0, next_attempt_at=now, run_id=run_id,
        ).returning(schema.outbox.c.id)
        new_id = conn.execute(stmt).scalar()
        return None if new_id is None else int(new_id)

    def _event(
        self, conn: Connection, now: datetime, kind: str, reason: str, *,
        fingerprint: str | None = None, rule: str | None = None, actor: str = "system",
        source: str = "engine", run_id: str | None = None, payload: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(schema.events.insert().values(
            at=now, fingerprint=fingerprint, rule=rule, kind=kind, reason=reason, actor=actor,
            source=source, run_id=run_id, payload=payload or {},
        ))

    def record_event(
        self, kind: str, reason: str, *, fingerprint: str | None = None, rule: str | None = None,
        actor: str = "system", source: str = "engine", run_id: str | None = None,
        payload: dict[str, Any] | None = None, now: datetime | None = None,
    ) -> None:
        """Append one event outside an evaluation (delivery results, admin actions)."""
        with self._tx() as conn:
            self._event(conn, now or utcnow(), kind, reason, fingerprint=fingerprint, rule=rule,
                        actor=actor, source=source, run_id=run_id, payload=payload)

    # ----- reads ------------------------------------------------------------------

    def alerts(self, *, include_inactive: bool = False) -> list[AlertRecord]:
        query = sa.select(schema.alerts).order_by(schema.alerts.c.rule, schema.alerts.c.fingerprint)
        if not include_inactive:
            query = query.where(schema.alerts.c.state.in_(
                [str(AlertState.PENDING), str(AlertState.FIRING), str(AlertState.RECOVERING)]))
        with self._tx() as conn:
            return [_record_from_row(r) for r in conn.execute(query)]

    def alert(self, fingerprint: str) -> AlertRecord | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(schema.alerts).where(
                schema.alerts.c.fingerprint == fingerprint)).first()
        return _record_from_row(row) if row else None

    def events(
        self, *, rule: str | None = None, fingerprint: str | None = None,
        since: datetime | None = None, kinds: Sequence[str] = (), run_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
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
        with self._tx() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return list(reversed(rows))

    def evaluations(self, rule: str, limit: int = 100) -> list[dict[str, Any]]:
        t = schema.evaluations
        query = sa.select(t).where(t.c.rule == rule).order_by(t.c.id.desc()).limit(limit)
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def known_rules(self) -> set[str]:
        with self._tx() as conn:
            return set(conn.execute(sa.select(schema.alerts.c.rule).distinct()).scalars())

    def resolve_target(self, target: str, *, active_only: bool = True) -> list[AlertRecord]:
        """Alerts named by a fingerprint (or unique prefix of 6+) or a rule name."""
        candidates = self.alerts(include_inactive=not active_only)
        by_rule = [a for a in candidates if a.rule == target]
        if by_rule:
            return by_rule
        if len(target) >= 6:
            by_fp = [a for a in candidates if a.fingerprint.startswith(target)]
            if len(by_fp) > 1:
                raise TimelineError(f"{target!r} matches {len(by_fp)} alerts; give more characters")
            if by_fp:
                return by_fp
        scope = "active alert" if active_only else "alert"
        raise TimelineError(f"no {scope} matches {target!r} (give a rule name or a fingerprint; "
                            "see `alert-jobs status`)")

    # ----- human actions ----------------------------------------------------------

    def ack(
        self, fingerprint: str, *, by: str, note: str = "", outcome: str | None = None,
        source: str = "cli", run_id: str | None = None, now: datetime | None = None,
    ) -> AlertRecord:
        """Acknowledge: no more pages until it resolves, even if it re-triggers."""
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            if not rec.state.is_active:
                raise TimelineError(f"alert {fingerprint[:8]} ({rec.rule}) is {rec.state}; "
                                    "only firing alerts can be acked")
            values = {"acked_at": now, "acked_by": by, "ack_note": note, "ack_outcome": outcome}
            reason = f"acked by {by}" + (f" as {outcome}" if outcome else "") + (
                f": {note}" if note else "")
            return values, reason

        return self._act(fingerprint, "acked", change, by, source, run_id, now,
                         {"note": note, "outcome": outcome})

    def record_outcome(self, fingerprint: str, *, outcome: str, by: str, source: str = "cli",
                       run_id: str | None = None, now: datetime | None = None) -> AlertRecord:
        """Say what an alert was (actionable, false-positive, …) in any state, even resolved."""
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            return {"ack_outcome": outcome}, f"{by} marked it {outcome}"

        return self._act(fingerprint, "outcome", change, by, source, run_id, now,
                         {"outcome": outcome})

    def queue_acknowledged(self, record: AlertRecord, router: Router, *, by: str,
                           now: datetime | None = None,
                           direct_receivers: Sequence[str] = ()) -> None:
        """Tell incident tools (PagerDuty) that an alert was acked, through its groups."""
        now = now or utcnow()
        labels = alert_labels(record, record.severity)
        payload = {"rule": record.rule, "fingerprint": record.fingerprint, "labels": labels,
                   "severity": str(record.severity), "summary": record.last_summary,
                   "acked_by": by, **_episode_times(record)}
        with self._tx() as conn:
            for target in router.targets(labels, direct_receivers):
                grouping.queue(conn, now=now, target=target, labels=labels,
                               fingerprint=record.fingerprint, rule=record.rule,
                               kind="acknowledged", reason="acknowledged", payload=payload,
                               run_id=None, lock=self.dialect == "postgresql")

    def escalate(self, fingerprint: str, *, step: int, receiver: str, router: Router,
                 after: timedelta, now: datetime | None = None,
                 run_id: str | None = None) -> bool:
        """Run escalation ``step`` (0-based) of a firing, un-acked alert, exactly once.

        Returns False when another tick already did it or the alert no longer qualifies
        (acked, resolved, snoozed): the check and the write share one locked transaction.
        """
        now = now or utcnow()
        t = schema.alerts
        with self._tx() as conn:
            query = sa.select(t).where(t.c.fingerprint == fingerprint)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                return False
            rec = _record_from_row(row)
            if (rec.state != AlertState.FIRING or rec.is_acked or rec.is_snoozed(now)
                    or rec.escalation_step != step or not rec.notified_firing):
                return False
            labels = alert_labels(rec, rec.severity)
            target = RouteTarget(f"escalation.{step}", receiver, ("alertname",), timedelta(0),
                                 timedelta(0), timedelta(0))
            payload = {"rule": rec.rule, "fingerprint": rec.fingerprint, "labels": labels,
                       "severity": str(rec.severity), "summary": rec.last_summary,
                       "escalation_step": step + 1, **_episode_times(rec)}
            grouping.queue(conn, now=now, target=target, labels=labels, fingerprint=fingerprint,
                           rule=rec.rule, kind="escalation", reason="escalation",
                           payload=payload, run_id=run_id, lock=self.dialect == "postgresql")
            conn.execute(t.update().where(t.c.fingerprint == fingerprint)
                         .values(escalation_step=step + 1, updated_at=now))
            episodes.notified(conn, fingerprint, rec.episode, str(rec.severity), now)
            self._event(conn, now, "escalated",
                        f"not acked {format_duration(after)} after firing: escalated to "
                        f"{receiver} (step {step + 1})", fingerprint=fingerprint, rule=rec.rule,
                        source="escalation", run_id=run_id,
                        payload={"step": step + 1, "receiver": receiver})
        return True

    def unack(self, fingerprint: str, *, by: str, source: str = "cli",
              now: datetime | None = None) -> AlertRecord:
        now = now or utcnow()

        def change(rec: AlertRecord) -> tuple[dict[str, Any], str]:
            return {"acked_at": None, "acked_by": None, "ack_note": None}, f"unacked by {by}"

        return self._act(fingerprint, "unacked", change, by, source, None, now, {})

    def snooze(
        self, fingerprint: str, *, until: datetime, by: str, note: str = "", source: str = "cli",
        run_id: str | None = None, now: datetime | None = None,
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
                         {"until": until.isoformat(), "note": note})

    def _act(
        self, fingerprint: str, kind: str, change: Any, actor: str, source: str,
        run_id: str | None, now: datetime, payload: dict[str, Any],
    ) -> AlertRecord:
        t = schema.alerts
        with self._tx() as conn:
            query = sa.select(t).where(t.c.fingerprint == fingerprint)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise TimelineError(f"no alert with fingerprint {fingerprint!r}")
            rec = _record_from_row(row)
            values, reason = change(rec)
            conn.execute(t.update().where(t.c.fingerprint == fingerprint)
                         .values(**values, updated_at=now))
            self._event(conn, now, kind, reason, fingerprint=fingerprint, rule=rec.rule,
                        actor=actor, source=source, run_id=run_id, payload=payload)
            episodes.on_action(conn, rec, kind, actor, payload.get("outcome"), now)
            return rec.evolve(**values)

    def add_silence(
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
        with self._tx() as conn:
            conn.execute(schema.silences.insert().values(
                id=silence.id, matchers=[[m.name, m.op, m.value] for m in matchers],
                starts_at=starts_at, ends_at=ends_at, created_by=created_by, comment=comment,
                created_at=now, updated_at=now,
            ))
            self._event(conn, now, "silenced", silence.describe(), actor=created_by,
                        source=source, run_id=run_id,
                        payload={"silence_id": silence.id, "ends_at": ends_at.isoformat()})
            episodes.on_silence(conn, silence, now)
        return silence

    def expire_silence(self, silence_id: str, *, by: str, source: str = "cli",
                       now: datetime | None = None) -> Silence:
        """End a silence now (Alertmanager's expire). Idempotent for already-ended ones."""
        now = now or utcnow()
        with self._tx() as conn:
            row = conn.execute(sa.select(schema.silences).where(
                schema.silences.c.id.startswith(silence_id, autoescape=True))).all()
            if not row:
                raise TimelineError(f"no silence with id {silence_id!r} "
                                    "(see `alert-jobs silences`)")
            if len(row) > 1:
                raise TimelineError(f"{silence_id!r} matches {len(row)} silences; "
                                    "give more of the id")
            silence = _silence_from_row(row[0])
            if silence.ends_at > now:
                conn.execute(schema.silences.update().where(schema.silences.c.id == silence.id)
                             .values(ends_at=max(now, silence.starts_at), updated_at=now))
                self._event(conn, now, "unsilenced", f"silence {silence.id} expired by {by}",
                            actor=by, source=source, payload={"silence_id": silence.id})
        return silence

    def silences(self, *, include_expired: bool = False,
                 now: datetime | None = None) -> list[Silence]:
        now = now or utcnow()
        query = sa.select(schema.silences).order_by(schema.silences.c.starts_at)
        if not include_expired:
            query = query.where(schema.silences.c.ends_at > now)
        with self._tx() as conn:
            return [_silence_from_row(r) for r in conn.execute(query)]

    def _active_silences(self, conn: Connection, now: datetime) -> list[Silence]:
        t = schema.silences
        rows = conn.execute(sa.select(t).where(t.c.starts_at <= now, t.c.ends_at > now))
        return [_silence_from_row(r) for r in rows]

    def set_rule_disabled(self, rule: str, disabled: bool, *, by: str, note: str = "",
                          source: str = "cli", now: datetime | None = None) -> None:
        now = now or utcnow()
        t = schema.rule_settings
        with self._tx() as conn:
            exists = conn.execute(sa.select(t.c.rule).where(t.c.rule == rule)).first()
            values = {"disabled": disabled, "changed_at": now, "changed_by": by, "note": note}
            if exists:
                conn.execute(t.update().where(t.c.rule == rule).values(**values))
            else:
                conn.execute(t.insert().values(rule=rule, **values))
            kind = "disabled" if disabled else "enabled"
            self._event(conn, now, kind, f"rule {kind} by {by}" + (f": {note}" if note else ""),
                        rule=rule, actor=by, source=source)

    def disabled_rules(self) -> set[str]:
        t = schema.rule_settings
        with self._tx() as conn:
            return set(conn.execute(sa.select(t.c.rule).where(t.c.disabled.is_(True))).scalars())

    def _rule_disabled(self, conn: Connection, rule: str) -> bool:
        t = schema.rule_settings
        return bool(conn.execute(sa.select(t.c.disabled).where(t.c.rule == rule)).scalar())

    # ----- outbox -----------------------------------------------------------------

    def enqueue(self, receiver: str, kind: str, dedup_key: str, payload: dict[str, Any], *,
                fingerprint: str | None = None, rule: str | None = None,
                run_id: str | None = None, now: datetime | None = None) -> int | None:
        """Queue one message outside an evaluation (e.g. a test notification)."""
        with self._tx() as conn:
            return self._enqueue(conn, now or utcnow(), receiver, fingerprint, rule, kind,
                                 dedup_key, payload, run_id)

    def claim_due(self, *, limit: int = 100, lease: timedelta = timedelta(minutes=2),
                  now: datetime | None = None,
                  ids: Sequence[int] | None = None) -> list[OutboxItem]:
        """Claim undelivered rows that are due, for ``lease``; another worker skips them.

        A worker that dies after sending but before :meth:`mark_delivered` loses its
        lease, and the row is sent again: at most one duplicate per lost lease, never
        a loss. Receivers get the stable ``dedup_key`` to drop such duplicates.
        """
        now = now or utcnow()
        t = schema.outbox
        token = str(uuid.uuid4())
        due = sa.and_(
            t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now,
            sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
        )
        with self._tx() as conn:
            pick = sa.select(t.c.id).where(due).order_by(t.c.id).limit(limit)
            if ids is not None:
                pick = pick.where(t.c.id.in_(list(ids)))
            if self.dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            chosen = list(conn.execute(pick).scalars())
            if not chosen:
                return []
            conn.execute(t.update().where(t.c.id.in_(chosen), due)
                         .values(claimed_until=now + lease, claim_token=token))
            rows = conn.execute(sa.select(t).where(t.c.claim_token == token)).all()
        return [OutboxItem(r.id, r.receiver, r.kind, r.dedup_key, dict(r.payload), r.attempts,
                           r.fingerprint, r.rule, token) for r in rows]

    def mark_delivered(self, item: OutboxItem, *, run_id: str | None = None,
                       now: datetime | None = None, skipped: bool = False) -> None:
        """Done with a row: sent, or ``skipped`` because the receiver does not want it
        (a resolve to a receiver with send_resolved off)."""
        now = now or utcnow()
        t = schema.outbox
        with self._tx() as conn:
            # Only while this worker still holds the claim: a row reclaimed by another
            # worker after a lost lease is that worker's to mark.
            held = conn.execute(t.update().where(t.c.id == item.id,
                                                 t.c.claim_token == item.claim_token).values(
                delivered_at=now, claimed_until=None, attempts=t.c.attempts + 1, last_error=None))
            if skipped or held.rowcount == 0:
                return
            self._event(conn, now, "notification_sent", f"{item.kind} sent to {item.receiver}",
                        fingerprint=item.fingerprint, rule=item.rule, source="outbox",
                        run_id=run_id, payload={"receiver": item.receiver,
                                                "dedup_key": item.dedup_key,
                                                "attempt": item.attempts + 1})

    def mark_failed(self, item: OutboxItem, error: str, *, retry_at: datetime | None,
                    run_id: str | None = None, now: datetime | None = None) -> None:
        """Record a failed attempt; ``retry_at=None`` means permanent (never retried)."""
        now = now or utcnow()
        t = schema.outbox
        values: dict[str, Any] = {"claimed_until": None, "attempts": t.c.attempts + 1,
                                  "last_error": error}
        if retry_at is None:
            values["failed_at"] = now
        else:
            values["next_attempt_at"] = retry_at
        with self._tx() as conn:
            held = conn.execute(t.update().where(t.c.id == item.id,
                                                 t.c.claim_token == item.claim_token)
                                .values(**values))
            if held.rowcount == 0:
                return
            when = ("gave up" if retry_at is None
                    else f"retry at {retry_at.isoformat(timespec='seconds')}")
            self._event(conn, now, "notification_failed",
                        f"{item.kind} to {item.receiver} failed: {error}; {when}",
                        fingerprint=item.fingerprint, rule=item.rule, source="outbox",
                        run_id=run_id, payload={"receiver": item.receiver,
                                                "dedup_key": item.dedup_key,
                                                "attempt": item.attempts + 1,
                                                "permanent": retry_at is None})

    def outbox_rows(self, *, pending_only: bool = False) -> list[dict[str, Any]]:
        t = schema.outbox
        query = sa.select(t).order_by(t.c.id)
        if pending_only:
            query = query.where(t.c.delivered_at.is_(None), t.c.failed_at.is_(None))
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def delivery_problems(self) -> dict[str, Any]:
        """Counts and latest errors of undelivered messages, without loading the outbox."""
        t = schema.outbox
        waiting = sa.and_(t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.attempts > 0)
        failed = t.c.failed_at.is_not(None)
        out: dict[str, Any] = {}
        with self._tx() as conn:
            for name, cond in (("retrying", waiting), ("failed", failed)):
                count = conn.execute(sa.select(sa.func.count()).select_from(t).where(cond)).scalar()
                last = conn.execute(sa.select(t.c.receiver, t.c.last_error).where(cond)
                                    .order_by(t.c.id.desc()).limit(1)).first()
                out[name] = int(count or 0)
                out[f"{name}_last_error"] = f"{last.receiver}: {last.last_error}" if last else None
        return out

    def due_count(self, now: datetime | None = None) -> int:
        """Outbox rows due plus groups due for a flush: cheap enough for a sensor tick."""
        now = now or utcnow()
        t, g = schema.outbox, schema.groups
        outbox_due = sa.select(sa.func.count()).select_from(t).where(
            t.c.delivered_at.is_(None), t.c.failed_at.is_(None), t.c.next_attempt_at <= now,
            sa.or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
        groups_due = sa.select(sa.func.count()).select_from(g).where(g.c.next_flush_at <= now)
        with self._tx() as conn:
            return int(conn.execute(outbox_due).scalar() or 0) + int(
                conn.execute(groups_due).scalar() or 0)

    def dispose(self) -> None:
        self.engine.dispose()


def _episode_times(record: AlertRecord) -> dict[str, str | None]:
    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    ends = record.resolved_at if record.state == AlertState.RESOLVED else None
    return {"starts_at": iso(record.fired_at), "ends_at": iso(ends)}


def _silence_from_row(row: Any) -> Silence:
    matchers = tuple(Matcher(name, op, value) for name, op, value in row.matchers)
    return Silence(row.id, matchers, row.starts_at, row.ends_at, row.created_by, row.comment)


__all__ = ["Event", "OutboxItem", "ProcessResult", "Timeline", "TimelineError", "safe_url"]
