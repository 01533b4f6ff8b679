"""Send one claimed batch so that a crash costs one short lease, not the whole batch.

Worker threads (``concurrency`` of them, :class:`~alert_jobs.notify.send.SendWorkers`)
take the claimed rows in order and send them; the calling thread is the keeper, the
only one to touch the database while the batch runs:

* it records finished sends in batches: one short transaction settles every send that
  finished since its last write, at most ``RECORD_EVERY_S`` (100 ms) after the first of
  them finished, or as soon as ``RECORD_MAX`` are waiting. A crash re-sends only what
  was on the wire or finished in the last 100 ms — never the batch; settling a few
  hundred rows in one transaction (one UPDATE for the delivered ones, one multi-row
  INSERT of their events) is what keeps marking off the per-message bill;
* every third of the lease it renews the lease of the rows not yet recorded, so a slow
  but live worker keeps its rows while a dead one's rows are due again within one
  lease (``ALERT_JOBS_DELIVERY_LEASE``, default 30 s) of its death;
* a row whose lease another worker took meanwhile (this one stalled longer than the
  lease) is not started here: that worker sends it.

One writer, not one transaction per worker: SQLite serializes writers, and sixteen
threads queueing for its lock would spend their time in its busy-wait back-off.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.send import SendWorkers
from alert_jobs.runtime.commands import UsageError
from alert_jobs.store import Attempt, OutboxItem
from alert_jobs.store.outbox import OutboxStore

log = logging.getLogger("alert_jobs.outbox")

LEASE_ENV = "ALERT_JOBS_DELIVERY_LEASE"
DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE_S = 1.0
MAX_LEASE_S = 3600.0
RECORD_MAX = 256  # finished sends per transaction: keeps each write short
RECORD_EVERY_S = 0.1  # the longest a finished send waits to be recorded
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
    writes: int = 0  # record transactions


Outcome = tuple[OutboxItem, DeliveryError | None, bool]


def send_batch(items: Sequence[OutboxItem], receivers: Mapping[str, Receiver[Any]],
               outbox: OutboxStore, *, settle: Settle, lease: timedelta, concurrency: int,
               deadline: float, run_id: str | None, now: Callable[[], datetime]
               ) -> BatchResult:
    """Send claimed ``items``, recording them in batches and renewing the rest's lease.

    ``settle`` turns a send's outcome into the :class:`Attempt` to record (when to retry).
    A database error stops the sending (sends under way finish, none starts) and is
    raised; what was not recorded is due again when its lease runs out.
    """
    result = BatchResult()
    if not items:
        return result
    unrecorded = {item.id: item for item in items}  # claimed, outcome not yet written
    lost: set[int] = set()
    every = lease.total_seconds() / RENEWALS_PER_LEASE

    def record(outcomes: list[Outcome]) -> None:
        attempts = [settle(item, error, skipped) for item, error, skipped in outcomes]
        held = outbox.record(attempts, run_id=run_id, now=now())
        result.writes += 1
        for attempt in attempts:
            unrecorded.pop(attempt.item.id, None)
            if attempt.item.id in held:
                result.recorded.append(attempt)
            else:
                result.lost.append(attempt.item)
                log.warning("%s to %s: lease lost to another worker before it was "
                            "recorded; that worker sends it (at most one duplicate)",
                            attempt.item.dedup_key, attempt.item.receiver)

    def renew() -> None:
        asked = [item for item in unrecorded.values() if item.id not in lost]
        held = outbox.renew(asked, lease=lease, now=now())
        result.renewals += 1
        for item in asked:
            if item.id not in held and item.id not in lost:
                lost.add(item.id)
                log.warning("%s to %s: lease taken by another worker (this one stalled "
                            "past %g s); leaving it to that worker", item.dedup_key,
                            item.receiver, lease.total_seconds())

    with SendWorkers(items, receivers, concurrency=concurrency, deadline=deadline,
                     skip=lambda item: item.id in lost) as workers:
        pending: list[Outcome] = []
        first_at = 0.0  # when the oldest of ``pending`` finished
        renew_at = time.monotonic() + every
        try:
            while not workers.done:
                clock = time.monotonic()
                wake = renew_at if not pending else min(renew_at, first_at + RECORD_EVERY_S)
                # With nothing waiting, wake at the first finished send; then only at
                # RECORD_MAX of them or at the record deadline, not at every send.
                finished = workers.collect(timeout=max(0.0, wake - clock),
                                           count=RECORD_MAX - len(pending) if pending else 1)
                if finished and not pending:
                    first_at = time.monotonic()
                pending += finished
                clock = time.monotonic()
                if pending and (len(pending) >= RECORD_MAX or workers.done
                                or clock >= first_at + RECORD_EVERY_S):
                    record(pending)
                    pending = []
                if not workers.done and unrecorded and clock >= renew_at:
                    renew()
                    renew_at = time.monotonic() + every
            if pending:
                record(pending)
        except BaseException:  # the database refused a write: stop sending, say why
            workers.stop()
            raise

    # Rows lost before they were sent were never started here; count them as lost too.
    result.lost += [unrecorded[i] for i in lost if i in unrecorded]
    return result
