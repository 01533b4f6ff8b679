"""``deliver_outbox_job``: the run that sends what is due in the outbox.

Sensors of any family (heartbeats, instance watch, escalation, outbox retries) request
it by name (:data:`~alert_jobs.runtime.resources.DELIVERY_JOB`), so it lives here, below
the families, rather than with the operator jobs of the launchpad.

Attribution (issue #12): a sensor that evaluates inside its tick (heartbeats, instance
watch) has no run of its own, so it requests this job with the outbox ids its tick
raised (:func:`delivery_request`); that run sends exactly those (and what it flushes
itself) and its ``notification_sent`` events name it. Without ids (the retry sensor, a
launch from the UI) the run sends everything due.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context and resource types.

from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource

OP_NAME = "deliver_outbox"
RAISED_BY_TAG = "alert_jobs/raised_by"


class DeliverConfig(dg.Config):
    outbox_ids: list[int] | None = Field(
        default=None, description="Send only these outbox rows (what a sensor tick raised); "
                                  "empty: everything due.")


@dg.op(name=OP_NAME,
       description="Deliver due notifications: the rows a sensor tick raised, or everything "
                   "due (retries included).")
def deliver_outbox(context: dg.OpExecutionContext, config: DeliverConfig,
                   alert_jobs: AlertJobsResource) -> None:
    report = deliver(alert_jobs.load_rules(), alert_jobs.timeline(), run_id=context.run_id,
                     ids=config.outbox_ids or None)
    context.log.info(f"delivery: {report}")
    for error in report.errors:
        context.log.warning(error)


@dg.job(name=DELIVERY_JOB, description="Deliver due notifications from the outbox.",
        tags={"alert_jobs/kind": "delivery"})
def deliver_outbox_job() -> None:
    deliver_outbox()


def delivery_request(run_key: str, outbox_ids: Sequence[int], raised_by: str
                     ) -> dg.RunRequest:
    """The run a sensor tick requests to deliver exactly the rows it raised."""
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {OP_NAME: {"config": {"outbox_ids": sorted(outbox_ids)}}}},
        tags={RAISED_BY_TAG: raised_by})
