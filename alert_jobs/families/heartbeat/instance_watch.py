"""Instance watch: failed runs, failed asset checks and failed ticks become alerts.

Open-source Dagster records these but tells no one. This sensor reads them for every
code location of the instance, with a cursor (event-log storage ids of run failures
and successes, whose asset-check evaluations are read with them; the last tick id per
sensor/schedule), so none is missed or repeated across ticks, and feeds them to the
one engine:

* ``dagster_run_failed`` {job, location}: fires on a failed run, resolves when that
  job next succeeds;
* ``dagster_asset_check_failed`` {asset, check}: WARN → warning, ERROR → critical;
  resolves when the same check next passes. Checks of this code location's own assets
  are skipped: their alerts already went through the engine;
* ``dagster_tick_failed`` {instigator, type, location}: resolves on the next good tick.

and, looked at afresh on every tick (states, not events):

* ``dagster_check_stale`` {schedule, location}: scheduled checks of this code location
  not evaluated within their freshness window, with the likely cause
  (:mod:`.watch_freshness`);
* ``dagster_run_hung`` {job, location}: a run in progress past its limit, with its link
  (:mod:`.watch_runs`);
* ``dagster_location_failed`` {location}: a code location that does not load, with the
  error's first line, as the webserver's GraphQL API reports it (:mod:`.watch_locations`).

The first tick looks back ``self_monitoring.lookback`` (1 h), not at all history; that
starting point is kept in the cursor, so a source with nothing seen yet is still read
from there after a long daemon outage (not from "an hour ago" again).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Observation, Severity, Status, fingerprint
from alert_jobs.families.heartbeat.config import SelfMonitoring
from alert_jobs.families.heartbeat.watch import (
    ASSET_CHECK_FAILED,
    CHECK_STALE,
    LOCATION_FAILED,
    RUN_FAILED,
    RUN_HUNG,
    TICK_FAILED,
    report,
)
from alert_jobs.families.heartbeat.watch_freshness import (
    job_families,
    own_expectations,
    stale_observations,
)
from alert_jobs.families.heartbeat.watch_locations import (
    LocationQueryError,
    location_observations,
    location_statuses,
    open_location_names,
)
from alert_jobs.families.heartbeat.watch_runs import hung_observations
from alert_jobs.runtime.delivery_job import delivery_request
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.runtime.tick import tick_outbox_ids
from alert_jobs.store import Timeline, utcnow

SENSOR_NAME = "instance_watch_sensor"
PAGE = 500  # records per source per tick; the cursor brings the rest next tick


def _first_line(text: str | None, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:limit]


def _run_location(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    origin = run.remote_job_origin if run is not None else None
    return origin.location_name if origin is not None else ""


class Cursor:
    """Where the last tick stopped, per source; JSON in the sensor's cursor."""

    def __init__(self, raw: str | None):
        try:
            data = json.loads(raw) if raw else {}
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            self.error: str | None = None
        except ValueError as exc:
            # A cursor set by hand (UI "set cursor") must not fail every tick: nothing
            # watches this sensor, so start over from the lookback window instead.
            data, self.error = {}, f"unreadable cursor ({exc}); starting from lookback"
        self.since: float | None = data.get("since")  # where the first tick started
        #: when the watch first saw each check never evaluated yet (rule → epoch s): it
        #: is stale only once the watch has seen it for longer than its window
        unseen = data.get("unseen", {})
        self.unseen: dict[str, float] = {str(k): float(v) for k, v in unseen.items()} \
            if isinstance(unseen, dict) else {}
        self.run_fail: int | None = data.get("run_fail")
        self.run_ok: int | None = data.get("run_ok")
        self.ticks: dict[str, int] = dict(data.get("ticks", {}))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "unseen": self.unseen,
                           "run_fail": self.run_fail, "run_ok": self.run_ok,
                           "ticks": self.ticks}, sort_keys=True)


def _run_changes(instance: dg.DagsterInstance, event_type: dg.DagsterEventType,
                 after_id: int | None, since: float, page: int) -> list[Any]:
    flt = dg.RunStatusChangeRecordsFilter(
        event_type=event_type,  # type: ignore[arg-type]
        after_storage_id=after_id, after_timestamp=None if after_id is not None else since)
    return list(instance.fetch_run_status_changes(flt, limit=page, ascending=True).records)


