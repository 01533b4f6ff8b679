"""Deliver what the engine queued: flush due groups, claim, send, mark.

* Claimed rows are sent concurrently (:func:`alert_jobs.notify.send.send_all`), each
  with a deadline; each outcome is recorded as its send finishes.
* A failure is rescheduled (``Retry-After``, else backoff with jitter); nothing is
  dropped: later runs (the delivery sensor) pick up what is due.
* A permanent failure (401/403/404, another 4xx but 408/429, a bad URL) keeps the row
  with its error, and a ``receiver_broken`` alert goes to the fallback receiver, once,
  through the engine.
* A crash between send and mark loses the claim's lease and the row is sent again: at
  most one duplicate per lost lease, never a loss; receivers get a stable ``dedup_key``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.notify.base import Receiver
from alert_jobs.notify.registry import build_receivers
from alert_jobs.notify.render import build_message
from alert_jobs.notify.send import (
    BACKOFF_BASE,
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLINE,
    retry_wait,
    send_all,
)
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.outbox")


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


def deliver_due(
    timeline: Timeline,
    receivers: Mapping[str, Receiver[Any]],
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
    items = timeline.outbox.claim_due(limit=limit, ids=ids, now=now(), lease=lease)
    if not items:
        return report
    outcomes = asyncio.run(send_all(items, receivers, concurrency=concurrency,
                                    deadline=deadline))
    for item, error, skipped in outcomes:
        if error is None:
            timeline.outbox.mark_delivered(item, run_id=run_id, now=now(), skipped=skipped)
            if skipped:
                report.skipped += 1
            else:
                report.sent += 1
                report.delivered_to.add(item.receiver)
            continue
        attempt = item.attempts + 1
        if error.permanent:
            timeline.outbox.mark_failed(item, str(error), retry_at=None, run_id=run_id,
                                        now=now())
            report.failed += 1
            report.broken[item.receiver] = str(error)
        else:
            wait = retry_wait(error, attempt, base=base_delay)
            timeline.outbox.mark_failed(item, str(error), retry_at=now() + wait,
                                        run_id=run_id, now=now())
            report.retrying += 1
        report.errors.append(f"{item.receiver}: {error}")
        log.warning("delivery to %s failed (attempt %d): %s", item.receiver, attempt, error)
    return report


BROKEN_RULE = "receiver_broken"


def deliver(rules: RulesFile, timeline: Timeline, *, run_id: str | None = None,
            ids: list[int] | None = None, now: datetime | None = None) -> DeliveryReport:
    """Flush due groups and send what is due in the outbox (all of it, or just ``ids``).

    A receiver that fails permanently (e.g. 401/403/404) raises a ``receiver_broken``
    alert on the fallback receiver (once, through the engine, so it repeats and resolves
    like any alert); it resolves when that receiver delivers again.
    """
    router = rules.router()
    timeline.outbox.flush_due(router=router, now=now)
    receivers = build_receivers(rules.receivers)
    report = deliver_due(timeline, receivers, run_id=run_id, ids=ids)
    changed = _receiver_health(rules, timeline, report, run_id=run_id, now=now or utcnow())
    if changed:
        timeline.outbox.flush_due(router=router, now=now)
        report.merge(deliver_due(timeline, receivers, run_id=run_id))
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
    active = {a.labels.get("receiver") for a in timeline.alerts.list()
              if a.rule == BROKEN_RULE}
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
