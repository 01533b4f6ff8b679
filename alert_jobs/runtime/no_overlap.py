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

A run that never ends would stop its batch for good, so a batch's job also carries a
run time limit (:func:`batch_job_tags`): run monitoring fails a run that takes three of
its schedule's intervals, which frees the batch after a hang or a killed code server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from alert_jobs.core.cron import longest_gap

BATCH_TAG = "alert_jobs/batch"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING]


#: Dagster's run tag for the longest a run may take; run monitoring (on in
#: ``deploy/dagster.yaml``) fails a run that takes longer.
MAX_RUNTIME_TAG = "dagster/max_runtime_seconds"
#: A batch's run that takes this many intervals of its schedule is hung, or its process
#: died with the code server that started it: with the DefaultRunLauncher nothing else
#: ends such a run, and while it is "started" every tick of the batch skips (and the
#: batch's concurrency slot stays taken). ``tests/test_topology.py`` kills a run so.
RUN_LIMIT_INTERVALS = 3
#: … but never less than this (a minute batch's backfill may use 2 minutes of a run).
MIN_RUN_LIMIT = timedelta(minutes=3)


def batch_tags(batch: str) -> dict[str, str]:
    """The run tags of every run of ``batch`` (put them on its job)."""
    return {BATCH_TAG: batch}


def run_time_limit(cron: str, timezone: str) -> int:
    """Seconds a run of a batch on ``cron`` may take before run monitoring fails it:
    :data:`RUN_LIMIT_INTERVALS` of its longest interval, at least :data:`MIN_RUN_LIMIT`."""
    return round(max(MIN_RUN_LIMIT, RUN_LIMIT_INTERVALS * longest_gap(cron, timezone))
                 .total_seconds())


def batch_job_tags(batch: str, cron: str, timezone: str) -> dict[str, str]:
    """The tags of a batch's job: its batch, and its run time limit."""
    return {**batch_tags(batch), MAX_RUNTIME_TAG: str(run_time_limit(cron, timezone))}


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
