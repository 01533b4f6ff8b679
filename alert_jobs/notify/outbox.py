"""Delivery from the outbox: claim → send → mark, concurrently, with backoff and deadlines.

* Claimed rows are sent concurrently over one ``httpx.AsyncClient`` whose pool (and a
  semaphore) bounds how many requests are in flight; each send has a deadline.
* A failure is rescheduled after the receiver's ``Retry-After`` when it gives one, else
  with exponential backoff and jitter. Nothing is dropped: later runs (the delivery sensor)
  pick up what is due.
* 401/403/404 are permanent: the row is kept with its error, and the receiver is
  reported broken so the caller can raise a "receiver broken" alert elsewhere.
* A crash between send and mark loses the claim's lease and the row is sent again:
  at most one duplicate per lost lease, never a loss. Receivers get a stable
  ``dedup_key`` to drop it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.transport import ThreadedTransport
from alert_jobs.timeline import OutboxItem, Timeline, utcnow

log = logging.getLogger("alert_jobs.outbox")

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
DEFAULT_CONCURRENCY = 16
DEFAULT_DEADLINE = 30.0


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
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # receiver → permanent error
    delivered_to: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        text = (f"sent {self.sent}, retrying later {self.retrying}, "
                f"failed permanently {self.failed}")
        return text + (f", skipped {self.skipped}" if self.skipped else "")

    def merge(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors += other.errors
        self.broken.update(other.broken)
        self.delivered_to |= other.delivered_to


async def send_all(
    items: list[OutboxItem], receivers: Mapping[str, Receiver], *, concurrency: int,
    deadline: float,
) -> list[tuple[OutboxItem, DeliveryError | None, bool]]:
    """Send claimed items concurrently; (item, error or None, skipped) for each, in order."""
    semaphore = asyncio.Semaphore(concurrency)
    transport = ThreadedTransport(max_workers=concurrency)
    async with httpx.AsyncClient(transport=transport, timeout=deadline) as http:

        async def one(item: OutboxItem) -> tuple[OutboxItem, DeliveryError | None, bool]:
            receiver = receivers.get(item.receiver)
            if receiver is None:
                return item, DeliveryError(f"receiver {item.receiver!r} is not in the rules "
                                           "file; kept and retried until it is restored"), False
            group: GroupMessage = item.payload  # type: ignore[assignment]
            if not receiver.wants(group):
                return item, None, True
            group = receiver.prepare(group)
            async with semaphore:
                started = time.monotonic()
                try:
                    await asyncio.wait_for(receiver.deliver(group, http), timeout=deadline)
                except DeliveryError as exc:
                    return item, exc, False
                except TimeoutError:
                    return item, DeliveryError(f"no answer within the {deadline:g} s "
                                               "delivery deadline"), False
                except Exception as exc:  # a receiver bug: keep the message, say what broke
                    log.exception("receiver %s failed", item.receiver)
                    return item, DeliveryError(f"receiver error ({type(exc).__name__})"), False
                log.info("delivered %s to %s in %.0f ms", item.dedup_key, item.receiver,
                         (time.monotonic() - started) * 1000)
                return item, None, False

        return list(await asyncio.gather(*(one(item) for item in items)))


def deliver_due(
    timeline: Timeline,
    receivers: Mapping[str, Receiver],
    *,
    run_id: str | None = None,
    limit: int = 500,
    ids: list[int] | None = None,
    base_delay: timedelta = BACKOFF_BASE,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float = DEFAULT_DEADLINE,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Deliver every due outbox row once; failures are rescheduled, never dropped."""
    report = DeliveryReport()
    # The lease must outlast the whole batch: sends run `concurrency` at a time, each
    # bounded by `deadline`. A lease that ran out mid-batch would let another worker
    # send the same rows again while this one is still on them.
    waves = -(-limit // max(1, concurrency))
    lease = timedelta(seconds=max(120.0, waves * deadline + 60.0))
    items = timeline.claim_due(limit=limit, ids=ids, now=now(), lease=lease)
    if not items:
        return report
    outcomes = asyncio.run(send_all(items, receivers, concurrency=concurrency,
                                    deadline=deadline))
    for item, error, skipped in outcomes:
        if error is None:
            timeline.mark_delivered(item, run_id=run_id, now=now(), skipped=skipped)
            if skipped:
                report.skipped += 1
            else:
                report.sent += 1
                report.delivered_to.add(item.receiver)
            continue
        attempt = item.attempts + 1
        if error.permanent:
            timeline.mark_failed(item, str(error), retry_at=None, run_id=run_id, now=now())
            report.failed += 1
            report.broken[item.receiver] = str(error)
        else:
            if error.retry_after is not None:
                # The receiver said when to come back: that is the wait, plus up to 10 %
                # jitter so a queue of rate-limited messages does not return in lockstep.
                wait = timedelta(seconds=error.retry_after * (1 + 0.1 * random.random()))
            else:
                wait = backoff(attempt, base=base_delay)
            timeline.mark_failed(item, str(error), retry_at=now() + wait, run_id=run_id,
                                 now=now())
            report.retrying += 1
        report.errors.append(f"{item.receiver}: {error}")
        log.warning("delivery to %s failed (attempt %d): %s", item.receiver, attempt, error)
    return report
