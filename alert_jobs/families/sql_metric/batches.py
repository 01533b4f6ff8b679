"""Which ``sql_metric`` rules run together: one batch per cron and timezone.

A Dagster run costs seconds of CPU before any rule is read (the run worker imports the
code location), so rules that are due at the same moment share one run: one batch, one
job, one schedule. A batch is named after its schedule, so the name stays the same
when rules are added or removed and says when it runs:

==========================  ================================
cron (timezone)             batch
==========================  ================================
``* * * * *`` (UTC)         ``sql_metric_every_minute``
``*/5 * * * *`` (UTC)       ``sql_metric_every_5m``
``0 * * * *`` (UTC)         ``sql_metric_hourly_at_00``
``0 */6 * * *`` (UTC)       ``sql_metric_every_6h_at_00``
``30 7 * * *`` (UTC)        ``sql_metric_daily_0730``
``0 9 * * 1-5`` (UTC)       ``sql_metric_cron_0_9_x_x_1to5``
``*/5 * * * *`` (Europe/    ``sql_metric_every_5m_europe_berlin``
Berlin)
==========================  ================================

A rule's ``batch: <name>`` puts it in the batch ``sql_metric_<name>`` instead (every
rule of a named batch has the same schedule; ``rules validate`` says so otherwise).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from alert_jobs.config import RulesFile
from alert_jobs.families.sql_metric.config import SqlMetricRule

PREFIX = "sql_metric_"
_NUMBER = re.compile(r"^\d+$")


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


def cron_slug(cron: str) -> str:
    """A readable identifier for a cron expression (see the module's table)."""
    fields = cron.split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"]:
        minute, hour = fields[0], fields[1]
        if minute == "*" and hour == "*":
            return "every_minute"
        if minute.startswith("*/") and _NUMBER.match(minute[2:]) and hour == "*":
            return f"every_{int(minute[2:])}m"
        if _NUMBER.match(minute) and hour == "*":
            return f"hourly_at_{int(minute):02d}"
        if _NUMBER.match(minute) and hour.startswith("*/") and _NUMBER.match(hour[2:]):
            return f"every_{int(hour[2:])}h_at_{int(minute):02d}"
        if _NUMBER.match(minute) and _NUMBER.match(hour):
            return f"daily_{int(hour):02d}{int(minute):02d}"
    text = cron.strip().lstrip("@").replace("*", "x").replace("/", "every").replace("-", "to")
    return "cron_" + re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()


def zone_slug(timezone: str) -> str:
    """``""`` for UTC, else ``_europe_berlin``-like."""
    if timezone == "UTC":
        return ""
    return "_" + re.sub(r"[^0-9A-Za-z]+", "_", timezone).strip("_").lower()


def default_batch_name(cron: str, timezone: str) -> str:
    return f"{PREFIX}{cron_slug(cron)}{zone_slug(timezone)}"


def batches_of(rules: RulesFile, only: Sequence[SqlMetricRule] | None = None) -> list[Batch]:
    """The batches of the file's sql_metric rules, in order of their first rule.

    Two schedules whose readable names would coincide (``1-5`` and ``1to5`` are not
    both valid cron, but a named batch may take a default's name) keep distinct names:
    a short hash of the cron and timezone is added to each.
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for rule in rules.rules_of(SqlMetricRule) if only is None else only:
        cron, zone = rules.schedule_for(rule), rules.timezone_for(rule)
        name = f"{PREFIX}{rule.batch}" if rule.batch else default_batch_name(cron, zone)
        groups.setdefault((name, cron, zone), []).append(rule.name)
    taken: dict[str, int] = {}
    for name, _, _ in groups:
        taken[name] = taken.get(name, 0) + 1
    batches = []
    for (name, cron, zone), names in groups.items():
        if taken[name] > 1:  # same name, another schedule: keep them apart
            name = f"{name}_{hashlib.sha1(f'{cron}|{zone}'.encode()).hexdigest()[:6]}"
        batches.append(Batch(name, cron, zone, tuple(names)))
    return batches
