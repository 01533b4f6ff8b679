"""Sending many messages at once, with deadlines; and when to try a failed one again.

* Messages are sent concurrently over one ``httpx.AsyncClient`` whose pool (and a
  semaphore) bounds how many requests are in flight; each send has a deadline.
* A failure is retried after the receiver's ``Retry-After`` when it gives one, else
  with exponential backoff and jitter (:func:`retry_wait`).

Claiming the messages, keeping their lease and recording each outcome is the
runtime's job (:mod:`alert_jobs.runtime.batch`, which sends with :func:`send_one`):
this module knows receivers, not the database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import httpx

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.transport import ThreadedTransport

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


def retry_wait(error: DeliveryError, attempt: int, *, base: timedelta = BACKOFF_BASE
               ) -> timedelta:
    """How long to wait before trying a failed message again."""
    if error.retry_after is not None:
        # The receiver said when to come back: that is the wait, plus up to 10 % jitter
        # so a queue of rate-limited messages does not return in lockstep.
        return timedelta(seconds=error.retry_after * (1 + 0.1 * random.random()))
    return backoff(attempt, base=base)


class Addressed(Protocol):
    """A message for one receiver (an outbox row)."""

    @property
    def receiver(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def dedup_key(self) -> str: ...


M = TypeVar("M", bound=Addressed)


async def send_one(item: Addressed, receivers: Mapping[str, Receiver[Any]],
                   http: httpx.AsyncClient, *, deadline: float
                   ) -> tuple[DeliveryError | None, bool]:
    """Send one message within ``deadline``: (error or None, skipped)."""
    receiver = receivers.get(item.receiver)
    if receiver is None:
        return DeliveryError(f"receiver {item.receiver!r} is not in the rules "
                             "file; kept and retried until it is restored"), False
    group: GroupMessage = item.payload  # type: ignore[assignment]
    if not receiver.wants(group):
        return None, True
    group = receiver.prepare(group)
    started = time.monotonic()
    try:
        await asyncio.wait_for(receiver.deliver(group, http), timeout=deadline)
    except DeliveryError as exc:
        return exc, False
    except TimeoutError:
        return DeliveryError(f"no answer within the {deadline:g} s delivery deadline"), False
    except Exception as exc:  # a receiver bug: keep the message, say what broke
        log.exception("receiver %s failed", item.receiver)
        return DeliveryError(f"receiver error ({type(exc).__name__})"), False
    log.info("delivered %s to %s in %.0f ms", item.dedup_key, item.receiver,
             (time.monotonic() - started) * 1000)
    return None, False


def sending_client(concurrency: int, deadline: float) -> httpx.AsyncClient:
    """The client every concurrent send shares: at most ``concurrency`` on the wire."""
    return httpx.AsyncClient(transport=ThreadedTransport(max_workers=concurrency),
                             timeout=deadline)


async def send_all(
    items: Sequence[M], receivers: Mapping[str, Receiver[Any]], *, concurrency: int,
    deadline: float,
) -> list[tuple[M, DeliveryError | None, bool]]:
    """Send items concurrently; (item, error or None, skipped) for each, in order."""
    semaphore = asyncio.Semaphore(concurrency)
    async with sending_client(concurrency, deadline) as http:

        async def one(item: M) -> tuple[M, DeliveryError | None, bool]:
            async with semaphore:
                error, skipped = await send_one(item, receivers, http, deadline=deadline)
            return item, error, skipped

        return list(await asyncio.gather(*(one(item) for item in items)))
