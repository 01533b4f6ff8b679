"""The monthly SLO budget report as a Dagster asset: ``slo_budget_report`` (group ``slo``).

One partition per UTC calendar month (the alert review's months); the running month is
a partition too, so "Materialize" in the UI gives the month to date (the demo's burst
shows at once). Each materialization writes the HTML report beside the alert review
(``slo-budget-YYYY-MM.html``) and returns the Markdown report plus plain numbers per SLO
(budget spent and SLI in percent, alerts), which the UI plots across months. Its schedule
runs at 09:00 UTC on the 1st for the month that has just ended, RUNNING by default.

Lineage: downstream of the timeline (``alert_timeline``), where every SLO's asset
(``slo/<rule>``) stores the buckets it reads; an asset that reads the timeline is not
counted among its writers (``alert_jobs.definitions``), so there is no cycle. Wired
in by the family's ``definitions.py``:
``dg.Definitions.merge(..., build_report_definitions(rules))``.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and resources.

from datetime import UTC, date, datetime

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.report import numbers, previous_month, write_report
from alert_jobs.runtime.resources import TIMELINE_KEY, AlertJobsResource

GROUP = "slo"
REPORT_KEY = dg.AssetKey("slo_budget_report")
JOB_NAME = "slo_budget_report_job"
SCHEDULE_NAME = "slo_budget_report_schedule"
SCHEDULE_CRON = "0 9 1 * *"
SCHEDULE_TIMEZONE = "UTC"  # the months are UTC months: a UTC schedule names them plainly
START_DATE = date(2025, 1, 1)


def slo_asset_key(rule: str) -> dg.AssetKey:
    """The per-SLO asset (``slo/<rule>``) the report reads the buckets of."""
    return dg.AssetKey([GROUP, rule])


def _start_date(rules: RulesFile) -> str:
    """The alert review's first month when the quality family is installed (read by name:
    families never import each other), else 2025-01."""
    start = getattr(getattr(rules, "quality", None), "start_date", None)
    return (start if isinstance(start, date) else START_DATE).replace(day=1).isoformat()


def build_report_definitions(rules: RulesFile) -> dg.Definitions:
    """The ``slo_budget_report`` asset, its job and monthly schedule (empty without SLOs)."""
    slos = rules.rules_of(SloRule)
    if not slos:
        return dg.Definitions()
    months = dg.MonthlyPartitionsDefinition(start_date=_start_date(rules), timezone="UTC",
                                            end_offset=1)

    @dg.asset(key=REPORT_KEY, group_name=GROUP, partitions_def=months, kinds={"sql"},
              deps=[TIMELINE_KEY],
              description="Per SLO and UTC month: SLI, error budget spent and left, the "
                          "worst burn, and the alerts it raised with their outcomes and "
                          "times to ack and resolve (Markdown here, HTML beside the alert "
                          "review).")
    def slo_budget_report(context: dg.AssetExecutionContext,
                          alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        month = context.partition_key[:7]
        written = write_report(alert_jobs.load_rules(), alert_jobs.timeline(), month)
        meta = numbers(written.report)
        meta["report"] = dg.MetadataValue.md(written.markdown)
        meta["html_report"] = dg.MetadataValue.path(str(written.path))
        context.log.info(f"{month}: {meta['slos']} SLO(s), {meta['slos_over_budget']} over "
                         f"budget, {meta['alerts']} alert(s); HTML at {written.path}")
        return dg.MaterializeResult(metadata=meta)

    job = dg.define_asset_job(JOB_NAME, selection=[REPORT_KEY], partitions_def=months)

    @dg.schedule(name=SCHEDULE_NAME, cron_schedule=SCHEDULE_CRON,
                 execution_timezone=SCHEDULE_TIMEZONE, job=job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="The SLO budget report of the month that has just ended (UTC).")
    def slo_budget_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC)
        key = f"{previous_month(when)}-01"
        return dg.RunRequest(run_key=key, partition_key=key)

    return dg.Definitions(assets=[slo_budget_report], jobs=[job],
                          schedules=[slo_budget_schedule])
