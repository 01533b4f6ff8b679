"""Alertmanager's dispatcher on SQL: per-alert intents → one message per group per interval.

The engine decides per alert ("dead_letters{queue=q7} fires, send it"). Each intent is
queued under every (route, receiver, group labels) it routes to. A group is flushed
``group_wait`` after its first alert, then at most once per ``group_interval``: all
intents queued since the last flush become one :class:`GroupMessage` in the outbox.
So 1,000 alerts sharing group labels are one page, not 1,000, and an alert that fired
and resolved before its group was flushed is never sent at all.

Everything runs inside the caller's transaction (``conn``), so queuing is atomic with
the decision that caused it, and a flush is atomic with the outbox row it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.messages import AlertMessage, GroupMessage
from alert_jobs.core.routing import RouteTarget
from alert_jobs.store import rawsql, schema
from alert_jobs.store.db import pg_lock_or_create

#: Intents that do not wait for group_interval: a warning that became critical is news.
URGENT_REASONS = frozenset({"severity_raised"})

EnqueueOutbox = Callable[[Connection, datetime, str, str | None, str, str, dict[str, Any]],
                         int | None]


@dataclass(frozen=True)
class Intent:
    """One alert's notification intent for one route target (a row of the queue)."""

    target: RouteTarget
    labels: dict[str, str]
    fingerprint: str
    rule: str
    kind: str
    reason: str
    payload: dict[str, Any]
    run_id: str | None


def queue(conn: Connection, *, now: datetime, target: RouteTarget, labels: dict[str, str],
          fingerprint: str, rule: str, kind: str, reason: str, payload: dict[str, Any],
          run_id: str | None, lock: bool) -> None:
    """Queue one alert's intent for ``target``'s group and arm the group's timer."""
    queue_many(conn, [Intent(target, labels, fingerprint, rule, kind, reason, payload, run_id)],
               now=now, lock=lock)


_g = schema.groups
_INSERT_QUEUE = schema.notify_queue.insert()
_SELECT_GROUPS = (sa.select(_g).where(sa.tuple_(_g.c.receiver, _g.c.group_key)
                                      .in_(sa.bindparam("keys", expanding=True)))
                  .order_by(_g.c.receiver, _g.c.group_key))
_UPDATE_GROUP = (_g.update().where(_g.c.receiver == sa.bindparam("b_receiver"),
                                   _g.c.group_key == sa.bindparam("b_group_key"))
                 .values(next_flush_at=sa.bindparam("next_flush_at"),
                         group_interval_seconds=sa.bindparam("group_interval_seconds")))


