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

from collections.abc import Sequence

from alert_jobs.config import RulesFile
from alert_jobs.core.cron import cron_slug, zone_slug
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime import batching
from alert_jobs.runtime.batching import Batch

PREFIX = "sql_metric_"
__all__ = ["PREFIX", "Batch", "batches_of", "cron_slug", "default_batch_name", "zone_slug"]


def default_batch_name(cron: str, timezone: str) -> str:
    return batching.default_batch_name(PREFIX, cron, timezone)


def batches_of(rules: RulesFile, only: Sequence[SqlMetricRule] | None = None) -> list[Batch]:
    """The batches of the file's sql_metric rules, in order of their first rule (names
    that would coincide get a short hash: :func:`~alert_jobs.runtime.batching.group_batches`)."""
    return batching.group_batches(PREFIX, (
        (rule.name, rule.batch, rules.schedule_for(rule), rules.timezone_for(rule))
        for rule in (rules.rules_of(SqlMetricRule) if only is None else only)))
