"""Heartbeat schedules and states (Healthchecks' model), as pure functions of time.

A check expects pings. ``simple``: one every ``period``; ``cron``: one after each fire
time of a cron expression in a timezone. The *grace start* is when the next ping is
due; ``grace`` later the check is *down*. A ``/start`` opens a run that must finish
within ``max_duration`` (or ``grace``). Three problems can alert, each its own alert
instance so each resolves on its own terms:

* ``missing``  — no ping by the deadline; resolved by the next ping;
* ``failed``   — the job reported failure (``/fail`` or a nonzero exit code); resolved
  by the next success;
* ``duration`` — started but never finished, or finished later than ``max_duration``;
  resolved by the next run that finishes in time.

Everything takes ``now`` as a parameter (no clock here), so deadlines, cron and DST are
tested with plain datetimes. :func:`evaluate` also returns ``alert_after``: the next
moment the verdict can change by time alone, which the store indexes so the sensor
reads only overdue rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from alert_jobs.core.cron import cron_iter, is_valid_cron
from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import Observation, Status

MAX_RUN = timedelta(hours=72)  # a start older than this never pairs with a finish
PROBLEMS = ("missing", "failed", "duration")


class Signal(StrEnum):
    SUCCESS = "success"
    FAIL = "fail"
    START = "start"


class HeartbeatStatus(StrEnum):
    """What a check looks like now. ``late`` (past due, within grace) and ``started``
    (a run is open) are derived; the others are also stored."""

    NEW = "new"
    UP = "up"
    LATE = "late"
    DOWN = "down"
    PAUSED = "paused"
    STARTED = "started"


class ScheduleError(ValueError):
    """A schedule that cannot produce a next deadline (bad cron, unknown timezone)."""


@dataclass(frozen=True)
class Schedule:
    kind: str = "simple"  # "simple" | "cron"
    period: timedelta | None = timedelta(days=1)
    cron: str | None = None
    timezone: str = "UTC"
    grace: timedelta = timedelta(hours=1)
    max_duration: timedelta | None = None

    def __post_init__(self) -> None:
        if self.kind == "cron":
            if not self.cron or not is_valid_cron(self.cron):
                raise ScheduleError(f"bad cron expression {self.cron!r}")
            try:
                ZoneInfo(self.timezone)
            except Exception:
                raise ScheduleError(f"unknown timezone {self.timezone!r}") from None
        elif self.kind == "simple":
            if self.period is None or self.period <= timedelta(0):
                raise ScheduleError("a simple heartbeat needs a positive period")
        else:
            raise ScheduleError(f"unknown heartbeat kind {self.kind!r} (simple or cron)")

    def grace_start(self, last_ping: datetime) -> datetime:
        """When the ping after ``last_ping`` is due (the check turns *late* after it)."""
        if self.kind == "simple":
            assert self.period is not None
            return last_ping + self.period
        assert self.cron is not None
        return next_cron_fire(self.cron, self.timezone, last_ping)

    def run_limit(self) -> timedelta:
        """How long a started run may take before it is "started but never finished"."""
        return self.max_duration if self.max_duration is not None else self.grace

    def describe(self) -> str:
        grace = format_duration(self.grace)
        if self.kind == "simple":
            assert self.period is not None
            return f"a ping every {format_duration(self.period)} (grace {grace})"
        return f"a ping after each '{self.cron}' ({self.timezone}) (grace {grace})"


def next_cron_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire time of ``expr`` in ``tz`` strictly after ``after`` (UTC, aware).

    Cron runs on local wall-clock time, so it is iterated on naive local times and each
    match is placed on the real time line afterwards. Across DST this never expects a
    ping too early: a time that does not exist (spring forward, 02:30 in Berlin) counts
    as its shifted instant after the gap (03:30 local), and a time that exists twice
    (fall back) counts once, at its later occurrence; a ping in the first pass of the
    repeated hour is already that day's run.
    """
    zone = ZoneInfo(tz)
    if after.tzinfo is None:
        raise ValueError("pass an aware datetime")
    local = after.astimezone(zone).replace(tzinfo=None)
    it = cron_iter(expr, local)
    for _ in range(10_000):
        candidate = it.get_next(datetime)
        instant = _to_instant(candidate, zone)
        if instant > after:
            return instant
    raise ScheduleError(f"cron {expr!r} has no fire time after {after.isoformat()}")


