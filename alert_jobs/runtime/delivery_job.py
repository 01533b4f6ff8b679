"""``deliver_outbox_job``: the run that sends what is due in the outbox.

Sensors of any family (heartbeats, instance watch, escalation, outbox retries) request
it by name (:data:`~alert_jobs.runtime.resources.DELIVERY_JOB`), so it lives here, below
the families, rather than with the operator jobs of the launchpad.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context and resource types.

import dagster as dg

from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource


@dg.op(description="Deliver every due notification in the outbox (retries included).")
def deliver_outbox(context: dg.OpExecutionContext, alert_jobs: AlertJobsResource) -> None:
    report = deliver(alert_jobs.load_rules(), alert_jobs.timeline(), run_id=context.run_id)
    context.log.info(f"delivery: {report}")
    for error in report.errors:
        context.log.warning(error)


@dg.job(name=DELIVERY_JOB, description="Deliver due notifications from the outbox.",
        tags={"alert_jobs/kind": "delivery"})
def deliver_outbox_job() -> None:
    deliver_outbox()