def finished_runs(instance: dg.DagsterInstance, cursor: Cursor, since: float,
                  page: int = PAGE) -> list[tuple[bool, Any]]:
    """Runs that failed or succeeded since the cursor, oldest first: (succeeded, record).

    Failures and successes are two pages; when one is full, the other is cut at its
    last id, so a success is never applied before an older failure still unread.
    """
    failed = _run_changes(instance, dg.DagsterEventType.RUN_FAILURE, cursor.run_fail, since,
                          page)
    succeeded = _run_changes(instance, dg.DagsterEventType.RUN_SUCCESS, cursor.run_ok, since,
                             page)
    bound = min((p[-1].storage_id for p in (failed, succeeded) if len(p) >= page),
                default=None)
    if bound is not None:
        failed = [r for r in failed if r.storage_id <= bound]
        succeeded = [r for r in succeeded if r.storage_id <= bound]
    if failed:
        cursor.run_fail = failed[-1].storage_id
    if succeeded:
        cursor.run_ok = succeeded[-1].storage_id
    events = sorted([(r.storage_id, False, r) for r in failed]
                    + [(r.storage_id, True, r) for r in succeeded], key=lambda x: x[0])
    return [(ok, record) for _, ok, record in events]


def run_observations(instance: dg.DagsterInstance, runs: list[tuple[bool, Any]],
                     active: set[str], dagster_url: str) -> list[Observation]:
    out = []
    for ok, record in runs:
        entry = record.event_log_entry
        job = entry.job_name or (entry.dagster_event.job_name if entry.dagster_event else "")
        labels = {"job": job or "?", "location": _run_location(instance, record.run_id)}
        link = f"{dagster_url.rstrip('/')}/runs/{record.run_id}"
        if ok:
            if fingerprint(RUN_FAILED, labels) not in active:
                continue
            out.append(Observation(RUN_FAILED, Status.OK, labels, 0.0,
                                   summary=f"Job {job} succeeded again (run {link})"))
            active.discard(fingerprint(RUN_FAILED, labels))
            continue
        where = f" in {labels['location']}" if labels["location"] else ""
        message = _first_line(entry.dagster_event.message if entry.dagster_event else
                              entry.user_message)
        out.append(Observation(
            RUN_FAILED, Status.ALERT, labels, 1.0,
            summary=f"Run {record.run_id[:8]} of job {job}{where} failed: {message} ({link})",
            expected="every run to succeed", seen=f"run {record.run_id} failed",
            details={"run_id": record.run_id, "run_url": link}))
        active.add(fingerprint(RUN_FAILED, labels))
    return out


