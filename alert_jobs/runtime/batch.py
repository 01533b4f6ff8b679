"""Send one claimed batch so that a crash costs one short lease, not the whole batch.

Workers (``concurrency`` of them) take the claimed rows in order and send them; one
keeper task is the only one to touch the database while the batch runs:

* it records each finished send within milliseconds (every send that finished since
  its last write, in one short transaction), so a crash re-sends only what was on the
  wire or finished in the last few milliseconds — never the batch;
* every third of the lease it renews the lease of the rows not yet recorded, so a slow
  but live worker keeps its rows while a dead one's rows are due again within one
  lease (``ALERT_JOBS_DELIVERY_LEASE``, default 30 s) of its death;
* a row whose lease another worker took meanwhile (this one stalled longer than the
  lease) is not started here: that worker sends it.

One writer, not one transaction per worker: SQLite serializes writers, and sixteen
threads queueing for its lock would spend their time in its busy-wait back-off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.send import send_one, sending_client
from alert_jobs.runtime.commands import UsageError
from alert_jobs.store import Attempt, OutboxItem
from alert_jobs.store.outbox import OutboxStore

log = logging.getLogger("alert_jobs.outbox")

LEASE_ENV = "ALERT_JOBS_DELIVERY_LEASE"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE_S = 1.0
MAX_LEASE_S = 3600.0
RECORD_MAX = 64  # finished sends per transaction: keeps each write short
RENEWALS_PER_LEASE = 3  # renew every third of the lease: two renewals may fail or be late

Settle = Callable[[OutboxItem, DeliveryError | None, bool], Attempt]


def delivery_lease(environ: Mapping[str, str] | None = None) -> timedelta:
    """The lease of a claimed row: ``$ALERT_JOBS_DELIVERY_LEASE`` seconds, default 30.

    Also the worst case a crash adds before another run can take a dead worker's rows
    (plus the delivery sensor's interval, 60 s). Shorter means faster recovery but more
    renewal writes; a worker that stalls longer than it (a frozen VM) may have rows
    sent twice.
    """
    raw = (os.environ if environ is None else environ).get(LEASE_ENV, "").strip()
    if not raw:
        return DEFAULT_LEASE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not MIN_LEASE_S <= seconds <= MAX_LEASE_S:  # also refuses nan and inf
        raise UsageError(f"{LEASE_ENV} must be a number of seconds from {MIN_LEASE_S:g} to "
                         f"{MAX_LEASE_S:g} (default {DEFAULT_LEASE.total_seconds():g}), "
                         f"got {raw!r}")
    return timedelta(seconds=seconds)


@dataclass
class BatchResult:
    """What became of a claimed batch."""

    recorded: list[Attempt] = field(default_factory=list)  # written while still held
    lost: list[OutboxItem] = field(default_factory=list)  # taken by another worker
    renewals: int = 0


_DONE = None  # the workers' end-of-batch marker on the keeper's queue


def send_batch(items: Sequence[OutboxItem], receivers: Mapping[str, Receiver[Any]],
               outbox: OutboxStore, *, settle: Settle, lease: timedelta, concurrency: int,
               deadline: float, run_id: str | None, now: Callable[[], datetime]
               ) -> BatchResult:
    """Send claimed ``items``, recording each as it finishes and renewing the rest's lease.

    ``settle`` turns a send's outcome into the :class:`Attempt` to record (when to retry).
    """
    if not items:
        return BatchResult()
    return asyncio.run(_send_batch(items, receivers, outbox, settle=settle, lease=lease,
                                   concurrency=concurrency, deadline=deadline, run_id=run_id,
                                   now=now))


async def _send_batch(items: Sequence[OutboxItem], receivers: Mapping[str, Receiver[Any]],
                      outbox: OutboxStore, *, settle: Settle, lease: timedelta,
                      concurrency: int, deadline: float, run_id: str | None,
                      now: Callable[[], datetime]) -> BatchResult:
    result = BatchResult()
    todo = deque(items)
    unrecorded = {item.id: item for item in items}  # claimed, outcome not yet written
    lost: set[int] = set()
    finished: asyncio.Queue[tuple[OutboxItem, DeliveryError | None, bool] | None] = \
        asyncio.Queue()
    loop = asyncio.get_running_loop()
    every = lease.total_seconds() / RENEWALS_PER_LEASE

    async with sending_client(concurrency, deadline) as http:

        async def worker() -> None:
            while todo:
                item = todo.popleft()
                if item.id in lost:
                    continue  # another worker holds it now and sends it
                error, skipped = await send_one(item, receivers, http, deadline=deadline)
                await finished.put((item, error, skipped))

        async def workers() -> None:
            await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency,
                                                                      len(items))))))
            await finished.put(_DONE)

        async def keeper() -> None:
            renew_at = loop.time() + every
            done = False
            while not done:
                outcomes: list[tuple[OutboxItem, DeliveryError | None, bool]] = []
                try:
                    async with asyncio.timeout(max(0.0, renew_at - loop.time())):
                        first = await finished.get()
                except TimeoutError:
                    pass
                else:
                    if first is _DONE:
                        done = True
                    else:
                        outcomes.append(first)
                while not done and len(outcomes) < RECORD_MAX and not finished.empty():
                    more = finished.get_nowait()
                    if more is _DONE:
                        done = True
                    else:
                        outcomes.append(more)
                if outcomes:
                    await _record(outcomes)
                if not done and unrecorded and loop.time() >= renew_at:
                    await _renew()
                    renew_at = loop.time() + every

        async def _record(outcomes: list[tuple[OutboxItem, DeliveryError | None, bool]]
                          ) -> None:
            attempts = [settle(item, error, skipped) for item, error, skipped in outcomes]
            held = await asyncio.to_thread(outbox.record, attempts, run_id=run_id, now=now())
            for attempt in attempts:
                unrecorded.pop(attempt.item.id, None)
                if attempt.item.id in held:
                    result.recorded.append(attempt)
                else:
                    result.lost.append(attempt.item)
                    log.warning("%s to %s: lease lost to another worker before it was "
                                "recorded; that worker sends it (at most one duplicate)",
                                attempt.item.dedup_key, attempt.item.receiver)

        async def _renew() -> None:
            asked = [item for item in unrecorded.values() if item.id not in lost]
            held = await asyncio.to_thread(outbox.renew, asked, lease=lease, now=now())
            result.renewals += 1
            for item in asked:
                if item.id not in held and item.id not in lost:
                    lost.add(item.id)
                    log.warning("%s to %s: lease taken by another worker (this one stalled "
                                "past %g s); leaving it to that worker", item.dedup_key,
                                item.receiver, lease.total_seconds())

        tasks = [asyncio.create_task(keeper()), asyncio.create_task(workers())]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # the database refused a write: stop sending, say why
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    # Rows lost before they were sent were never started here; count them as lost too.
    result.lost += [unrecorded[i] for i in lost if i in unrecorded]
    return result
