"""Hung runs: a run in progress longer than its limit is an alert with the run link.

A hung run evaluates nothing, and while it is in progress every tick of its batch
skips (:mod:`alert_jobs.runtime.no_overlap`): the batch's rules are unwatched and
nothing says so. The instance watch asks, each tick, which runs are in progress and
for how long, and raises ``dagster_run_hung`` {job, location} for a job whose oldest
run is past its limit; the alert resolves when the job has no hung run any more.

Which runs count as in progress:

* ``STARTED`` and ``CANCELING``: timed from the run's start (a cancel that never
  finishes holds the batch just the same);
* ``STARTING``: timed from when it began starting (a launch whose run worker never
  comes up also holds the batch);
* not ``QUEUED`` nor ``NOT_STARTED``: such a run waits for a slot, it is not hung (a
  queue that does not move shows as the hung run ahead of it).

The limit of a job, first match (:func:`hung_limit`, pure): ``hung_after[<job>]``,
``hung_after[<family>]``, ``hung_after["default"]``, else its own history: with at
least :data:`MIN_HISTORY` of its last :data:`HISTORY_RUNS` successful runs,
``hung_history_factor`` × their p95 run time, never below ``hung_min``; with fewer,
``hung_without_history``.

Cost per tick: one query for the runs in progress; a job's history (one query of 20
rows) is read only when its oldest run is past ``hung_min`` (or past
``hung_without_history``, if shorter) — before that no history-based limit can be
exceeded — and only once per job per tick.

Run monitoring fails a batch's run past its ``dagster/max_runtime_seconds`` (three
schedule intervals). The history-based limit comes first when the batch's runs
normally take less than an interval (3 × p95 < 3 intervals), as they must for a batch
that does not overlap itself. A job still without history has ``hung_without_history``
(1 h), which may be later: then run monitoring fails the run first, and that failure is
the ``dagster_run_failed`` alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import Observation, Status, fingerprint
from alert_jobs.families.heartbeat.config import RUN_HUNG, SelfMonitoring
from alert_jobs.store import Timeline

#: Run statuses that may hang (see the module docstring for why not QUEUED).
IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING)
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED)
#: How many of a job's latest successful runs its limit learns from …
HISTORY_RUNS = 20
#: … and how many it needs at least; with fewer, ``hung_without_history`` applies.
MIN_HISTORY = 5
#: The key of ``hung_after`` that applies to every job without its own.
DEFAULT_KEY = "default"

_DOING = {dg.DagsterRunStatus.STARTING: "starting", dg.DagsterRunStatus.STARTED: "running",
          dg.DagsterRunStatus.CANCELING: "canceling"}
_ENDED = {dg.DagsterRunStatus.SUCCESS: "succeeded", dg.DagsterRunStatus.FAILURE: "failed",
          dg.DagsterRunStatus.CANCELED: "was canceled"}


# ----- the limit (pure) ----------------------------------------------------------------

def p95(durations: Sequence[timedelta]) -> timedelta:
    """The 95th percentile by nearest rank: of 20 runs the second longest, of fewer the
    longest (one outlier in 20 is allowed for; more than that is how the job runs)."""
    if not durations:
        raise ValueError("p95 of no durations")
    ordered = sorted(durations)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def configured_limit(hung_after: Mapping[str, timedelta], job: str,
                     family: str | None = None) -> tuple[timedelta, str] | None:
    """The limit ``self_monitoring.hung_after`` sets for ``job`` (by its name, then its
    family, then ``default``) and the key that set it; None when none does."""
    for key in (job, family, DEFAULT_KEY):
        if key is not None and key in hung_after:
            return hung_after[key], f"hung_after.{key}"
    return None


def history_limit(durations: Sequence[timedelta], *, factor: float, floor: timedelta,
                  without_history: timedelta) -> tuple[timedelta, str]:
    """The limit learnt from a job's past run times, and why it is that."""
    runs = len(durations)
    if runs < MIN_HISTORY:
        return without_history, (f"hung_without_history: {runs} finished run"
                                 f"{'' if runs == 1 else 's'} to learn from, "
                                 f"{MIN_HISTORY} needed")
    typical = p95(durations)
    learnt = typical * factor
    basis = f"{factor:g} × p95 of its last {runs} runs"
    if learnt < floor:
        return floor, f"hung_min; {basis} is only {_minutes(learnt)}"
    return learnt, f"{basis} ({_minutes(typical)})"


def hung_limit(durations: Sequence[timedelta], sm: SelfMonitoring, job: str,
               family: str | None = None) -> tuple[timedelta, str]:
    """How long a run of ``job`` may be in progress, and a short "why" for the message:
    the configured limit if there is one, else the one learnt from ``durations`` (its
    last successful runs' run times, newest first; unread when configured)."""
    return configured_limit(sm.hung_after, job, family) or history_limit(
        durations, factor=sm.hung_history_factor, floor=sm.hung_min,
        without_history=sm.hung_without_history)


def history_needed(elapsed: timedelta, sm: SelfMonitoring) -> bool:
    """Whether a run this long may be past a history-based limit at all (every such
    limit is at least ``hung_min``, or ``hung_without_history``)."""
    return elapsed > min(sm.hung_min, sm.hung_without_history)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.1f} min"


# ----- the instance ---------------------------------------------------------------------

def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def in_progress_since(record: dg.RunRecord) -> datetime:
    """When the run's current stretch began: its start, or (starting, or no start time
    recorded) the last change of its status."""
    if record.dagster_run.status != dg.DagsterRunStatus.STARTING and record.start_time:
        return datetime.fromtimestamp(record.start_time, UTC)
    return _aware(record.update_timestamp)