def _to_instant(naive: datetime, zone: ZoneInfo) -> datetime:
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != naive:
        # In the gap: fold=0 reads it with the offset before the change, i.e. as many
        # minutes after the jump as it is after the gap's start.
        return first
    return max(first, second)  # ambiguous: the later pass; otherwise both are equal


@dataclass(frozen=True)
class HeartbeatState:
    """One check's stored state (a row of ``alert_heartbeats``), as plain values."""

    slug: str
    schedule: Schedule
    status: HeartbeatStatus = HeartbeatStatus.NEW  # stored: new | up | down | paused
    last_ping: datetime | None = None
    last_signal: Signal | None = None
    last_exit_code: int | None = None
    last_start: datetime | None = None
    last_start_rid: str | None = None
    last_duration: timedelta | None = None
    manual_resume: bool = False
    open_problems: frozenset[str] = frozenset()

    def evolve(self, **changes: Any) -> HeartbeatState:
        return replace(self, **changes)


@dataclass(frozen=True)
class PingOutcome:
    state: HeartbeatState
    kind: str  # what the ping log records: success | fail | start | ignored
    duration: timedelta | None = None


def apply_ping(state: HeartbeatState, signal: Signal, now: datetime, *, rid: str | None = None,
               exit_code: int | None = None) -> PingOutcome:
    """Fold one ping into the state (Healthchecks' ``Check.ping``)."""
    if state.status == HeartbeatStatus.PAUSED and state.manual_resume:
        return PingOutcome(state, "ignored")
    status = HeartbeatStatus.UP if state.status == HeartbeatStatus.PAUSED else state.status
    if signal == Signal.START:
        return PingOutcome(state.evolve(status=status, last_start=now, last_start_rid=rid),
                           "start")
    duration = None
    last_start, last_rid = state.last_start, state.last_start_rid
    if last_start is not None and (rid is None or rid == last_rid):
        if timedelta(0) <= now - last_start <= MAX_RUN:
            duration = now - last_start
        last_start, last_rid = None, None  # this finish closes the open run
    if last_start is not None and now - last_start > MAX_RUN:
        last_start, last_rid = None, None
    new_status = HeartbeatStatus.DOWN if signal == Signal.FAIL else HeartbeatStatus.UP
    # An unpaired finish has no known duration: it counts as a normal run.
    new = state.evolve(
        status=new_status, last_ping=now, last_signal=signal, last_exit_code=exit_code,
        last_start=last_start, last_start_rid=last_rid, last_duration=duration)
    return PingOutcome(new, str(signal), duration)


def pause(state: HeartbeatState) -> HeartbeatState:
    """Paused checks never alert; their open problems resolve at the next evaluation."""
    return state.evolve(status=HeartbeatStatus.PAUSED, last_start=None, last_start_rid=None)


def resume(state: HeartbeatState) -> HeartbeatState:
    """Back to *new*: the schedule restarts with the next ping (nothing is overdue yet)."""
    return state.evolve(status=HeartbeatStatus.NEW, last_ping=None, last_signal=None,
                        last_duration=None)


