"""Checks that stopped running: a scheduled check asset not evaluated within its window.

Every scheduled check asset carries its expectation (``alert_jobs.runtime.
freshness_policy``): Dagster's own ``FreshnessPolicy.time_window`` — the UI shows the
asset's freshness and Dagster's freshness daemon judges it — and definition metadata
naming the schedule and the window. Open-source Dagster tells no one when a freshness
policy fails, so the instance watch does, one alert per schedule
(``dagster_check_stale`` {schedule, location}) naming its stale rules, when they were
last evaluated and the likely cause.

Dagster's verdict is used where it fits and the watch's own where it does not:

* the window is the same (one definition, :func:`~alert_jobs.config.freshness.
  FreshnessConfig.window`); a rule counts as stale when its last materialization is
  older than the window **or** Dagster's freshness state says FAIL after that
  materialization;
* the watch does not *wait* for Dagster's verdict: the freshness daemon records state
  changes only, so if it is switched off (``freshness: {enabled: false}`` in
  ``dagster.yaml``) or dies, its last PASS stands forever; and a check that was never
  materialized is UNKNOWN to it, while here it is stale once the watch has seen it for
  longer than its window (a schedule that never ran since the deploy);
* the cause is the watch's own (:func:`likely_cause`): Dagster's state has none.

A code location that does not load is its own alert (``dagster_location_failed``). The
watch runs in alert-jobs' code location, so when *that* location does not load nothing
here runs: the dead man's switch (``self_monitoring.deadman_url``) is what tells you.
"""

# No `from __future__ import annotations` here: Dagster reads annotations in this package.

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from alert_jobs.core.cron import longest_quiet
from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.config import CHECK_STALE
from alert_jobs.runtime.freshness_policy import SCHEDULE_KEY, WINDOW_KEY

#: The spec tag families put on their check assets.
FAMILY_TAG = "alert_jobs/family"

#: The scheduler daemon's heartbeat older than this: the daemon is not running.
DAEMON_SILENT = timedelta(minutes=2)
#: A schedule whose last tick is older than its interval plus this: the daemon is behind.
TICK_GRACE = timedelta(minutes=2)
RULES_NAMED = 10  # stale rules named in a summary; the details list up to 200


@dataclass(frozen=True)
class Expectation:
    """One scheduled check asset of this code location and its window."""

    asset: dg.AssetKey
    schedule: str
    window: timedelta
    family: str = ""

    @property
    def rule(self) -> str:
        return self.asset.to_user_string()


def own_expectations(repository: Any) -> list[Expectation]:
    """The scheduled check assets of ``repository`` (a ``RepositoryDefinition``), read
    from their definition metadata. Each multi-asset is read once (a batch of 1,000
    rules is one definition with 1,000 specs)."""
    if repository is None:
        return []
    unique = {id(a): a for a in repository.assets_defs_by_key.values()
              if isinstance(a, dg.AssetsDefinition)}
    out = []
    for assets_def in unique.values():
        for spec in assets_def.specs:
            schedule = spec.metadata.get(SCHEDULE_KEY)
            seconds = spec.metadata.get(WINDOW_KEY)
            if isinstance(schedule, str) and isinstance(seconds, int | float):
                family = spec.tags.get(FAMILY_TAG) or spec.key.path[0]
                out.append(Expectation(spec.key, schedule, timedelta(seconds=seconds),
                                       family))
    return out


def job_families(repository: Any, expectations: Iterable[Expectation]) -> dict[str, str]:
    """Job name → family of the scheduled check jobs (a hung run's limit may be set
    per family: ``self_monitoring.hung_after``)."""
    by_schedule = {e.schedule: e.family for e in expectations}
    out = {}
    for schedule in getattr(repository, "schedule_defs", []):
        family = by_schedule.get(schedule.name)
        if family:
            out[schedule.job_name] = family
    return out


# ----- facts and verdicts (pure) ------------------------------------------------------


@dataclass
class ScheduleFacts:
    """What the instance says about one schedule, for :func:`likely_cause`."""

    name: str
    cron: str = ""
    timezone: str = "UTC"
    location: str = ""
    stopped: bool = False
    last_tick_at: float | None = None
    last_tick_status: str | None = None  # SUCCESS, SKIPPED, FAILURE, STARTED
    last_tick_note: str = ""  # a skip reason or an error's first line
    last_run_id: str | None = None
    last_run_status: str | None = None  # QUEUED, STARTED, FAILURE, …
    scheduler_seen_at: float | None = None  # the daemon scheduler's last heartbeat
    stale: list[tuple[str, float | None]] = field(default_factory=list)  # rule, last at

    def interval(self) -> timedelta:
        try:
            return longest_quiet(self.cron, self.timezone) if self.cron else timedelta(0)
        except (ValueError, KeyError):
            return timedelta(0)