def check_observations(instance: dg.DagsterInstance, runs: list[tuple[bool, Any]],
                       active: set[str], own_assets: frozenset[str]) -> list[Observation]:
    """Asset-check evaluations of the finished runs, in order.

    Read per run (``all_logs``) rather than from a global event-log cursor: the default
    SQLite instance shards its event log per run and cannot page it globally.
    """
    out = []
    for _, record in runs:
        for entry in instance.all_logs(record.run_id,
                                       of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            event = entry.dagster_event
            evaluation = event.event_specific_data if event is not None else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            obs = _check_observation(evaluation, record.run_id, active, own_assets)
            if obs is not None:
                out.append(obs)
    return out


def _check_observation(evaluation: dg.AssetCheckEvaluation, run_id: str, active: set[str],
                       own_assets: frozenset[str]) -> Observation | None:
    asset = evaluation.asset_key.to_user_string()
    if asset in own_assets:
        return None  # our own checks: their alerts already went through the engine
    labels = {"asset": asset, "check": evaluation.check_name}
    fp = fingerprint(ASSET_CHECK_FAILED, labels)
    if evaluation.passed:
        if fp not in active:
            return None
        active.discard(fp)
        return Observation(ASSET_CHECK_FAILED, Status.OK, labels, 0.0,
                           summary=f"Asset check {asset}:{evaluation.check_name} passes again")
    error = evaluation.severity == dg.AssetCheckSeverity.ERROR
    why = _first_line(evaluation.description) or "no description"
    active.add(fp)
    return Observation(
        ASSET_CHECK_FAILED, Status.ALERT, labels, 1.0,
        summary=f"Asset check {asset}:{evaluation.check_name} failed "
                f"({evaluation.severity.value}): {why}",
        expected="the asset check to pass", seen=f"failed in run {run_id[:8]}",
        severity=Severity.CRITICAL if error else Severity.WARNING, details={"run_id": run_id})


def _error_text(error: Any) -> str:
    """The error's first line, and its root cause's (a sensor's own exception is wrapped
    in Dagster's SensorExecutionError)."""
    if error is None:
        return "no error recorded"
    text = _first_line(error.message)
    root = error
    while getattr(root, "cause", None) is not None:
        root = root.cause
    if root is not error:
        text += f" (caused by {_first_line(root.message)})"
    return text[:600]


#: Tick statuses that are final (a STARTED tick may still fail), by name: Dagster 1.13
#: has no public alias of its TickStatus enum (the enum is taken from a returned tick).
FINISHED = frozenset({"FAILURE", "SUCCESS", "SKIPPED"})


def _status(tick: Any) -> str:
    return str(getattr(tick.status, "value", tick.status))


def _location(state: Any) -> str:
    try:
        return str(state.origin.repository_origin.code_location_origin.location_name)
    except AttributeError:
        return ""


def _new_ticks(instance: dg.DagsterInstance, state: Any, last: int | None, since: float,
               page: int) -> list[Any]:
    """Finished ticks after ``last`` (or since ``since``), oldest first. Dagster pages
    ticks newest first: when more than a page arrived since the last tick, the failed
    ones of the older rest are read too, so a failure is never skipped."""
    origin, key = state.instigator_origin_id, state.selector_id
    after = None if last is not None else since
    newest = list(instance.get_ticks(origin, key, limit=page, after=after))
    ticks = [t for t in newest if _status(t) in FINISHED]
    if len(newest) >= page and min(t.tick_id for t in newest) > (last or 0):
        # More than a page since the last look: read the failures among the older rest
        # (in the database; the status enum comes from a tick Dagster returned).
        failure = type(newest[0].status)["FAILURE"]
        oldest = min(t.timestamp for t in newest)
        ticks += instance.get_ticks(origin, key, statuses=[failure], before=oldest + 1e-3,
                                    after=after, limit=page)
    unique = {t.tick_id: t for t in ticks if last is None or t.tick_id > last}
    return [unique[i] for i in sorted(unique)]


def tick_observations(instance: dg.DagsterInstance, cursor: Cursor, since: float,
                      active: set[str], page: int = PAGE) -> list[Observation]:
    out = []
    for state in instance.all_instigator_state():
        key = state.selector_id
        new = _new_ticks(instance, state, cursor.ticks.get(key), since, page)
        if not new:
            continue
        cursor.ticks[key] = new[-1].tick_id
        kind = str(state.instigator_type.value).lower()
        labels = {"instigator": state.instigator_name, "type": kind,
                  "location": _location(state)}
        fp = fingerprint(TICK_FAILED, labels)
        for tick in new:
            if tick.is_failure:
                error = _error_text(tick.error)
                out.append(Observation(
                    TICK_FAILED, Status.ALERT, labels, 1.0,
                    summary=f"The {kind} {state.instigator_name} failed a tick: {error}",
                    expected=f"every {kind} tick to succeed", seen="a failed tick",
                    details={"tick_id": int(tick.tick_id)}))
                active.add(fp)
            elif fp in active:
                out.append(Observation(TICK_FAILED, Status.OK, labels, 0.0,
                                       summary=f"The {kind} {state.instigator_name} ticks "
                                               "successfully again"))
                active.discard(fp)
    return out


def watch_once(instance: dg.DagsterInstance, rules: RulesFile, cursor: Cursor, *,
               now: datetime, active: set[str], own_assets: Iterable[str] = (),
               page: int = PAGE) -> list[Observation]:
    """Everything new since the cursor, as observations (advancing the cursor)."""
    sm = rules.section(SelfMonitoring)
    if cursor.since is None:
        cursor.since = (now - sm.lookback).timestamp()
    since = cursor.since
    out: list[Observation] = []
    if not sm.instance_watch:
        return out
    if sm.run_failures or sm.asset_check_failures:
        runs = finished_runs(instance, cursor, since, page)
        if sm.run_failures:
            out += run_observations(instance, runs, active, rules.defaults.dagster_url)
        if sm.asset_check_failures:
            out += check_observations(instance, runs, active, frozenset(own_assets))
    if sm.tick_failures:
        out += tick_observations(instance, cursor, since, active, page)
    return out


#: The setting that switches each state watch off, for the resolve that says so.
SWITCH = {CHECK_STALE: "self_monitoring.stale_checks (or freshness.enabled)",
          RUN_HUNG: "self_monitoring.hung_runs",
          LOCATION_FAILED: "self_monitoring.location_errors"}


def watch_states(instance: dg.DagsterInstance, rules: RulesFile, timeline: Timeline, *,
                 now: datetime, first_seen: dict[str, float], repository: Any,
                 location: str, alerts: list[Any] | None = None
                 ) -> tuple[list[Observation], list[str]]:
    """The state-based watches, looked at afresh each tick: stale scheduled checks,
    hung runs, code locations that do not load. Returns the observations and what
    could not be looked at (the webserver unreachable, say) for the tick's log. A watch
    switched off resolves the alerts it had open (nothing would resolve them else).
    ``alerts``: the open alerts, when the caller has read them already (one read a tick)."""
    sm = rules.section(SelfMonitoring)
    out: list[Observation] = []
    problems: list[str] = []
    dagster_url = rules.defaults.dagster_url
    opened = [a for a in (alerts if alerts is not None else timeline.alerts.list())
              if a.rule in (CHECK_STALE, RUN_HUNG, LOCATION_FAILED)]
    on = {CHECK_STALE: sm.instance_watch and sm.stale_checks and rules.freshness.enabled,
          RUN_HUNG: sm.instance_watch and sm.hung_runs,
          LOCATION_FAILED: sm.instance_watch and sm.location_errors}
    out += [Observation(a.rule, Status.OK, dict(a.labels), 0.0,
                        summary=f"No longer watched: {SWITCH[a.rule]} is off")
            for a in opened if not on[a.rule]]
    # The check assets and their schedules, read once for both watches that need them.
    expectations = own_expectations(repository) if on[CHECK_STALE] or on[RUN_HUNG] else []
    if on[CHECK_STALE]:
        out += stale_observations(
            instance, repository, [dict(a.labels) for a in opened if a.rule == CHECK_STALE],
            now=now, first_seen=first_seen, location=location, dagster_url=dagster_url,
            expectations=expectations)
    if on[RUN_HUNG]:
        hung: dict[str, Mapping[str, str]] = {a.fingerprint: dict(a.labels) for a in opened
                                              if a.rule == RUN_HUNG}
        out += hung_observations(instance, sm, hung, now=now, dagster_url=dagster_url,
                                 families=job_families(repository, expectations))
    if on[LOCATION_FAILED]:
        failed = [a for a in opened if a.rule == LOCATION_FAILED]
        url = sm.graphql_url or f"{dagster_url.rstrip('/')}/graphql"
        try:
            statuses = location_statuses(url, sm.graphql_timeout.total_seconds())
        except LocationQueryError as exc:  # nothing raised or resolved on a blind tick
            problems.append(f"code locations not checked: {exc}")
        else:
            out += location_observations(statuses, {a.fingerprint for a in failed},
                                         dagster_url=dagster_url,
                                         open_locations=open_location_names(failed))
    return out, problems


def build_instance_watch_sensor(own_assets: Iterable[str] | None = None,
                                interval_seconds: int = 30) -> dg.SensorDefinition:
    """``own_assets``: asset keys whose checks this code location alerts on already (by
    default, read from the code location the sensor runs in)."""
    given = frozenset(own_assets) if own_assets is not None else None

    @dg.sensor(
        name=SENSOR_NAME,
        job_name=DELIVERY_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts on failed runs, failed asset checks and failed sensor/schedule "
                    "ticks, hung runs and code locations that fail to load in this Dagster "
                    "instance, and on this location's scheduled checks that stopped "
                    "running.",
    )
    def instance_watch_sensor(context: dg.SensorEvaluationContext,
                              alert_jobs: AlertJobsResource) -> dg.SensorResult:
        rules = alert_jobs.load_rules()
        timeline = alert_jobs.timeline()
        now = utcnow()
        cursor = Cursor(context.cursor)
        if cursor.error:
            context.log.warning(cursor.error)
        alerts = timeline.alerts.list()  # read once: the event and the state watches share it
        active = {a.fingerprint for a in alerts
                  if a.rule in (RUN_FAILED, ASSET_CHECK_FAILED, TICK_FAILED)}
        own = given if given is not None else location_asset_keys(context)
        observations = watch_once(context.instance, rules, cursor, now=now, active=active,
                                  own_assets=own)
        origin = context.code_location_origin
        states, problems = watch_states(
            context.instance, rules, timeline, now=now, first_seen=cursor.unseen,
            repository=context.repository_def,
            location=origin.location_name if origin is not None else "", alerts=alerts)
        observations += states
        for problem in problems:
            context.log.warning(problem)
        flushed: list[int] = []
        outcomes = report(rules, timeline, observations, now=now, outbox_ids=flushed)
        for outcome in outcomes:
            context.log.info(outcome.result.decision.describe())
        raised = tick_outbox_ids(timeline, rules, outcomes, flushed, now=now)
        runs = [delivery_request(f"instance-watch-{now.strftime('%Y-%m-%dT%H:%M:%S.%f')}",
                                 raised, SENSOR_NAME)] if raised else []
        return dg.SensorResult(run_requests=runs, cursor=cursor.dump(),
                               skip_reason=None if runs else "; ".join(
                                   [f"{len(observations)} instance observation(s)", *problems]))

    return instance_watch_sensor


def location_asset_keys(context: dg.SensorEvaluationContext) -> frozenset[str]:
    """The asset keys of the code location this sensor runs in (its external sources too)."""
    repository = context.repository_def
    if repository is None:
        return frozenset()
    return frozenset(key.to_user_string() for key in repository.assets_defs_by_key)


def own_asset_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> list[str]:
    """The asset keys this code location defines (specs of external sources included)."""
    return [key.to_user_string() for a in assets
            for key in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])]


__all__ = ["SENSOR_NAME", "Cursor", "build_instance_watch_sensor", "location_asset_keys",
           "own_asset_keys", "watch_once"]
