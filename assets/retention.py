"""``timeline_retention``: the daily job that keeps the timeline's size bounded.

An asset downstream of ``alert_timeline`` (so the lineage shows what trims it), its
materialization reports what it removed per table (plain numbers, plotted by the UI)
and how long it took; its schedule follows ``retention:`` (``schedule``, ``timezone``;
none while ``enabled: false``). The work itself is :func:`alert_jobs.store.retention.trim`
with every family's ``trim`` hook: short batches, so checks keep running meanwhile.
"""

import dagster as dg  # no `from __future__ import annotations`: Dagster reads the context type

from alert_jobs.config import RulesFile
from alert_jobs.runtime.family import family_trims
from alert_jobs.runtime.resources import TIMELINE_KEY, AlertJobsResource
from alert_jobs.store import utcnow
from alert_jobs.store.retention import trim

RETENTION_KEY = dg.AssetKey("timeline_retention")


@dg.asset(key=RETENTION_KEY, group_name="alert_quality", deps=[TIMELINE_KEY],
          kinds={"sql"},
          description="Removes what the `retention:` settings say is old from the timeline "
                      "(events, evaluations, delivered notifications, heartbeat pings), in "
                      "short batches; alert-quality episodes and rollups are never removed.")
def timeline_retention(context: dg.AssetExecutionContext,
                       alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
    policy = alert_jobs.load_rules().retention
    if not policy.enabled:
        context.log.info("retention is off (retention.enabled: false): nothing removed")
        return dg.MaterializeResult(metadata={"removed_rows": 0, "enabled": False})
    now = utcnow()
    trimmed = trim(alert_jobs.timeline(), policy, now, family_trims())
    context.log.info(f"removed {trimmed.total:,} rows in {trimmed.batches} batches "
                     f"({trimmed.seconds:.1f} s): "
                     + (", ".join(f"{t} {n:,}" for t, n in sorted(trimmed.rows.items()))
                        or "nothing"))
    return dg.MaterializeResult(metadata={
        "removed_rows": trimmed.total, "batches": trimmed.batches,
        "seconds": round(trimmed.seconds, 3),
        **{f"removed_{table.removeprefix('alert_')}": n for table, n in trimmed.rows.items()},
        "events_before": dg.MetadataValue.text(f"{now - policy.events:%Y-%m-%d %H:%M} UTC"),
        "evaluations_before": dg.MetadataValue.text(
            f"{now - policy.evaluations:%Y-%m-%d %H:%M} UTC"),
    })


retention_job = dg.define_asset_job(
    "timeline_retention_job", selection=[RETENTION_KEY],
    description="Trim the timeline now, as the daily schedule does.",
    tags={"alert_jobs/batch": "timeline_retention"})


def definitions(rules: RulesFile | None) -> dg.Definitions:
    """The asset and its job; the daily schedule unless retention is off."""
    schedules = []
    if rules is not None and rules.retention.enabled:
        policy = rules.retention
        schedules.append(dg.ScheduleDefinition(
            name="timeline_retention_schedule", job=retention_job,
            cron_schedule=policy.schedule, execution_timezone=policy.timezone,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Timeline retention ({policy.schedule}, {policy.timezone})"))
    return dg.Definitions(assets=[timeline_retention], jobs=[retention_job],
                          schedules=schedules)
