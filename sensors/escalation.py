"""Escalation sensor: advances escalation steps of firing, un-acked alerts.

Steps are declared on routes (``escalation: [{after: 15m, receiver: secondary}, …]``).
The tick reads active alerts only (a handful), queues each due step once (a locked
transaction guards against double steps), and requests a delivery run when it did.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.

import dagster as dg

from alert_jobs.runtime.actions import escalate_due
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.store import utcnow


@dg.sensor(
    job_name=DELIVERY_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Escalates firing alerts nobody acked, per the routes' escalation steps.",
)
def escalation_sensor(context: dg.SensorEvaluationContext,
                      alert_jobs: AlertJobsResource) -> dg.SensorResult | dg.SkipReason:
    now = utcnow()
    done = escalate_due(alert_jobs.load_rules(), alert_jobs.timeline(), now=now)
    if not done:
        return dg.SkipReason("no escalation due")
    for line in done:
        context.log.info(f"escalated {line}")
    return dg.SensorResult(run_requests=[dg.RunRequest(
        run_key=f"escalation-{now.strftime('%Y-%m-%dT%H:%M:%S')}")])
