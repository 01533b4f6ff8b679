"""A clearly marked test message, sent straight to one receiver (``alert-jobs notify test``).

The message goes to the receiver directly, not through routing or the outbox, so it
never pages anyone by accident of a route. Recording the outcome in the timeline is
the caller's (:func:`alert_jobs.runtime.actions.send_test`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.contract import AlertMessage, GroupMessage


def test_message(receiver: str, dagster_url: str, now: datetime) -> GroupMessage:
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
            "alerts": [alert], "truncated_alerts": 0, "dagster_url": dagster_url, "test": True}


def send_now(receiver: Receiver[Any], group: GroupMessage) -> str | None:
    """Send one message and wait; None on success, else why it failed (no secrets)."""

    async def send() -> None:
        async with httpx.AsyncClient() as http:
            await asyncio.wait_for(receiver.deliver(group, http),
                                   timeout=receiver.timeout_seconds + 5)

    try:
        asyncio.run(send())
    except DeliveryError as exc:
        return str(exc)
    except TimeoutError:
        return "no answer within the delivery deadline"
    return None