def is_stale(window: timedelta, last_at: float | None, dagster_state: str | None,
             dagster_at: float | None, *, now: float, watching_since: float) -> bool:
    """Stale: last evaluated longer ago than ``window``, or never evaluated while the
    watch has seen the check for longer than it (``watching_since``: when it first saw
    it), or Dagster's freshness daemon said FAIL after the last evaluation."""
    if dagster_state == "FAIL" and dagster_at is not None and (
            last_at is None or dagster_at >= last_at):
        return True
    since = last_at if last_at is not None else watching_since
    return now - since > window.total_seconds()


def _ago(seconds: float) -> str:
    return format_duration(timedelta(seconds=max(0, round(seconds))))


def likely_cause(facts: ScheduleFacts, *, now: float, dagster_url: str = "") -> str:
    """The first explanation that fits, in the order an on-call engineer would check."""
    name = facts.name
    if facts.stopped:
        return (f"the schedule {name} is stopped: start it in the Dagster UI (Automation) "
                f"or with `dagster schedule start {name}`")
    if facts.scheduler_seen_at is None:
        return "the Dagster daemon's scheduler has never reported: is dagster-daemon running?"
    silent = now - facts.scheduler_seen_at
    if silent > DAEMON_SILENT.total_seconds():
        return (f"the Dagster daemon is not running: its scheduler last reported "
                f"{_ago(silent)} ago")
    late = (facts.interval() + TICK_GRACE).total_seconds()
    if facts.last_tick_at is None:
        return (f"the daemon has not ticked the schedule {name} yet (is its code location "
                "loading in the daemon?)")
    if now - facts.last_tick_at > late:
        return (f"the daemon is behind: the schedule {name} last ticked "
                f"{_ago(now - facts.last_tick_at)} ago")
    if facts.last_tick_status == "FAILURE":
        return f"the schedule's ticks fail: {facts.last_tick_note or 'see its tick history'}"
    if facts.last_tick_status == "SKIPPED":
        return f"the schedule's ticks are skipped: {facts.last_tick_note or 'no reason given'}"
    run = facts.last_run_id
    link = f" ({dagster_url.rstrip('/')}/runs/{run})" if run and dagster_url else ""
    if facts.last_run_status in ("FAILURE", "CANCELED"):
        return f"its last run {(run or '')[:8]} ended {facts.last_run_status}{link}"
    if facts.last_run_status in ("QUEUED", "NOT_STARTED"):
        return (f"its last run {(run or '')[:8]} waits in the run queue (the run "
                f"coordinator's limits?){link}")
    if facts.last_run_status in ("STARTING", "STARTED"):
        return f"its last run {(run or '')[:8]} is still going{link}"
    return "the schedule ticks and its runs finish, but they did not evaluate these rules"


def stale_observation(facts: ScheduleFacts, window: timedelta, *, now: float,
                      dagster_url: str) -> Observation:
    """One alert for a schedule's stale rules: which, since when, and the likely cause."""
    rules = sorted(facts.stale, key=lambda r: (r[1] or 0, r[0]))
    named = ", ".join(r for r, _ in rules[:RULES_NAMED])
    more = f" and {len(rules) - RULES_NAMED} more" if len(rules) > RULES_NAMED else ""
    last = max((at for _, at in rules if at is not None), default=None)
    when = (f"last evaluated {datetime.fromtimestamp(last, UTC):%Y-%m-%d %H:%M} UTC "
            f"({_ago(now - last)} ago)" if last is not None else "never evaluated")
    every = f"{facts.cron} {facts.timezone}" if facts.cron else "its schedule"
    cause = likely_cause(facts, now=now, dagster_url=dagster_url)
    summary = (f"{len(rules)} check(s) of schedule {facts.name} not evaluated within "
               f"{format_duration(window)} ({every}): {named}{more}; {when}. "
               f"Likely cause: {cause}")
    return Observation(
        CHECK_STALE, Status.ALERT, {"schedule": facts.name, "location": facts.location},
        float(len(rules)), summary=summary,
        expected=f"every check evaluated within {format_duration(window)}",
        seen=when, details={"rules": [r for r, _ in rules[:200]], "cause": cause,
                            "last_run_id": facts.last_run_id or ""})


# ----- reading the instance -----------------------------------------------------------


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def _first_line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0][:300] if stripped else ""


