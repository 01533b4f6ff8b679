"""Deliver what the engine queued: flush due groups, claim, send, mark.

* Claimed rows are held for a short lease (``ALERT_JOBS_DELIVERY_LEASE``, default 30 s)
  that the sender renews while it works, sent concurrently, each with a deadline, and
  the outcomes are recorded in batches within 100 ms of finishing
  (:mod:`alert_jobs.runtime.batch`).
* A run delivers what it raised (``deliver(..., raised_by=run_id)``); the outbox retry
  sensor's run sends everything due (leftovers, retries).
* A failure is rescheduled (``Retry-After``, else backoff with jitter); nothing is
  dropped: later runs (the delivery sensor) pick up what is due.
* A permanent failure (401/403/404, another 4xx but 408/429, a bad URL) keeps the row
  with its error, and a ``receiver_broken`` alert goes to the fallback receiver, once,
  through the engine.
* A crash stops the renewals: the rows not yet recorded are due again within one lease,
  and the next run (the delivery sensor ticks every 60 s) takes them. Only a row sent
  but not yet recorded is sent again: at most one duplicate per message, never a loss;
  receivers get a stable ``dedup_key``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.registry import build_receivers
from alert_jobs.notify.render import build_message
from alert_jobs.notify.send import (
    BACKOFF_BASE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    retry_wait,
)
from alert_jobs.runtime.batch import delivery_lease, send_batch
from alert_jobs.store import Attempt, OutboxItem, Timeline, utcnow

log = logging.getLogger("alert_jobs.outbox")


@dataclass
class DeliveryReport:
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0  # claims another worker took over (this one stalled past the lease)
    errors: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # receiver → permanent error
    delivered_to: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        text = (f"sent {self.sent}, retrying later {self.retrying}, "
                f"failed permanently {self.failed}")
        text += f", skipped {self.skipped}" if self.skipped else ""
        return text + (f", left to another worker {self.lost}" if self.lost else "")

    def merge(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.retrying += other.retrying
        self.failed += other.failed
        self.lost += other.lost
        self.errors += other.errors
        self.broken.update(other.broken)
        self.delivered_to |= other.delivered_to


def deliver_due(
    timeline: Timeline,
    receivers: Mapping[str, Receiver[Any]],
    *,
    run_id: str | None = None,
    limit: int = 500,
    ids: list[int] | None = None,
    raised_by: str | None = None,
    base_delay: timedelta = BACKOFF_BASE,
    concurrency: int = DEFAULT_CONCURRENCY,
    deadline: float = DEFAULT_DEADLINE,
    lease: timedelta | None = None,
    now: Callable[[], datetime] = utcnow,
) -> DeliveryReport:
    """Deliver every due outbox row once; failures are rescheduled, never dropped.

    With ``ids`` and/or ``raised_by``, only those rows and the rows that run raised
    (see :meth:`~alert_jobs.store.outbox.OutboxStore.claim_due`).

    The claim's ``lease`` (default :func:`~alert_jobs.runtime.batch.delivery_lease`) is
    what a crash costs, whatever the batch size: the rows are renewed while they are
    sent, not leased for the time the whole batch could take.
    """
    lease = lease or delivery_lease()
    report = DeliveryReport()
    items = timeline.outbox.claim_due(limit=limit, ids=ids, raised_by=raised_by, now=now(),
                                      lease=lease)
    if not items:
        return report

    def settle(item: OutboxItem, error: DeliveryError | None, skipped: bool) -> Attempt:
        if error is None:
            return Attempt(item, skipped=skipped)
        if error.permanent:
            return Attempt(item, str(error))
        wait = retry_wait(error, item.attempts + 1, base=base_delay)
        return Attempt(item, str(error), retry_at=now() + wait)

    batch = send_batch(items, receivers, timeline.outbox, settle=settle, lease=lease,
                       concurrency=concurrency, deadline=deadline, run_id=run_id, now=now)
    report.lost = len(batch.lost)
    for attempt in batch.recorded:
        item = attempt.item
        if attempt.error is None:
            if attempt.skipped:
                report.skipped += 1
            else:
                report.sent += 1
                report.delivered_to.add(item.receiver)
            continue
        if attempt.retry_at is None:
            report.failed += 1
            report.broken[item.receiver] = attempt.error
        else:
            report.retrying += 1
        report.errors.append(f"{item.receiver}: {attempt.error}")
        log.warning("delivery to %s failed (attempt %d): %s", item.receiver,
                    item.attempts + 1, attempt.error)
    return report


BROKEN_RULE = "receiver_broken"


def deliver(rules: RulesFile, timeline: Timeline, *, run_id: str | None = None,
            raised_by: str | None = None, ids: list[int] | None = None,
            now: datetime | None = None) -> DeliveryReport:
    """Flush due groups and send what is due in the outbox: all of it, or with
    ``raised_by`` and/or ``ids`` only what that run raised and those rows.

    Attribution (issue #12): a rule run calls ``deliver(..., run_id=R, raised_by=R)`` and
    sends only the rows it queued or flushed (they carry ``run_id`` R), so a notification
    is delivered in the run that raised it and its ``notification_sent`` event names that
    run. A group that this call flushes belongs to this call's run, whatever raised its
    alerts. Leftovers (a crash, a retry) are for the outbox retry sensor, which calls
    this without a scope and sends everything due.

    A receiver that fails permanently (e.g. 401/403/404) raises a ``receiver_broken``
    alert on the fallback receiver (once, through the engine, so it repeats and resolves
    like any alert); it resolves when that receiver delivers again.
    """
    router = rules.router()
    scoped = raised_by is not None or ids is not None
    flushed = timeline.outbox.flush_due(router=router, now=now, run_id=run_id)
    receivers = build_receivers(rules.receivers)
    report = deliver_due(timeline, receivers, run_id=run_id, raised_by=raised_by,
                         ids=[*(ids or []), *flushed] if scoped else None)
    changed = _receiver_health(rules, timeline, report, run_id=run_id, now=now or utcnow())
    if changed:
        flushed = timeline.outbox.flush_due(router=router, now=now, run_id=run_id)
        report.merge(deliver_due(timeline, receivers, run_id=run_id, raised_by=raised_by,
                                 ids=flushed if scoped else None))
    return report


def _receiver_health(rules: RulesFile, timeline: Timeline, report: DeliveryReport, *,
                     run_id: str | None, now: datetime) -> bool:
    fallback = rules.fallback_receiver()
    policy = RulePolicy(rule=BROKEN_RULE, severity=Severity.CRITICAL, receivers=(fallback,),
                        repeat_interval=rules.defaults.repeat_interval)
    items: list[tuple[Observation, RulePolicy, dict[str, Any] | None]] = []
    for name, error in report.broken.items():
        if name == fallback:
            continue  # nowhere left to say it; the outbox row and the event keep the error
        obs = Observation(BROKEN_RULE, Status.ALERT, {"receiver": name}, None,
                          summary=f"Expected receiver {name} to accept notifications; it "
                                  f"answered {error}. Alerts routed to it reach no one.",
                          severity=Severity.CRITICAL)
        items.append((obs, policy, build_message(obs, severity=Severity.CRITICAL,
                                                 why="Alerts routed to this receiver are "
                                                     "silently lost until it is fixed.",
                                                 dagster_url=rules.defaults.dagster_url,
                                                 run_id=run_id)))
    # Only the receiver_broken alerts (by the rule index), and only when something was
    # delivered: every deliver() runs this, and reading every active alert cost 230 ms
    # at 10,000 pushed alerts (benchmarks/am_push_bench.py).
    active = {a.labels.get("receiver") for a in timeline.alerts.active_of(BROKEN_RULE)
              } if report.delivered_to else set()
    for name in report.delivered_to & active:
        obs = Observation(BROKEN_RULE, Status.OK, {"receiver": name}, None,
                          summary=f"Receiver {name} accepts notifications again")
        items.append((obs, policy, build_message(obs, severity=Severity.CRITICAL,
                                                 dagster_url=rules.defaults.dagster_url,
                                                 run_id=run_id)))
    if not items:
        return False
    timeline.alerts.process_many(items, now=now, run_id=run_id, router=rules.router(),
                                 flush=False)
    return True
