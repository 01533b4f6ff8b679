"""``alert_episodes``: one row per firing episode, written with the events that change it.

An *alert* for quality purposes is one episode of one alert instance (fingerprint +
episode) that reached firing. The timeline calls the hooks below inside the same
transaction as the event they mirror, so the row can never disagree with the events.
Keeping these facts as columns (not as JSON in event payloads) is what lets the
rollups be plain, portable ``GROUP BY`` queries on SQLite and PostgreSQL alike, and
durations are stored as seconds because the two databases subtract times differently.

Definitions (DESIGN/research §7.7):

* ``notifications``: firing notifications decided for the episode (first, repeat,
  unmuted, severity_raised, escalation steps). A group message may carry several.
* ``pages``: those notifications while the alert was ``critical`` (routes send
  critical alerts to the pager; see README "Alert quality").
* ``first_ack_at`` / ``ack_seconds``: first ack, measured from the first notification
  (PagerDuty's ack time; from firing if nothing was sent).
* ``first_response_at`` / ``response_seconds``: first human action while active (ack,
  snooze, matching silence, outcome), measured from firing (Grafana OnCall).
* ``resolve_seconds``: resolved − fired.
* ``flap``: the episode fired within :data:`FLAP_WINDOW` of the previous episode's resolve.
* ``outcome``: what a person said it was (``AckOutcome``), last word wins.

A fire drill's alert (an instance with the :data:`DRILL_LABEL` label, see
:mod:`alert_jobs.runtime.drill`) gets no episode: it was made up on purpose, so it must
not move the actionable rate, times to ack or the review (its own result is the
``drill_finished`` event).

Invariant the rollups rely on: ``ack_seconds`` is set exactly when ``first_ack_at`` is,
and ``resolve_seconds`` exactly when ``resolved_at`` is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import AlertRecord, Severity, Silence
from alert_jobs.store import rawsql, schema

FLAP_WINDOW = timedelta(hours=1)
#: The label that marks a fire drill's alert instance; its value is the drill's id.
DRILL_LABEL = "drill"
_RESPONSE_KINDS = {"acked", "snoozed", "outcome"}
t = schema.episodes


def _key(fingerprint: str, episode: int) -> Any:
    return sa.and_(t.c.fingerprint == fingerprint, t.c.episode == episode)


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else max(0.0, (later - earlier).total_seconds())


def utc_day(when: datetime) -> str:
    """The ``day`` column: the UTC date, whatever timezone the caller's clock is in."""
    return when.astimezone(UTC).strftime("%Y-%m-%d")


_RANK = sa.case({str(s): s.rank for s in Severity}, value=t.c.severity, else_=-1)
_KEYS: sa.BindParameter[Any] = sa.bindparam("keys", expanding=True)
_NOW = sa.bindparam("now", type_=schema.UTCDateTime())
_SELECT = (sa.select(t.c.fingerprint, t.c.episode, t.c.resolved_at)
           .where(sa.tuple_(t.c.fingerprint, t.c.episode).in_(_KEYS)))
_DELETE = sa.delete(t).where(sa.tuple_(t.c.fingerprint, t.c.episode).in_(_KEYS))
_INSERT = t.insert()
_BY_KEY = sa.and_(t.c.fingerprint == sa.bindparam("b_fp"), t.c.episode == sa.bindparam("b_ep"))
_RAISED = sa.case((sa.bindparam("rank", type_=sa.Integer()) > _RANK,
                    sa.bindparam("severity", type_=sa.String())), else_=t.c.severity)
_RESOLVE = t.update().where(_BY_KEY).values(
    resolved_at=_NOW, resolve_seconds=sa.bindparam("seconds", type_=sa.Float()),
    updated_at=_NOW)
_NOTIFIED = t.update().where(_BY_KEY).values(
    notifications=t.c.notifications + sa.bindparam("count", type_=sa.Integer()),
    pages=t.c.pages + sa.bindparam("pages", type_=sa.Integer()),
    first_notified_at=sa.func.coalesce(t.c.first_notified_at, _NOW),
    severity=_RAISED, updated_at=_NOW)
_RAISE = t.update().where(_BY_KEY).values(severity=_RAISED)