def _location(run: dg.DagsterRun) -> str:
    origin = run.remote_job_origin
    return origin.location_name if origin is not None else ""


def past_durations(instance: dg.DagsterInstance, job: str,
                   location: str | None = None) -> list[timedelta]:
    """Run times of the job's last :data:`HISTORY_RUNS` successful runs, newest first;
    of ``location``'s job only, when given (``__ASSET_JOB`` is in every location)."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=HISTORY_RUNS * (5 if location is not None else 1))
    return [timedelta(seconds=r.end_time - r.start_time) for r in records
            if r.start_time is not None and r.end_time is not None
            and r.end_time >= r.start_time
            and (location is None or _location(r.dagster_run) == location)][:HISTORY_RUNS]


def open_hung_alerts(timeline: Timeline) -> dict[str, dict[str, str]]:
    """The open ``dagster_run_hung`` alerts, fingerprint → labels: what
    :func:`hung_observations` takes as ``active`` (it must know a job to resolve it)."""
    return {a.fingerprint: dict(a.labels) for a in timeline.alerts.list() if a.rule == RUN_HUNG}


def hung_observations(instance: dg.DagsterInstance, sm: SelfMonitoring,
                      active: MutableMapping[str, Mapping[str, str]], *, now: datetime,
                      dagster_url: str, families: Mapping[str, str] | None = None
                      ) -> list[Observation]:
    """An alert per job with a run in progress past its limit, and an ok per open alert
    (in ``active``) whose job has none any more.

    ``active``: the open alerts, fingerprint → labels (:func:`open_hung_alerts`); entries
    of other rules are left alone. It is updated: a new hung job is added, a resolved one
    removed. ``families``: job name → family name, for ``hung_after.<family>``.
    """
    if not sm.hung_runs:
        return []
    base = dagster_url.rstrip("/")
    groups: dict[tuple[str, str], list[dg.RunRecord]] = {}
    for record in instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS))):
        run = record.dagster_run
        groups.setdefault((run.job_name, _location(run)), []).append(record)
    history: dict[tuple[str, str], list[timedelta]] = {}
    out: list[Observation] = []
    hung: set[str] = set()
    for (job, location), records in sorted(groups.items()):
        records.sort(key=in_progress_since)
        elapsed = now - in_progress_since(records[0])
        family = (families or {}).get(job)
        limit = configured_limit(sm.hung_after, job, family)
        if limit is None:
            if not history_needed(elapsed, sm):
                continue
            if (job, location) not in history:
                history[job, location] = past_durations(instance, job, location)
            limit = hung_limit(history[job, location], sm, job, family)
        if elapsed <= limit[0]:
            continue
        labels = {"job": job, "location": location}
        more = sum(1 for r in records[1:] if now - in_progress_since(r) > limit[0])
        out.append(_hung(records[0], labels, elapsed, limit, more, base))
        hung.add(fingerprint(RUN_HUNG, labels))
        active[fingerprint(RUN_HUNG, labels)] = labels
    for fp, open_labels in list(active.items()):
        if fp in hung or fingerprint(RUN_HUNG, dict(open_labels)) != fp:
            continue  # still hung, or an alert of another rule
        key = (open_labels.get("job", ""), open_labels.get("location", ""))
        out.append(Observation(RUN_HUNG, Status.OK, dict(open_labels), 0.0,
                               summary=_no_longer_hung(instance, key, groups.get(key), base)))
        del active[fp]
    return out


def _hung(record: dg.RunRecord, labels: dict[str, str], elapsed: timedelta,
          limit: tuple[timedelta, str], more: int, base: str) -> Observation:
    run = record.dagster_run
    link = f"{base}/runs/{run.run_id}"
    doing = _DOING.get(run.status, "in progress")
    took, allowed = format_duration(elapsed), format_duration(limit[0])
    where = f" in {labels['location']}" if labels["location"] else ""
    also = f"; {more} more of its runs are past the limit too" if more else ""
    return Observation(
        RUN_HUNG, Status.ALERT, labels, round(elapsed.total_seconds() / 60, 2),
        summary=f"Run {run.run_id[:8]} of job {labels['job']}{where} has been {doing} for "
                f"{took}, past its limit of {allowed} ({limit[1]}){also}: {link}",
        expected=f"runs of {labels['job']} to finish within {allowed} ({limit[1]})",
        seen=f"run {run.run_id} {doing} for {took}",
        details={"run_id": run.run_id, "run_url": link})


def _no_longer_hung(instance: dg.DagsterInstance, key: tuple[str, str],
                    running: list[dg.RunRecord] | None, base: str) -> str:
    """How it ended, from one query for the job's latest finished run (rare: once per
    resolved alert)."""
    job = key[0]
    if running:
        run = running[0].dagster_run
        return (f"Job {job} has no hung run any more: run {run.run_id[:8]} is "
                f"{_DOING.get(run.status, 'in progress')} within its limit")
    records = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=list(FINISHED)),
                                       limit=1, order_by="update_timestamp")
    if not records:
        return f"Job {job} has no run in progress any more"
    run = records[0].dagster_run
    return (f"Job {job} has no run in progress any more: its latest run {run.run_id[:8]} "
            f"{_ENDED.get(run.status, run.status.value.lower())} ({base}/runs/{run.run_id})")


__all__ = ["DEFAULT_KEY", "HISTORY_RUNS", "IN_PROGRESS", "MIN_HISTORY", "configured_limit",
           "history_limit", "history_needed", "hung_limit", "hung_observations",
           "open_hung_alerts", "p95", "past_durations"]
