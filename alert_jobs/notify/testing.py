"""`alert-jobs notify test RECEIVER`: send a clearly marked test message through a receiver.

The message goes straight to the receiver (not through routing or the outbox, so it
never pages anyone by accident of a route) and the outcome is a timeline event.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx

from alert_jobs.config import RulesFile
from alert_jobs.notify.base import DeliveryError
from alert_jobs.notify.contract import AlertMessage, GroupMessage
from alert_jobs.notify.registry import build_receivers
from alert_jobs.timeline import Timeline, utcnow


def test_message(receiver: str, rules: RulesFile, now: datetime) -> GroupMessage:
    alert: AlertMessage = {
        "status": "firing", "rule": "alert_jobs_test", "fingerprint": "test",
        "severity": "info", "labels": {"alertname": "alert_jobs_test", "severity": "info"},
        "summary": f"This is a test notification from alert-jobs to receiver {receiver!r} "
                   f"at {now:%Y-%m-%d %H:%M} UTC. No action is needed.",
        "why": "It shows that this receiver is configured and reachable, and what alerts "
               "will look like here.",
        "runbook_url": "", "dashboard_url": "", "run_url": "",
        "starts_at": now.isoformat(), "ends_at": None, "notification_reason": "test",
        "actions": {},
    }
    return {"receiver": receiver, "group_key": f"test:{receiver}", "group_labels": {},
            "common_labels": dict(alert["labels"]), "status": "firing",
            "notification_reason": "test", "dedup_key": f"test:{receiver}:{now.isoformat()}",
            "alerts": [alert], "truncated_alerts": 0,
            "dagster_url": rules.defaults.dagster_url, "test": True}


def send_test(rules: RulesFile, timeline: Timeline, receiver: str, *, by: str,
              run_id: str | None = None, source: str = "cli") -> str | None:
    """Send a test message; returns None on success or the error text. Always recorded."""
    receivers = build_receivers(rules)
    if receiver not in receivers:
        raise KeyError(f"unknown receiver {receiver!r} (known: {', '.join(receivers)})")
    target = receivers[receiver]
    now = utcnow()
    group = test_message(receiver, rules, now)

    async def send() -> None:
        async with httpx.AsyncClient() as http:
            await asyncio.wait_for(target.deliver(group, http),
                                   timeout=target.timeout_seconds + 5)

    error: str | None = None
    try:
        asyncio.run(send())
    except DeliveryError as exc:
        error = str(exc)
    except TimeoutError:
        error = "no answer within the delivery deadline"
    timeline.record_event("notification_test", f"test message to {receiver}: "
                          + ("delivered" if error is None else f"failed: {error}"),
                          actor=by, source=source, run_id=run_id,
                          payload={"receiver": receiver, "ok": error is None})
    return error
