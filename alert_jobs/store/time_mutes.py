"""The time-mute stage: maintenance windows applied to notifications, per route target.

Alertmanager mutes a route while one of its ``mute_time_intervals`` is active, or while
none of its ``active_time_intervals`` is (notify.go's TimeMuteStage/TimeActiveStage).
Here the stage sits where the engine's notifications become queue rows per route
target (:meth:`alert_jobs.store.alerts.AlertStore.process_many`), in the decision's
transaction:

* A firing notification to a muted target is not queued; a ``suppressed`` event says
  which window on which route muted it for which receiver, with the run that decided.
* A resolve to a muted target is queued when that target was told the alert fires:
  the fingerprint is in the target's group's ``firing`` set (flushed to it as firing)
  or a firing row for it still waits in the group's queue. DESIGN.md §3: the resolve
  is always sent for anything notified as firing. A target whose firing was muted is
  not sent a resolve for a firing it never saw; the timeline says so instead. (The
  alert's ``notified_firing`` is not enough: it says *some* target was told, and a
  window mutes only its own route's targets.)

An alert whose every target is in a window never gets here: the engine mutes it as a
whole (:meth:`Router.all_time_muted`, passed to the engine with the inhibition), so
nothing counts as sent and the first evaluation after the window sends it. When only
some targets are muted the alert counts as notified (the others were told): a muted
target hears of a still-firing alert with its next repeat (``repeat_interval``), not at
once as Alertmanager's next group flush would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.routing import Router
from alert_jobs.store import schema
from alert_jobs.store.events import event_row
from alert_jobs.store.grouping import Intent

#: Kinds of queue row that tell a target an alert fires (a resolve must follow them).
_FIRING_KINDS = ("firing", "escalation")


def mute_by_time(conn: Connection, intents: Sequence[Intent], router: Router, now: datetime,
                 events: list[dict[str, Any]]) -> list[Intent]:
    """The intents to queue at ``now``; those a time interval mutes are left out and an
    event for each is appended to ``events``. Costs nothing when no route has intervals;
    reads the database only for a resolve to a muted target."""
    if not router.time_intervals:
        return list(intents)
    kept: list[Intent] = []
    for intent in intents:
        why = router.time_muted(intent.target, now)
        if why is None or (intent.kind == "resolved" and _told_firing(conn, intent)):
            kept.append(intent)
            continue
        receiver = intent.target.receiver
        if intent.kind == "resolved":
            reason = f"resolve not sent to {receiver}: its firing was not sent there ({why})"
        else:
            reason = f"{intent.kind} to {receiver} {why}"
        events.append(event_row(
            now, "suppressed", reason, fingerprint=intent.fingerprint, rule=intent.rule,
            run_id=intent.run_id,
            payload={"would_send": intent.reason, "kind": intent.kind, "receiver": receiver,
                     "route_id": intent.target.route_id, "muted_by": why}))
    return kept


def _told_firing(conn: Connection, intent: Intent) -> bool:
    """Whether the intent's target group was sent, or still has queued, this alert as
    firing."""
    g, q = schema.groups, schema.notify_queue
    receiver, key = intent.target.receiver, intent.target.group_key(intent.labels)
    firing = conn.execute(sa.select(g.c.firing).where(
        g.c.receiver == receiver, g.c.group_key == key)).scalar()
    if intent.fingerprint in (firing or []):
        return True
    queued = conn.execute(sa.select(q.c.id).where(
        q.c.receiver == receiver, q.c.group_key == key, q.c.fingerprint == intent.fingerprint,
        q.c.kind.in_(_FIRING_KINDS)).limit(1)).first()
    return queued is not None