def on_decisions(conn: Connection, decided: Sequence[tuple[Any, AlertRecord | None]],
                 now: datetime) -> None:
    """Mirror engine decisions (in order) with a few statements for all of them, and
    none for the decisions that change no episode (most of them).

    An episode that starts with its first notification is inserted with it (no
    UPDATE after the INSERT); the previous episodes' resolve times (for ``flap``) are
    read with one SELECT.
    """
    starts: dict[tuple[str, int], dict[str, Any]] = {}
    notified_rows: list[dict[str, Any]] = []
    raises: list[dict[str, Any]] = []
    resolves: list[dict[str, Any]] = []
    resolved_here: dict[tuple[str, int], datetime] = {}
    for decision, prior in decided:
        record: AlertRecord = decision.record
        if record.episode <= 0 or DRILL_LABEL in record.labels:
            continue  # not an episode, or a fire drill's made-up one
        key = (record.fingerprint, record.episode)
        by_key = {"b_fp": key[0], "b_ep": key[1], "now": now}
        for ev in decision.events:
            if ev.kind == "firing" and not ev.payload.get("relapse"):
                starts[key] = {
                    "fingerprint": key[0], "episode": key[1], "rule": record.rule,
                    "severity": str(record.severity), "day": utc_day(now), "fired_at": now,
                    "first_notified_at": None, "notifications": 0, "pages": 0, "flap": False,
                    "updated_at": now}
            elif ev.kind == "resolved":
                resolves.append({**by_key, "seconds": _seconds(now, record.fired_at)})
                resolved_here[key] = now
        firing = sum(n.kind == "firing" for n in decision.notifications)
        severity = str(record.severity)
        if firing:
            pages = firing if severity == str(Severity.CRITICAL) else 0
            start = starts.get(key)
            if start is not None:  # inserted below with its notifications: no UPDATE
                start.update(notifications=start["notifications"] + firing,
                             pages=start["pages"] + pages,
                             first_notified_at=start["first_notified_at"] or now,
                             severity=max(start["severity"], severity,
                                          key=lambda s: Severity(s).rank))
            else:
                notified_rows.append({**by_key, "count": firing, "pages": pages,
                                      "severity": severity, "rank": record.severity.rank})
        elif (record.state.is_active and prior is not None and prior.severity != record.severity
              and record.severity != Severity.INFO):
            raises.append({**by_key, "severity": severity, "rank": record.severity.rank})
    if starts:
        _start(conn, starts, resolved_here, now)
    for statement, rows in ((_NOTIFIED, notified_rows), (_RAISE, raises),
                            (_RESOLVE, resolves)):
        if rows:
            conn.execute(statement, rows)


def _start(conn: Connection, starts: dict[tuple[str, int], dict[str, Any]],
           resolved_here: dict[tuple[str, int], datetime], now: datetime) -> None:
    previous = {(fp, episode - 1) for fp, episode in starts}
    known = {(r.fingerprint, r.episode): r.resolved_at for r in conn.execute(
        _SELECT, {"keys": sorted(previous | set(starts))})}
    for (fp, episode), row in starts.items():
        resolved = resolved_here.get((fp, episode - 1)) or known.get((fp, episode - 1))
        row["flap"] = resolved is not None and now - resolved <= FLAP_WINDOW
    stale = sorted(k for k in starts if k in known)
    if stale:  # a row left from an old episode numbering: the new episode replaces it
        conn.execute(_DELETE, {"keys": stale})
    if rawsql.is_sqlite(conn):  # on the decision's path, see store/rawsql.py
        rawsql.INSERT_EPISODE.run(conn, list(starts.values()))
    else:
        conn.execute(_INSERT, list(starts.values()))


def notified(conn: Connection, fingerprint: str, episode: int, severity: str, now: datetime,
             *, count: int = 1) -> None:
    """Count ``count`` firing notifications (pages when critical) for the episode."""
    page = count if severity == str(Severity.CRITICAL) else 0
    conn.execute(_NOTIFIED, {"b_fp": fingerprint, "b_ep": episode, "now": now, "count": count,
                             "pages": page, "severity": severity,
                             "rank": Severity(severity).rank})


def on_action(conn: Connection, record: AlertRecord, kind: str, actor: str,
              outcome: str | None, now: datetime) -> None:
    """Mirror a human action on the alert's current (or last) episode."""
    if record.episode <= 0 or (kind not in _RESPONSE_KINDS and not outcome):
        return
    row = conn.execute(sa.select(t).where(_key(record.fingerprint, record.episode))).first()
    if row is None:
        return
    values: dict[str, Any] = {"updated_at": now}
    if outcome:
        values.update(outcome=outcome, outcome_by=actor)
    if record.state.is_active and row.resolved_at is None:
        if row.first_response_at is None:
            values.update(first_response_at=now, response_seconds=_seconds(now, row.fired_at))
        if kind == "acked" and row.first_ack_at is None:
            values.update(first_ack_at=now, ack_seconds=_seconds(
                now, row.first_notified_at or row.fired_at))
    conn.execute(t.update().where(_key(record.fingerprint, record.episode)).values(**values))


