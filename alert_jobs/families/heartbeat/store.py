"""Heartbeat rows and their ping log, in the timeline database.

A ping is one locked read, one UPDATE and one INSERT in one transaction: cheap enough
for a busy endpoint. Each row keeps ``alert_after``, the next moment its verdict can
change by time alone (indexed), so the sensor's query returns only overdue rows, and
100,000 registered checks cost one index range scan (a row with an open problem is also
looked at every ``REOBSERVE``). The ping log keeps the last
``keep`` pings per check (pruned every few pings), so it never grows without bound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.config.retention import RetentionConfig
from alert_jobs.families.heartbeat.check import (
    Evaluation,
    HeartbeatState,
    HeartbeatStatus,
    Schedule,
    Signal,
    apply_ping,
    evaluate,
    pause,
    resume,
)
from alert_jobs.families.heartbeat.config import AUTO_RULE, HeartbeatCheck
from alert_jobs.store import Timeline, TimelineError, schema
from alert_jobs.store.db import Database
from alert_jobs.store.retention import Trimmed, delete_in_batches

heartbeats = sa.Table(
    "alert_heartbeats",
    schema.metadata,
    sa.Column("slug", sa.String(128), primary_key=True),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("declared", sa.Boolean, nullable=False, default=False),  # from alerts.yaml
    sa.Column("config_hash", sa.String(32), nullable=False, default=""),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("period_seconds", sa.Float),
    sa.Column("cron", sa.String(128)),
    sa.Column("timezone", sa.String(64), nullable=False, default="UTC"),
    sa.Column("grace_seconds", sa.Float, nullable=False),
    sa.Column("max_duration_seconds", sa.Float),
    sa.Column("manual_resume", sa.Boolean, nullable=False, default=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_ping", schema.UTCDateTime),
    sa.Column("last_signal", sa.String(16)),
    sa.Column("last_exit_code", sa.Integer),
    sa.Column("last_start", schema.UTCDateTime),
    sa.Column("last_start_rid", sa.String(64)),
    sa.Column("last_duration_seconds", sa.Float),
    sa.Column("open_problems", sa.String(64), nullable=False, default=""),
    # When the sensor must look at this row next (deadline, or now after a ping that
    # changes an alert; every 5 min while one is open); NULL when only a ping can change
    # anything (new, paused).
    sa.Column("alert_after", schema.UTCDateTime),
    sa.Column("n_pings", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", schema.UTCDateTime, nullable=False),
    sa.Column("updated_at", schema.UTCDateTime, nullable=False),
    sa.Index("ix_alert_heartbeats_alert_after", "alert_after"),
)

heartbeat_pings = sa.Table(
    "alert_heartbeat_pings",
    schema.metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("slug", sa.String(128), nullable=False),
    sa.Column("at", schema.UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # success | fail | start | ignored
    sa.Column("exit_code", sa.Integer),
    sa.Column("rid", sa.String(64)),
    sa.Column("duration_seconds", sa.Float),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("remote_addr", sa.String(64), nullable=False, default=""),
    sa.Column("user_agent", sa.String(256), nullable=False, default=""),
    sa.Index("ix_alert_heartbeat_pings_slug_id", "slug", "id"),
)

PRUNE_EVERY = 20
_PING_COLUMNS = ("status", "last_ping", "last_signal", "last_exit_code", "last_start",
                 "last_start_rid", "last_duration_seconds", "manual_resume", "n_pings",
                 "alert_after", "updated_at")
# A ping's row update, run once per batch with one parameter set per row (executemany).
_UPDATE_PING = sa.update(heartbeats).where(heartbeats.c.slug == sa.bindparam("b_slug")).values(
    {c: sa.bindparam(c) for c in _PING_COLUMNS})
_READ_STAMPS = sa.select(heartbeats.c.slug, heartbeats.c.updated_at).where(
    heartbeats.c.slug.in_(sa.bindparam("slugs", expanding=True))).order_by(heartbeats.c.slug)
_LOCK_STAMPS = _READ_STAMPS.with_for_update()
_SAVE_EVALUATION = sa.update(heartbeats).where(
    heartbeats.c.slug == sa.bindparam("b_slug"),
    heartbeats.c.updated_at == sa.bindparam("b_updated_at", type_=schema.UTCDateTime()))
# While a problem is open the row is looked at again this often (time alone would never
# bring it back): the engine re-sends after repeat_interval, and tells of an alert whose
# silence or disabled rule ended, only when it observes the alert again.
REOBSERVE = timedelta(minutes=5)


def schedule_of(check: HeartbeatCheck, default_tz: str = "UTC") -> Schedule:
    return Schedule(kind=check.kind, period=check.period, cron=check.cron,
                    timezone=check.timezone or default_tz, grace=check.grace,
                    max_duration=check.max_duration)


def config_hash(check: HeartbeatCheck, default_tz: str = "UTC") -> str:
    s = schedule_of(check, default_tz)
    raw = json.dumps([s.kind, s.period and s.period.total_seconds(), s.cron, s.timezone,
                      s.grace.total_seconds(), s.max_duration and s.max_duration.total_seconds(),
                      check.manual_resume, check.name])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class HeartbeatRow:
    """A row: the pure state plus what the store needs around it."""

    state: HeartbeatState
    rule: str
    declared: bool
    updated_at: datetime
    n_pings: int
    created_at: datetime


@dataclass(frozen=True)
class PingResult:
    row: HeartbeatRow
    kind: str  # success | fail | start | ignored
    evaluation: Evaluation
    needs_engine: bool  # an alert opens or closes: evaluate now, not at the next tick


@dataclass(frozen=True)
class CreateSpec:
    """How to create a check its first ping names (auto-create)."""

    schedule: Schedule
    max_checks: int
    rule: str = AUTO_RULE
    declared: bool = False  # a rules-file check pinged before the sensor synced it
    config_hash: str = ""
    manual_resume: bool = False


@dataclass(frozen=True)
class Ping:
    """One ping as received, for :meth:`HeartbeatStore.ping_many`."""

    slug: str
    signal: Signal
    now: datetime
    rid: str | None = None
    exit_code: int | None = None
    body: str = ""
    remote_addr: str = ""
    user_agent: str = ""
    keep: int = 100
    create: CreateSpec | None = None


class TooManyChecksError(TimelineError):
    """Auto-create refused: the table already holds ``max_checks`` checks."""


def _text(value: str, limit: int | None = None) -> str:
    """Client text as stored: PostgreSQL text cannot hold NUL, and a log tail or a header
    may contain one (refusing it would lose the job's ping)."""
    return value[:limit].replace("\x00", "\ufffd")


def _seconds(td: timedelta | None) -> float | None:
    return None if td is None else td.total_seconds()


def _td(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def row_from_db(r: Any) -> HeartbeatRow:
    sched = Schedule(kind=r.kind, period=_td(r.period_seconds), cron=r.cron,
                     timezone=r.timezone, grace=timedelta(seconds=r.grace_seconds),
                     max_duration=_td(r.max_duration_seconds))
    state = HeartbeatState(
        slug=r.slug, schedule=sched, status=HeartbeatStatus(r.status), last_ping=r.last_ping,
        last_signal=Signal(r.last_signal) if r.last_signal else None,
        last_exit_code=r.last_exit_code, last_start=r.last_start,
        last_start_rid=r.last_start_rid, last_duration=_td(r.last_duration_seconds),
        manual_resume=bool(r.manual_resume),
        open_problems=frozenset(p for p in (r.open_problems or "").split(",") if p))
    return HeartbeatRow(state, r.rule, bool(r.declared), r.updated_at, int(r.n_pings or 0),
                        r.created_at)


def _schedule_values(s: Schedule) -> dict[str, Any]:
    return {"kind": s.kind, "period_seconds": _seconds(s.period), "cron": s.cron,
            "timezone": s.timezone, "grace_seconds": s.grace.total_seconds(),
            "max_duration_seconds": _seconds(s.max_duration)}


def _state_values(st: HeartbeatState) -> dict[str, Any]:
    return {"status": str(st.status), "last_ping": st.last_ping,
            "last_signal": str(st.last_signal) if st.last_signal else None,
            "last_exit_code": st.last_exit_code, "last_start": st.last_start,
            "last_start_rid": st.last_start_rid,
            "last_duration_seconds": _seconds(st.last_duration),
            "manual_resume": st.manual_resume}


def _next_look(ev: Evaluation, now: datetime) -> datetime | None:
    """The next deadline; at most ``REOBSERVE`` away while a problem is open."""
    if not ev.open_problems:
        return ev.alert_after
    again = now + REOBSERVE
    return again if ev.alert_after is None else min(ev.alert_after, again)


def _alert_after(state: HeartbeatState, ev: Evaluation, now: datetime) -> datetime | None:
    """Now when an alert must open or close, else the next time to look."""
    return now if ev.changes(state) else _next_look(ev, now)


class HeartbeatStore:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline

    # ----- pings --------------------------------------------------------------------

    def ping(self, slug: str, signal: Signal, now: datetime, *, rid: str | None = None,
             exit_code: int | None = None, body: str = "", remote_addr: str = "",
             user_agent: str = "", keep: int = 100, create: CreateSpec | None = None,
             ) -> PingResult | None:
        """Record one ping; None when the slug is unknown and ``create`` is not given."""
        (result,) = self.ping_many([Ping(slug, signal, now, rid=rid, exit_code=exit_code,
                                         body=body, remote_addr=remote_addr,
                                         user_agent=user_agent, keep=keep, create=create)])
        if isinstance(result, Exception):
            raise result
        return result

    def ping_many(self, pings: Sequence[Ping]) -> list[PingResult | Exception | None]:
        """Record pings in one transaction, in order; one result per ping: its
        :class:`PingResult`, None (unknown slug, no ``create``) or the
        :class:`TooManyChecksError` that refused it (the others are still recorded).

        One locking read of every row the batch names (in slug order, so two writers
        never deadlock), then one UPDATE per changed row and one multi-row INSERT: a
        batch of 50 pings costs a few statements more than one ping.
        """
        t, p = heartbeats, heartbeat_pings
        results: list[PingResult | Exception | None] = []
        with self.timeline.tx() as conn:
            query = sa.select(t).where(t.c.slug.in_(sorted({x.slug for x in pings})))
            if self.timeline.lock_rows():
                query = query.order_by(t.c.slug).with_for_update()
            rows = {r.slug: row_from_db(r) for r in conn.execute(query)}
            updates: dict[str, dict[str, Any]] = {}
            inserts: list[dict[str, Any]] = []
            prune: dict[str, int] = {}
            for x in pings:
                row = rows.get(x.slug)
                if row is None:
                    if x.create is None:
                        results.append(None)
                        continue
                    try:
                        self._create(conn, x.slug, x.create, x.now)
                    except TooManyChecksError as exc:
                        results.append(exc)
                        continue
                    row = self._locked(conn, x.slug)
                    assert row is not None
                rid = _text(x.rid, 64) if x.rid else None  # as stored: a finish pairs its start
                outcome = apply_ping(row.state, x.signal, x.now, rid=rid,
                                     exit_code=x.exit_code)
                ev = evaluate(outcome.state, x.now)
                n = row.n_pings + 1
                updates[x.slug] = {
                    "b_slug": x.slug, **_state_values(outcome.state), "n_pings": n,
                    "alert_after": _alert_after(outcome.state, ev, x.now),
                    "updated_at": x.now}
                inserts.append({
                    "slug": x.slug, "at": x.now, "kind": outcome.kind,
                    "exit_code": x.exit_code, "rid": rid,
                    "duration_seconds": _seconds(outcome.duration), "body": _text(x.body),
                    "remote_addr": _text(x.remote_addr, 64),
                    "user_agent": _text(x.user_agent, 256)})
                if n % PRUNE_EVERY == 0:
                    prune[x.slug] = x.keep
                new_row = HeartbeatRow(outcome.state, row.rule, row.declared, x.now, n,
                                       row.created_at)
                rows[x.slug] = new_row
                results.append(PingResult(new_row, outcome.kind, ev,
                                          ev.changes(outcome.state)))
            if updates:
                conn.execute(_UPDATE_PING, list(updates.values()))
            if inserts:
                conn.execute(p.insert(), inserts)
            for slug, keep in prune.items():
                self._prune(conn, slug, keep)
        return results

    def _locked(self, conn: Connection, slug: str) -> HeartbeatRow | None:
        query = sa.select(heartbeats).where(heartbeats.c.slug == slug)
        if self.timeline.lock_rows():
            query = query.with_for_update()
        r = conn.execute(query).first()
        return row_from_db(r) if r is not None else None

    def _create(self, conn: Connection, slug: str, spec: CreateSpec, now: datetime) -> None:
        t = heartbeats
        count = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0
        if not spec.declared and count >= spec.max_checks:
            raise TooManyChecksError(f"auto-create refused: {count} heartbeats already exist "
                                     f"(heartbeats.auto_create.max_checks)")
        stmt = self.timeline.insert_ignore(t, ["slug"]).values(
            slug=slug, rule=spec.rule, declared=spec.declared, config_hash=spec.config_hash,
            **_schedule_values(spec.schedule), status=str(HeartbeatStatus.NEW),
            manual_resume=spec.manual_resume, open_problems="", n_pings=0, created_at=now,
            updated_at=now)
        conn.execute(stmt)

    def _prune(self, conn: Connection, slug: str, keep: int) -> None:
        p = heartbeat_pings
        cutoff = conn.execute(sa.select(p.c.id).where(p.c.slug == slug)
                              .order_by(p.c.id.desc()).offset(keep - 1).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(p.delete().where(p.c.slug == slug, p.c.id < cutoff))

    # ----- the sensor's side -----------------------------------------------------------

    def due(self, now: datetime, limit: int = 10_000) -> list[HeartbeatRow]:
        """Rows whose verdict may have changed: one range scan of the ``alert_after`` index."""
        t = heartbeats
        with self.timeline.read() as conn:
            rows = conn.execute(sa.select(t).where(t.c.alert_after <= now)
                                .order_by(t.c.alert_after).limit(limit)).all()
        return [row_from_db(r) for r in rows]

    def save_evaluations(self, items: Sequence[tuple[HeartbeatRow, Evaluation]],
                         now: datetime) -> list[str]:
        """Store what the engine was told, in one transaction; returns the slugs skipped
        because a ping changed them meanwhile (they are marked due again at once).

        One read of the rows' ``updated_at`` (locked, in slug order, as pings lock
        them) tells which rows a ping changed; then one UPDATE (an executemany) for the
        rest and one for the changed ones: a tick where 100 checks go down costs three
        statements here, not a hundred.
        """
        t = heartbeats
        if not items:
            return []
        with self.timeline.tx() as conn:
            query = _LOCK_STAMPS if self.timeline.lock_rows() else _READ_STAMPS
            stamps = dict(conn.execute(query, {"slugs": sorted({r.state.slug for r, _ in items})})
                          .tuples().all())
            saves: list[dict[str, Any]] = []
            stale: list[str] = []
            for row, ev in items:
                slug = row.state.slug
                if stamps.get(slug) != row.updated_at:  # changed meanwhile (or deleted)
                    stale.append(slug)
                    continue
                stored = HeartbeatStatus.DOWN if ev.status == HeartbeatStatus.DOWN else \
                    row.state.status
                saves.append({"b_slug": slug, "b_updated_at": row.updated_at,
                              "status": str(stored),
                              "open_problems": ",".join(sorted(ev.open_problems)),
                              "alert_after": _next_look(ev, now),
                              "updated_at": max(now, row.updated_at)})
            if saves:
                conn.execute(_SAVE_EVALUATION, saves)
            if stale:  # make sure they are looked at again
                conn.execute(sa.update(t).where(t.c.slug.in_(stale)).values(alert_after=now))
        return stale

    def sync_declared(self, checks: Sequence[HeartbeatCheck], now: datetime,
                      default_tz: str = "UTC") -> list[HeartbeatRow]:
        """Make the table match the rules file's checks; returns the rows whose open
        alerts the caller resolves: checks removed from the file, and checks whose slug
        now belongs to another rule (an auto-created check declared in the file, a
        renamed rule) as they were under their old rule. Rows created by pings are left
        alone."""
        t = heartbeats
        removed: list[HeartbeatRow] = []
        with self.timeline.tx() as conn:
            existing = {r.slug: r for r in conn.execute(sa.select(t).where(
                t.c.slug.in_([c.ping_slug for c in checks]) | t.c.declared.is_(True)))}
            wanted = {c.ping_slug: c for c in checks}
            for slug, check in wanted.items():
                digest = config_hash(check, default_tz)
                sched = schedule_of(check, default_tz)
                r = existing.get(slug)
                if r is None:
                    conn.execute(t.insert().values(
                        slug=slug, rule=check.name, declared=True, config_hash=digest,
                        **_schedule_values(sched), status=str(HeartbeatStatus.NEW),
                        manual_resume=check.manual_resume, open_problems="", n_pings=0,
                        created_at=now, updated_at=now))
                    continue
                if r.config_hash == digest and r.declared:
                    continue
                old = row_from_db(r)
                moved = old.rule != check.name
                if moved:  # its alerts under the old rule resolve; the new rule re-fires
                    removed.append(old)
                state = old.state.evolve(
                    schedule=sched, manual_resume=check.manual_resume,
                    open_problems=frozenset() if moved else old.state.open_problems)
                ev = evaluate(state, now)
                conn.execute(sa.update(t).where(t.c.slug == slug).values(
                    rule=check.name, declared=True, config_hash=digest,
                    **_schedule_values(sched), manual_resume=check.manual_resume,
                    open_problems=",".join(sorted(state.open_problems)),
                    alert_after=_alert_after(state, ev, now), updated_at=now))
            for slug, r in existing.items():
                if slug not in wanted and r.declared:
                    removed.append(row_from_db(r))
                    conn.execute(t.delete().where(t.c.slug == slug))
                    conn.execute(heartbeat_pings.delete().where(
                        heartbeat_pings.c.slug == slug))
        return removed

    # ----- operators ----------------------------------------------------------------

    def set_paused(self, slug: str, paused: bool, now: datetime) -> HeartbeatRow:
        """Pause (never alert; open alerts resolve) or resume (back to *new*)."""
        t = heartbeats
        with self.timeline.tx() as conn:
            row = self._locked(conn, slug)
            if row is None:
                raise TimelineError(f"unknown heartbeat {slug!r}")
            if not paused and row.state.status != HeartbeatStatus.PAUSED:
                # resume resets the schedule (back to new, which never alerts): on a
                # check that is down it would silence a dead job until its next ping
                raise TimelineError(f"heartbeat {slug!r} is not paused (stored status "
                                    f"{row.state.status}); nothing to resume")
            state = pause(row.state) if paused else resume(row.state)
            ev = evaluate(state, now)
            conn.execute(sa.update(t).where(t.c.slug == slug).values(
                **_state_values(state), alert_after=_alert_after(state, ev, now),
                updated_at=now))
        return HeartbeatRow(state, row.rule, row.declared, now, row.n_pings, row.created_at)

    # ----- reads --------------------------------------------------------------------

    def get(self, slug: str) -> HeartbeatRow | None:
        with self.timeline.read() as conn:
            r = conn.execute(sa.select(heartbeats).where(
                heartbeats.c.slug == slug)).first()
        return row_from_db(r) if r is not None else None

    def rows(self, limit: int | None = None) -> list[HeartbeatRow]:
        query = sa.select(heartbeats).order_by(heartbeats.c.slug)
        with self.timeline.read() as conn:
            return [row_from_db(r) for r in conn.execute(query.limit(limit))]

    def count(self) -> int:
        with self.timeline.read() as conn:
            return int(conn.execute(sa.select(sa.func.count())
                                    .select_from(heartbeats)).scalar() or 0)

    def pings(self, slug: str, limit: int = 20) -> list[dict[str, Any]]:
        p = heartbeat_pings
        with self.timeline.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(p).where(p.c.slug == slug).order_by(p.c.id.desc()).limit(limit))]

    def rows_of(self, slugs: Sequence[str]) -> dict[str, HeartbeatRow]:
        """These checks' rows by slug (one query; a slug without a row is left out)."""
        if not slugs:
            return {}
        query = sa.select(heartbeats).where(heartbeats.c.slug.in_(sorted(set(slugs))))
        with self.timeline.read() as conn:
            return {r.slug: row_from_db(r) for r in conn.execute(query)}

    def undeclared(self, limit: int) -> tuple[list[HeartbeatRow], int]:
        """Up to ``limit`` checks created by their first ping (by slug), and how many
        there are in all: a page lists some of 10,000 without reading them all."""
        t = heartbeats
        with self.timeline.read() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(
                t.c.declared.is_(False))).scalar() or 0)
            rows = conn.execute(sa.select(t).where(t.c.declared.is_(False))
                                .order_by(t.c.slug).limit(limit)).all()
        return [row_from_db(r) for r in rows], total

    def recent_pings(self, slugs: Sequence[str], per_slug: int = 5
                     ) -> dict[str, list[dict[str, Any]]]:
        """The newest ``per_slug`` pings of each check, newest first, in one query."""
        if not slugs:
            return {}
        p = heartbeat_pings
        ranked = sa.select(
            p.c.slug, p.c.at, p.c.kind, p.c.exit_code, p.c.duration_seconds, p.c.remote_addr,
            sa.func.row_number().over(partition_by=p.c.slug, order_by=p.c.id.desc())
            .label("n")).where(p.c.slug.in_(sorted(set(slugs)))).subquery()
        query = sa.select(ranked).where(ranked.c.n <= per_slug).order_by(ranked.c.slug,
                                                                           ranked.c.n)
        out: dict[str, list[dict[str, Any]]] = {}
        with self.timeline.read() as conn:
            for r in conn.execute(query):
                item = dict(r._mapping)
                item.pop("n")
                out.setdefault(item["slug"], []).append(item)
        return out


def trim_pings(db: Database, policy: RetentionConfig, now: datetime, trimmed: Trimmed) -> None:
    """Retention (the family's ``trim`` hook): every check keeps its newest
    ``pings_per_check`` pings; older ones go in batches, check by check."""
    p = heartbeat_pings
    keep = policy.pings_per_check
    with db.read() as conn:
        crowded = conn.execute(sa.select(p.c.slug).group_by(p.c.slug)
                               .having(sa.func.count() > keep)).scalars().all()
    for slug in crowded:
        with db.read() as conn:
            oldest_kept = conn.execute(
                sa.select(p.c.id).where(p.c.slug == slug).order_by(p.c.id.desc())
                .offset(keep - 1).limit(1)).scalar()
        if oldest_kept is not None:
            delete_in_batches(db, p, sa.and_(p.c.slug == slug, p.c.id < oldest_kept),
                              policy.batch, trimmed)
