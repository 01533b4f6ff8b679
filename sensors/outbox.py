"""Retry sensor: when the outbox holds due notifications, launch a delivery run.

The tick itself runs one indexed COUNT query, so it stays far inside the 60 s sensor
limit; the sending happens in the run.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

import dagster as dg

from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.store import utcnow


@dg.sensor(
    job_name=DELIVERY_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches deliver_outbox_job when notifications are due (retries included).",
)
def outbox_retry_sensor(context: dg.SensorEvaluationContext,
                        alert_jobs: AlertJobsResource) -> dg.SensorResult | dg.SkipReason:
    due = alert_jobs.timeline().outbox.due_count()
    if due == 0:
        return dg.SkipReason("outbox empty: nothing due")
    # One run per minute at most: the run key is the minute, so a slow run is not doubled.
    key = utcnow().strftime("%Y-%m-%dT%H:%M")
    if key == context.cursor:
        return dg.SkipReason(f"{due} due; a delivery run was requested this minute")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"deliver-{key}")], cursor=key)
