"""Retry sensor: when the outbox holds due notifications, launch a delivery run.

Due includes rows whose claim's lease ran out: their worker died (a live one renews
its lease while it sends), so after a crash the first tick past the lease (30 s by
default) launches the run that sends them: lease + one interval, about 90 s at worst.

Rows a run (or a sensor tick's delivery run) raised a moment ago are left to that run
for ``SETTLE`` (2 minutes, about what a queued run waits at worst): the retry run sends
leftovers and retries, not the news of the run that is about to send it (issue #12).

The tick itself runs one or two indexed COUNT queries, so it stays far inside the 60 s
sensor limit; the sending happens in the run.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from datetime import timedelta

import dagster as dg

from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.store import utcnow

SETTLE = timedelta(minutes=2)


@dg.sensor(
    job_name=DELIVERY_JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches deliver_outbox_job when notifications are due (retries included).",
)
def outbox_retry_sensor(context: dg.SensorEvaluationContext,
                        alert_jobs: AlertJobsResource) -> dg.SensorResult | dg.SkipReason:
    outbox = alert_jobs.timeline().outbox
    due = outbox.due_count(settle=SETTLE)
    if due == 0:
        leased = outbox.backlog()["leased"]
        return dg.SkipReason(f"nothing due; {leased} being sent by a live delivery run"
                             if leased else "outbox empty: nothing due")
    # One run per minute at most: the run key is the minute, so a slow run is not doubled.
    key = utcnow().strftime("%Y-%m-%dT%H:%M")
    if key == context.cursor:
        return dg.SkipReason(f"{due} due; a delivery run was requested this minute")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"deliver-{key}")], cursor=key)
