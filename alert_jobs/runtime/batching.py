"""Which rules of a family run together: one batch per cron and timezone.

A Dagster run costs seconds of CPU before any rule is read (the run worker imports the
code location), so a family's rules that are due at the same moment share one run: one
batch, one job, one schedule. A batch is named after its family and its schedule
(``sql_metric_every_5m``, ``slo_every_minute_europe_berlin``: see
:func:`~alert_jobs.core.cron.cron_slug`), so the name stays the same when rules are
added or removed and says when it runs. A family may let a rule name its batch instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from alert_jobs.core.cron import cron_slug, zone_slug

#: Rules per step of a batch's run (:meth:`Batch.parts`).
PART_SIZE = 100


@dataclass(frozen=True)
class Batch:
    """Rules evaluated in one run per tick of one schedule."""

    name: str  # also the multi-asset's op name; the job and schedule add _job, _schedule
    cron: str
    timezone: str
    rules: tuple[str, ...]  # rule names, in rules-file order

    @property
    def job_name(self) -> str:
        return f"{self.name}_job"

    @property
    def schedule_name(self) -> str:
        return f"{self.name}_schedule"

    def parts(self) -> list[Batch]:
        """The batch's steps: one multi-asset each, all in the batch's one run.

        Dagster's work per asset output grows with the number of outputs of its step
        (its run-time bookkeeping scans the step's outputs and checks for each one), so
        a step of 1,000 rules costs far more than ten of 100. A batch of at most
        :data:`PART_SIZE` rules is one step named after the batch; a larger one is
        ``<batch>_part_1``, ``<batch>_part_2``, … of that many rules each, in order. The
        job, its schedule and its one run per tick are the batch's, whatever its parts.
        """
        size = PART_SIZE  # read at call time: tests set it smaller
        if len(self.rules) <= size:
            return [self]
        return [Batch(f"{self.name}_part_{i // size + 1}", self.cron, self.timezone,
                      self.rules[i:i + size]) for i in range(0, len(self.rules), size)]


def default_batch_name(prefix: str, cron: str, timezone: str) -> str:
    """``<prefix><cron slug><zone slug>``: ``sql_metric_`` + ``every_5m`` + ``""``."""
    return f"{prefix}{cron_slug(cron)}{zone_slug(timezone)}"


def group_batches(prefix: str, entries: Iterable[tuple[str, str | None, str, str]]
                  ) -> list[Batch]:
    """Batches of ``(rule, named batch or None, cron, timezone)`` entries, in order of
    their first rule.

    Two schedules whose readable names would coincide (``1-5`` and ``1to5`` are not
    both valid cron, but a named batch may take a default's name) keep distinct names:
    a short hash of the cron and timezone is added to each.
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for rule, named, cron, zone in entries:
        name = f"{prefix}{named}" if named else default_batch_name(prefix, cron, zone)
        groups.setdefault((name, cron, zone), []).append(rule)
    taken: dict[str, int] = {}
    for name, _, _ in groups:
        taken[name] = taken.get(name, 0) + 1
    batches = []
    for (name, cron, zone), names in groups.items():
        if taken[name] > 1:  # same name, another schedule: keep them apart
            name = f"{name}_{hashlib.sha1(f'{cron}|{zone}'.encode()).hexdigest()[:6]}"
        batches.append(Batch(name, cron, zone, tuple(names)))
    return batches