@dataclass(frozen=True)
class Evaluation:
    status: HeartbeatStatus
    problems: dict[str, bool]  # problem → is it a problem now
    alert_after: datetime | None  # next time the verdict can change by time alone
    grace_start: datetime | None = None
    deadline: datetime | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def open_problems(self) -> frozenset[str]:
        return frozenset(p for p, bad in self.problems.items() if bad)

    def changes(self, state: HeartbeatState) -> bool:
        """True when the engine must hear about it (a problem opened or closed)."""
        return self.open_problems != state.open_problems


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def evaluate(state: HeartbeatState, now: datetime) -> Evaluation:
    """The check's status and problems at ``now`` (Healthchecks' ``get_status``)."""
    sched = state.schedule
    if state.status == HeartbeatStatus.PAUSED:
        return Evaluation(HeartbeatStatus.PAUSED, dict.fromkeys(PROBLEMS, False), None)
    problems = dict.fromkeys(PROBLEMS, False)
    reasons: dict[str, str] = {}
    future: list[datetime] = []
    grace_start = deadline = None
    if state.last_ping is not None:
        grace_start = sched.grace_start(state.last_ping)
        deadline = grace_start + sched.grace
        if now >= deadline:
            problems["missing"] = True
            reasons["missing"] = (f"no ping since {_fmt(state.last_ping)}; the next was due "
                                  f"by {_fmt(grace_start)}, grace ended {_fmt(deadline)}")
        else:
            future.append(deadline)
    if state.last_signal == Signal.FAIL:
        problems["failed"] = True
        code = f" (exit code {state.last_exit_code})" if state.last_exit_code else ""
        when = _fmt(state.last_ping) if state.last_ping else "?"
        reasons["failed"] = f"the job reported failure{code} at {when}"
    if state.last_start is not None:
        run_deadline = state.last_start + sched.run_limit()
        if now >= run_deadline:
            problems["duration"] = True
            reasons["duration"] = (f"started {_fmt(state.last_start)} and not finished after "
                                   f"{format_duration(sched.run_limit())}")
        else:
            future.append(run_deadline)
    elif (sched.max_duration is not None and state.last_duration is not None
          and state.last_duration > sched.max_duration):
        problems["duration"] = True
        reasons["duration"] = (f"the last run took {format_duration(state.last_duration)}, "
                               f"longer than {format_duration(sched.max_duration)}")
    if problems["missing"] or problems["failed"] or (
            problems["duration"] and state.last_start is not None):
        status = HeartbeatStatus.DOWN
    elif state.last_start is not None:
        status = HeartbeatStatus.STARTED
    elif state.last_ping is None:
        status = HeartbeatStatus.NEW
    elif grace_start is not None and now >= grace_start:
        status = HeartbeatStatus.LATE
    else:
        status = HeartbeatStatus.UP
    return Evaluation(status, problems, min(future) if future else None, grace_start, deadline,
                      reasons)


def observations(state: HeartbeatState, ev: Evaluation, *, rule: str, labels: dict[str, str],
                 now: datetime) -> list[Observation]:
    """Firing observations for open problems; ok ones for problems that just closed.

    Problems that were never open send nothing, so 100,000 healthy checks cost the
    engine nothing.
    """
    out = []
    sched = state.schedule
    for problem in PROBLEMS:
        bad = ev.problems[problem]
        if not bad and problem not in state.open_problems:
            continue
        obs_labels = {**labels, "heartbeat": state.slug, "problem": problem}
        since = (now - state.last_ping).total_seconds() if state.last_ping else None
        if bad:
            summary = f"Heartbeat {state.slug} {_TITLE[problem]}: {ev.reasons[problem]}"
        elif ev.status == HeartbeatStatus.PAUSED:
            summary = f"Heartbeat {state.slug} is paused; its alerts are resolved"
        else:
            summary = f"Heartbeat {state.slug} is healthy again ({ev.status})"
        expected = {"missing": sched.describe(),
                    "failed": "every run to report success",
                    "duration": f"each run to finish within "
                                f"{format_duration(sched.run_limit())}"}[problem]
        seen = (f"last ping {_fmt(state.last_ping)}" if state.last_ping else "no ping yet")
        if problem == "duration" and state.last_duration is not None:
            seen += f", last run took {format_duration(state.last_duration)}"
        value = since if problem == "missing" else (
            state.last_duration.total_seconds() if problem == "duration" and state.last_duration
            else float(bad))
        out.append(Observation(
            rule, Status.ALERT if bad else Status.OK, obs_labels, value, summary=summary,
            expected=expected, seen=seen, window=sched.describe(),
            details={"status": str(ev.status), "problem": problem}))
    return out


_TITLE = {"missing": "is down", "failed": "reported a failure",
          "duration": "ran longer than expected"}
WHY = {
    "missing": "A job that stops running sends no error: this silence is the only sign.",
    "failed": "The job ran and said it failed; what it produces is missing or stale.",
    "duration": "A run that hangs or slows down delays everything that depends on it.",
}