def schedule_facts(instance: dg.DagsterInstance, repository: Any, names: Iterable[str],
                   location: str) -> dict[str, ScheduleFacts]:
    """Facts of the named schedules of ``repository``: definition (cron, timezone),
    state, last tick and last run; the scheduler daemon's heartbeat."""
    wanted = set(names)
    facts: dict[str, ScheduleFacts] = {}
    for schedule in getattr(repository, "schedule_defs", []):
        if schedule.name in wanted:
            facts[schedule.name] = ScheduleFacts(
                schedule.name, str(schedule.cron_schedule),
                schedule.execution_timezone or "UTC", location)
    for name in wanted - set(facts):
        facts[name] = ScheduleFacts(name, location=location)
    beats = instance.get_daemon_heartbeats()
    beat = beats.get("SCHEDULER")
    repo_name = getattr(repository, "name", None)
    for state in instance.all_instigator_state():
        if _status(state.instigator_type) != "SCHEDULE" or state.instigator_name not in facts:
            continue
        if repo_name and state.origin.repository_origin.repository_name != repo_name:
            continue
        one = facts[state.instigator_name]
        one.stopped = _status(state.status) == "STOPPED"
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        if ticks:
            tick = ticks[0]
            one.last_tick_at = tick.timestamp
            one.last_tick_status = _status(tick.status)
            one.last_tick_note = _first_line(tick.skip_reason) if tick.skip_reason else \
                _first_line(tick.error.message if tick.error else "")
    for one in facts.values():
        one.scheduler_seen_at = beat.timestamp if beat is not None else None
        records = instance.get_run_records(
            dg.RunsFilter(tags={"dagster/schedule_name": one.name}), limit=1)
        if records:
            one.last_run_id = records[0].dagster_run.run_id
            one.last_run_status = _status(records[0].dagster_run.status)
    return facts


def stale_observations(instance: dg.DagsterInstance, repository: Any,
                       open_alerts: Iterable[Mapping[str, str]], *, now: datetime,
                       first_seen: dict[str, float], location: str, dagster_url: str,
                       expectations: list[Expectation] | None = None) -> list[Observation]:
    """An alert per schedule of this location with stale checks (every tick: the
    summary's "ago" keeps current); a resolve per open alert (``open_alerts``: their
    labels) whose schedule has none stale now, or no longer exists.

    ``first_seen``: when the watch first saw each check that was never evaluated (kept
    in the sensor's cursor, updated here: new ones added, evaluated or removed ones
    dropped) — a rule deployed a minute ago is not stale for never having run."""
    expected = expectations if expectations is not None else own_expectations(repository)
    keys = [e.asset for e in expected]
    at = now.timestamp()
    materialized = instance.get_latest_materialization_events(keys) if keys else {}
    states = instance.get_freshness_state_records(keys) if keys else {}
    stale: dict[str, list[tuple[str, float | None]]] = {}
    windows: dict[str, timedelta] = {}
    for e in expected:
        entry = materialized.get(e.asset)
        last_at = entry.timestamp if entry is not None else None
        record = states.get(e.asset)
        state = _status(record.freshness_state) if record is not None else None
        state_at = record.updated_at.timestamp() if record is not None else None
        windows[e.schedule] = max(windows.get(e.schedule, e.window), e.window)
        seen = first_seen.setdefault(e.rule, at) if last_at is None else at
        if is_stale(e.window, last_at, state, state_at, now=at, watching_since=seen):
            stale.setdefault(e.schedule, []).append((e.rule, last_at))
    never = {e.rule for e in expected if materialized.get(e.asset) is None}
    for rule in list(first_seen):
        if rule not in never:
            del first_seen[rule]
    out: list[Observation] = []
    facts = schedule_facts(instance, repository, stale, location) if stale else {}
    for name, rules in stale.items():
        one = facts[name]
        one.stale = rules
        out.append(stale_observation(one, windows[name], now=at, dagster_url=dagster_url))
    for labels in open_alerts:
        name = labels.get("schedule", "")
        if labels.get("location", "") != location or name in stale:
            continue
        why = "are evaluated again" if name in windows else \
            "are gone: the schedule is no longer defined"
        out.append(Observation(CHECK_STALE, Status.OK, dict(labels), 0.0,
                               summary=f"The checks of schedule {name} {why}"))
    return out


__all__ = ["Expectation", "ScheduleFacts", "is_stale", "job_families", "likely_cause",
           "own_expectations", "schedule_facts", "stale_observation", "stale_observations"]