_INSERT_GROUPS = _g.insert()
def queue_many(conn: Connection, intents: Sequence[Intent], *, now: datetime,
               lock: bool) -> list[Any]:
    """Queue intents (in order) and arm their groups' timers: a few statements for all.

    One INSERT of every queue row; one statement that reads every group involved
    (on PostgreSQL it locks or creates them, in key order, after the alert rows, so
    writers never deadlock); an INSERT of the new groups (SQLite) and one UPDATE of the
    groups whose timer changed. The timer rules are
    applied in memory, intent by intent, exactly as if each were queued on its own.

    Returns the groups (as locked and updated here) that are due now, so the caller
    can flush them without looking for due groups again.
    """
    if not intents:
        return []
    keyed = [((i.target.receiver, i.target.group_key(i.labels)), i) for i in intents]
    queued = [{
        "created_at": now, "receiver": key[0], "group_key": key[1],
        "fingerprint": i.fingerprint, "rule": i.rule, "kind": i.kind, "reason": i.reason,
        "payload": i.payload, "run_id": i.run_id} for key, i in keyed]
    if rawsql.is_sqlite(conn):  # on the decision's path, see store/rawsql.py
        rawsql.INSERT_QUEUE.run(conn, queued)
    else:
        conn.execute(_INSERT_QUEUE, queued)
    keys = sorted({key for key, _ in keyed})
    if lock:  # PostgreSQL: lock or create every group row in key order, one statement
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for key, i in keyed:
            fresh.setdefault(key, _fresh(key, i, now))
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        lock_or_create = pg_lock_or_create(_g, ("receiver", "group_key"))
        for r in conn.execute(lock_or_create, [fresh[k] for k in keys]):
            if not r.created:  # created rows are armed from scratch below, like new ones
                rows[(r.receiver, r.group_key)] = {c.name: r._mapping[c.name] for c in _g.c}
        new, changed = _arm(rows, keyed, now)
        changed |= {k for k in new if rows[k] != fresh[k]}  # created, then re-armed
    else:  # SQLite: the transaction holds the database
        rows = {(r.receiver, r.group_key): dict(r._mapping)
                for r in conn.execute(_SELECT_GROUPS, {"keys": keys})}
        new, changed = _arm(rows, keyed, now)
        if new:
            conn.execute(_INSERT_GROUPS, [rows[k] for k in new])
    if changed:
        conn.execute(_UPDATE_GROUP, [{
            "b_receiver": k[0], "b_group_key": k[1], "next_flush_at": rows[k]["next_flush_at"],
            "group_interval_seconds": rows[k]["group_interval_seconds"]}
            for k in sorted(changed)])
    touched = {key for key, _ in keyed}
    return [SimpleNamespace(**rows[k]) for k in sorted(touched)
            if rows[k]["next_flush_at"] is not None and rows[k]["next_flush_at"] <= now]


def _fresh(key: tuple[str, str], i: Intent, now: datetime) -> dict[str, Any]:
    """A new group's row: its timer runs ``group_wait`` from its first intent."""
    target = i.target
    return {"receiver": key[0], "group_key": key[1], "route_id": target.route_id,
            "group_labels": target.group_labels(i.labels),
            "group_interval_seconds": target.group_interval.total_seconds(),
            "first_at": now, "last_flush_at": None, "next_flush_at": now + target.group_wait,
            "flush_seq": 0, "firing": []}


def _arm(rows: dict[tuple[str, str], dict[str, Any]],
         keyed: Sequence[tuple[tuple[str, str], Intent]], now: datetime
         ) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """Apply the timer rules to ``rows`` in place: (keys to insert, keys to update)."""
    new: list[tuple[str, str]] = []
    changed: set[tuple[str, str]] = set()
    for key, i in keyed:
        row = rows.get(key)
        target = i.target
        if row is None:
            rows[key] = _fresh(key, i, now)
            new.append(key)
        elif i.reason in URGENT_REASONS:
            row["next_flush_at"] = now
            changed.add(key)
        elif row["next_flush_at"] is None:
            last = row["last_flush_at"]
            earliest = last + target.group_interval if last else now
            row["next_flush_at"] = max(now, earliest)
            row["group_interval_seconds"] = target.group_interval.total_seconds()
            changed.add(key)
    return new, changed - set(new)


def waiting(conn: Connection, now: datetime) -> tuple[int, datetime | None]:
    """Groups holding news whose timer (``group_wait``/``group_interval``) has not run out:
    how many, and when the first of them is due."""
    g = schema.groups
    row = conn.execute(sa.select(sa.func.count(), sa.func.min(g.c.next_flush_at))
                       .where(g.c.next_flush_at > now)).one()
    return int(row[0] or 0), row[1]


def due_groups(conn: Connection, now: datetime, *, limit: int, skip_locked: bool
               ) -> list[Any]:
    g = schema.groups
    query = (sa.select(g).where(g.c.next_flush_at <= now).order_by(g.c.next_flush_at)
             .limit(limit))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query).all())


