"""Delivery from the outbox: claim → send → mark, with exponential backoff and jitter.

Nothing is dropped: a failed send is retried on this run (within a deadline) and on
later runs (the delivery sensor picks up what is due). A permanent failure (401,
404, missing secret) is kept with its error for an operator to see in
``alert-jobs status``; it is never silently deleted.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.timeline import OutboxItem, Timeline, utcnow

log = logging.getLogger("alert_jobs.outbox")

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


def backoff(attempt: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP,
            rng: Callable[[], float] = random.random) -> timedelta:
    """Wait before retry ``attempt`` (1-based): base·2^(attempt-1), capped, jittered to 50–100 %.

    Jitter spreads retries of many queued messages so a recovering receiver is not
    hit by all of them in the same second.
    """
    raw = min(cap.total_seconds(), base.total_seconds() * 2 ** max(0, attempt - 1))
    return timedelta(seconds=raw * (0.5 + 0.5 * rng()))


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"sent {self.sent}, retrying later {self.retrying}, failed permanently {self.failed}"


def deliver_due(
    timeline: Timeline,
    receivers: Mapping[str, Receiver],
    *,
    run_id: str | None = None,
    limit: int = 500,
    ids: list[int] | None = None,
    base_delay: timedelta = BACKOFF_BASE,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Deliver every due outbox row once; failures are rescheduled, never dropped."""
    report = DeliveryReport()
    for item in timeline.claim_due(limit=limit, ids=ids, now=now()):
        _deliver_one(timeline, receivers, item, report, run_id, base_delay, now)
    return report


def _deliver_one(
    timeline: Timeline, receivers: Mapping[str, Receiver], item: OutboxItem,
    report: DeliveryReport, run_id: str | None, base_delay: timedelta,
    now: Callable[[], datetime],
) -> None:
    receiver = receivers.get(item.receiver)
    try:
        if receiver is None:
            raise DeliveryError(f"receiver {item.receiver!r} is not in the rules file; "
                                "kept and retried until it is restored")
        if item.kind == "resolved" and not receiver.send_resolved:
            timeline.mark_delivered(item, run_id=run_id, now=now())
            return
        started = time.monotonic()
        receiver.send(item.payload)
        log.info("delivered %s to %s in %.0f ms", item.dedup_key, item.receiver,
                 (time.monotonic() - started) * 1000)
    except DeliveryError as exc:
        attempt = item.attempts + 1
        if exc.permanent:
            timeline.mark_failed(item, str(exc), retry_at=None, run_id=run_id, now=now())
            report.failed += 1
        else:
            wait = backoff(attempt, base=base_delay)
            if exc.retry_after is not None:
                wait = max(wait, timedelta(seconds=exc.retry_after))
            timeline.mark_failed(item, str(exc), retry_at=now() + wait, run_id=run_id, now=now())
            report.retrying += 1
        report.errors.append(f"{item.receiver}: {exc}")
        log.warning("delivery to %s failed (attempt %d): %s", item.receiver, attempt, exc)
        return
    timeline.mark_delivered(item, run_id=run_id, now=now())
    report.sent += 1
