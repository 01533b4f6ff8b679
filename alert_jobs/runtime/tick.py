"""Which outbox rows a sensor tick raised: what the delivery run it requests must send.

A tick that evaluates inside the sensor (heartbeats, instance watch) has no run id to
stamp on its rows, so it collects their ids instead: the groups its evaluation flushed,
those its decisions flushed at once, and, when it decided anything, the groups it left
due (flushed here, now: a group belongs to whoever flushes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from alert_jobs.config import RulesFile
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.store import Timeline


def tick_outbox_ids(timeline: Timeline, rules: RulesFile, outcomes: Sequence[RuleOutcome],
                    flushed: Iterable[int], *, now: datetime) -> list[int]:
    """The outbox ids this tick raised, sorted (empty: nothing for a run to send)."""
    ids = set(flushed)
    for outcome in outcomes:
        ids.update(outcome.result.outbox_ids)
    if outcomes:
        ids.update(timeline.outbox.flush_due(router=rules.router(), now=now))
    return sorted(ids)