def flush(conn: Connection, group: Any, *, now: datetime, max_alerts: int, dagster_url: str,
          enqueue: EnqueueOutbox) -> tuple[int | None, list[str]]:
    """Turn a due group's queued intents into one outbox message.

    Returns the outbox id (None if nothing was left to say) and the fingerprints in it.
    """
    q, g = schema.notify_queue, schema.groups
    rows = conn.execute(sa.select(q).where(q.c.receiver == group.receiver,
                                           q.c.group_key == group.group_key)
                        .order_by(q.c.id)).all()
    key = (g.c.receiver == group.receiver) & (g.c.group_key == group.group_key)
    if not rows:
        conn.execute(g.update().where(key).values(next_flush_at=None))
        return None, []
    notified_firing = set(group.firing or [])
    latest: dict[str, Any] = {}
    fired_in_batch: set[str] = set()
    for row in rows:
        if row.kind == "firing":
            fired_in_batch.add(row.fingerprint)
        latest[row.fingerprint] = row
    alerts: list[AlertMessage] = []
    kinds: set[str] = set()
    reasons: set[str] = set()
    for fp, row in latest.items():
        if (row.kind == "resolved" and fp in fired_in_batch and fp not in notified_firing):
            continue  # fired and resolved before anyone was told: tell no one
        alert: AlertMessage = {**row.payload, "notification_reason": row.reason}
        alert["status"] = "resolved" if row.kind == "resolved" else "firing"
        alerts.append(alert)
        kinds.add(row.kind)
        reasons.add(row.reason)
        if row.kind == "resolved":
            notified_firing.discard(fp)
        elif row.kind in ("firing", "escalation"):
            notified_firing.add(fp)
    conn.execute(q.delete().where(q.c.id <= rows[-1].id, q.c.receiver == group.receiver,
                                  q.c.group_key == group.group_key))
    seq = group.flush_seq + 1
    conn.execute(g.update().where(key).values(
        last_flush_at=now, next_flush_at=None, flush_seq=seq, firing=sorted(notified_firing)))
    if not alerts:
        return None, []
    alerts.sort(key=lambda a: (a.get("status") != "firing", a.get("rule", ""),
                               a.get("fingerprint", "")))
    shown = alerts[:max_alerts]
    firing = any(a["status"] == "firing" for a in alerts)
    message: GroupMessage = {
        "receiver": group.receiver,
        "group_key": group.group_key,
        "group_labels": dict(group.group_labels),
        "common_labels": _common_labels([a.get("labels", {}) for a in alerts]),
        "status": "firing" if firing else "resolved",
        "notification_reason": _reason(kinds, reasons, first=not (set(group.firing or []))),
        "dedup_key": f"{group.group_key}#{seq}",
        "alerts": shown,
        "truncated_alerts": len(alerts) - len(shown),
        "dagster_url": dagster_url,
        "test": False,
    }
    rules = {a.get("rule", "") for a in alerts}
    rule = rules.pop() if len(rules) == 1 else None
    outbox_id = enqueue(conn, now, group.receiver, rule, message["status"],
                        message["dedup_key"], dict(message))
    return outbox_id, [a.get("fingerprint", "") for a in alerts]


def _reason(kinds: set[str], reasons: set[str], *, first: bool) -> str:
    if "escalation" in kinds:
        return "escalation"
    if kinds == {"acknowledged"}:
        return "acknowledged"
    if "firing" in kinds:
        if first:
            return "first"
        if reasons & {"first", "unmuted", "severity_raised"}:
            return "new_alerts"
        return "repeat"
    return "resolved"


def _common_labels(label_sets: list[dict[str, str]]) -> dict[str, str]:
    if not label_sets:
        return {}
    common = dict(label_sets[0])
    for labels in label_sets[1:]:
        common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common


def forget_idle(conn: Connection, now: datetime, older_than: timedelta = timedelta(days=7)
                ) -> None:
    """Drop groups with nothing firing and no activity for a week (their state is moot)."""
    g = schema.groups
    stale = conn.execute(sa.select(g.c.receiver, g.c.group_key, g.c.firing)
                         .where(g.c.next_flush_at.is_(None),
                                g.c.last_flush_at < now - older_than)).all()
    for row in stale:
        if not row.firing:
            conn.execute(g.delete().where(g.c.receiver == row.receiver,
                                          g.c.group_key == row.group_key))
