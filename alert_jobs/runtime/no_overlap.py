"""One run of a batch at a time: the run tag, and the schedule's skip while one is going.

A batch's runs carry the tag ``alert_jobs/batch: <batch>``. Two things keep them apart:

* a schedule tick asks the instance for a run of its batch that is queued, starting,
  started or canceling and, if there is one, returns a ``SkipReason`` naming it (run
  id, status, since when) instead of a run request, so the tick's history in the UI
  says why no run started;
* the tag lets a ``QueuedRunCoordinator`` cap the batch's runs as well (``dagster.yaml``:
  ``tag_concurrency_limits: [{key: alert_jobs/batch, value: {applyLimitPerUniqueValue:
  true}, limit: 1}]``), which also covers runs launched by hand from a job's launchpad.

Neither is needed for correctness — two overlapping runs still give one notification
(the engine locks each alert) — only for cost: a slow batch must not pile up runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

BATCH_TAG = "alert_jobs/batch"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING]


def batch_tags(batch: str) -> dict[str, str]:
    """The run tags of every run of ``batch`` (put them on its job)."""
    return {BATCH_TAG: batch}


def run_in_progress(instance: dg.DagsterInstance, batch: str) -> dg.SkipReason | None:
    """Why a tick of ``batch`` starts no run now (a run of it is in progress), or None."""
    records = instance.get_run_records(
        dg.RunsFilter(tags=batch_tags(batch), statuses=IN_PROGRESS), limit=1)
    if not records:
        return None
    record = records[0]
    run = record.dagster_run
    since = datetime.fromtimestamp(record.start_time, UTC) if record.start_time \
        else record.create_timestamp.astimezone(UTC)
    age = (datetime.now(UTC) - since).total_seconds()
    what = "started" if record.start_time else "created"
    return dg.SkipReason(
        f"run {run.run_id} of batch {batch} is still {run.status.value.lower()} ({what} "
        f"{since:%Y-%m-%d %H:%M:%S} UTC, {age:.0f} s ago); this tick starts no run so that "
        "two runs of the batch never overlap")


def unless_running(context: dg.ScheduleEvaluationContext, batch: str,
                   request: dg.RunRequest | dg.SkipReason) -> dg.RunRequest | dg.SkipReason:
    """``request``, or the skip naming the batch's run that is still in progress."""
    if isinstance(request, dg.SkipReason):
        return request
    return run_in_progress(context.instance, batch) or request