def on_silence(conn: Connection, silence: Silence, now: datetime) -> None:
    """A new silence is a first response for every active alert it mutes."""
    if not silence.is_active(now):
        return
    a = schema.alerts
    rows = conn.execute(sa.select(a.c.fingerprint, a.c.rule, a.c.labels, a.c.severity,
                                  a.c.episode).where(a.c.state.in_(["firing", "recovering"])))
    for r in rows.all():
        labels = {**(r.labels or {}), "alertname": r.rule, "severity": r.severity}
        if not silence.matches(labels):
            continue
        row = conn.execute(sa.select(t.c.fired_at, t.c.first_response_at)
                           .where(_key(r.fingerprint, r.episode))).first()
        if row is not None and row.first_response_at is None:
            # Conditional, because the alert row is not locked here: an ack that got in
            # first keeps its (earlier) first response.
            conn.execute(t.update().where(_key(r.fingerprint, r.episode),
                                          t.c.first_response_at.is_(None)).values(
                first_response_at=now, response_seconds=_seconds(now, row.fired_at),
                updated_at=now))


# ----- migration backfill -----------------------------------------------------------

_BACKFILL_KINDS = ("firing", "resolved", "notify", "acked", "snoozed", "outcome", "escalated")
_BATCH = 1000


def backfill(conn: Connection) -> int:
    """Rebuild episode rows from existing events (a one-off when the table is created).

    Streams the relevant events of each fingerprint in time order. Severity is the
    alert's current one (old events do not carry it). Episode numbers are aligned with
    the live ``alert_alerts.episode`` so later writes update the right row even when
    old events were pruned. Returns the number of rows written.
    """
    e, a = schema.events, schema.alerts
    current = {r.fingerprint: (r.episode, r.severity, r.labels, r.rule)
               for r in conn.execute(sa.select(a.c.fingerprint, a.c.episode, a.c.severity,
                                               a.c.labels, a.c.rule))}
    query = (sa.select(e.c.fingerprint, e.c.at, e.c.kind, e.c.actor, e.c.payload, e.c.rule)
             .where(e.c.fingerprint.is_not(None), e.c.kind.in_(_BACKFILL_KINDS))
             .order_by(e.c.fingerprint, e.c.at, e.c.id))
    written = 0
    batch: list[dict[str, Any]] = []
    fp_events: list[Any] = []
    last_fp: str | None = None
    for ev in conn.execute(query):
        if ev.fingerprint != last_fp and fp_events:
            batch.extend(_episodes_of(fp_events, current))
            fp_events = []
        last_fp = ev.fingerprint
        fp_events.append(ev)
        if len(batch) >= _BATCH:
            conn.execute(t.insert(), batch)
            written += len(batch)
            batch = []
    if fp_events:
        batch.extend(_episodes_of(fp_events, current))
    if batch:
        conn.execute(t.insert(), batch)
        written += len(batch)
    return written


def _episodes_of(events: Iterable[Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    events = list(events)
    fp = events[0].fingerprint
    live_episode, severity, labels, live_rule = current.get(
        fp, (0, str(Severity.WARNING), {}, events[0].rule))
    if DRILL_LABEL in (labels or {}):
        return []  # a fire drill's alert: never an episode
    rows: list[dict[str, Any]] = []
    row: dict[str, Any] | None = None
    prev_resolved: datetime | None = None
    for ev in events:
        payload = ev.payload or {}
        if ev.kind == "firing" and not payload.get("relapse"):
            if row is not None:
                prev_resolved = row["resolved_at"]
            row = {"fingerprint": fp, "episode": len(rows) + 1, "rule": ev.rule or live_rule,
                   "severity": severity, "day": utc_day(ev.at), "fired_at": ev.at,
                   "first_notified_at": None, "first_ack_at": None, "first_response_at": None,
                   "resolved_at": None, "ack_seconds": None, "response_seconds": None,
                   "resolve_seconds": None, "outcome": None, "outcome_by": None,
                   "notifications": 0, "pages": 0, "updated_at": ev.at,
                   "flap": prev_resolved is not None and ev.at - prev_resolved <= FLAP_WINDOW}
            rows.append(row)
            continue
        if row is None:
            continue
        if ev.kind == "resolved" and row["resolved_at"] is None:
            row["resolved_at"] = ev.at
            row["resolve_seconds"] = _seconds(ev.at, row["fired_at"])
        elif (ev.kind == "notify" and payload.get("reason")) or ev.kind == "escalated":
            row["notifications"] += 1
            row["pages"] += 1 if severity == str(Severity.CRITICAL) else 0
            row["first_notified_at"] = row["first_notified_at"] or ev.at
        elif ev.kind in _RESPONSE_KINDS:
            if payload.get("outcome"):
                row["outcome"], row["outcome_by"] = payload["outcome"], ev.actor
            if row["resolved_at"] is None:
                if row["first_response_at"] is None:
                    row["first_response_at"] = ev.at
                    row["response_seconds"] = _seconds(ev.at, row["fired_at"])
                if ev.kind == "acked" and row["first_ack_at"] is None:
                    row["first_ack_at"] = ev.at
                    row["ack_seconds"] = _seconds(ev.at, row["first_notified_at"]
                                                  or row["fired_at"])
    offset = max(0, int(live_episode or 0) - len(rows))
    for r in rows:
        r["episode"] += offset
    return rows

