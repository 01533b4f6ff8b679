"""Redis quota and health: pure computations on samples (no Redis, no database).

Counting follows Prometheus' ``rate()``: a counter that goes down, or a server whose
``run_id`` changed or whose uptime went back, was reset, and the new value is growth
from zero. Usage in a window is the sum of such corrected increments since the
window's start, so a restart or ``CONFIG RESETSTAT`` mid-day neither loses what was
already counted nor goes negative.
"""

from __future__ import annotations

import itertools
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from alert_jobs.core.baseline import Assessment
from alert_jobs.core.baseline import details as baseline_details
from alert_jobs.core.baseline import summary as baseline_summary
from alert_jobs.core.durations import format_duration
from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Observation, Severity, Status

FIRST_STEPS = (
    "First steps: look for tight polling loops (sleep(0.01) is 100 polls/s; grep for "
    "'asyncio.sleep(0'); check cache usage (gets without TTLs, caching everything); look "
    "for duplicate background workers (ps aux | grep -E 'worker|scheduler')."
)
WHY_QUOTA = ("When the quota runs out the provider rate-limits or suspends the database "
             "(ERR max requests limit exceeded) and every cache call fails.")

WindowKind = Literal["day", "month"]


# ----- windows ------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaWindow:
    """The current calendar day or month in a timezone, as UTC instants."""

    kind: WindowKind
    timezone: str
    start: datetime
    end: datetime

    def label(self) -> str:
        return ("today" if self.kind == "day" else "this month") + f" ({self.timezone})"

    def local(self, when: datetime) -> datetime:
        return when.astimezone(zoneinfo.ZoneInfo(self.timezone))


def window_at(now: datetime, kind: WindowKind, timezone: str) -> QuotaWindow:
    """The day or month containing ``now`` in ``timezone``; DST-correct (a day may be 23 h)."""
    tz = zoneinfo.ZoneInfo(timezone)
    local = now.astimezone(tz)
    if kind == "day":
        start_local = datetime(local.year, local.month, local.day, tzinfo=tz)
        nxt = start_local.date() + timedelta(days=1)
        end_local = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    else:
        start_local = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end_local = datetime(year, month, 1, tzinfo=tz)
    return QuotaWindow(kind, timezone, start_local.astimezone(UTC), end_local.astimezone(UTC))


# ----- reset-aware counting -------------------------------------------------------------


@dataclass(frozen=True)
class CounterSample:
    """One reading of a cumulative counter and the server identity that owns it."""

    at: datetime
    total: float
    server_id: str = ""
    uptime_seconds: float | None = None


def corrected_increment(prev: CounterSample, cur: CounterSample) -> tuple[float, bool]:
    """Growth from ``prev`` to ``cur`` and whether a reset happened in between."""
    reset = (
        cur.total < prev.total
        or (bool(prev.server_id) and cur.server_id != prev.server_id)
        or (prev.uptime_seconds is not None and cur.uptime_seconds is not None
            and cur.uptime_seconds < prev.uptime_seconds)
    )
    return (cur.total if reset else cur.total - prev.total), reset


def restart_time(prev: CounterSample, cur: CounterSample) -> datetime | None:
    """When the server behind ``cur`` started, if it restarted since ``prev``; else None.

    A changed ``run_id`` is the restart signal (Redis draws a new one at every start).
    Without run ids, an uptime shorter than the time since ``prev`` (or lower than
    ``prev``'s) is. The start is ``cur.at − uptime_in_seconds``: a duration read from
    the server, so clock skew between the server and this host does not matter, but
    Redis reports whole seconds, so the instant is known to about ±1 s. A counter that
    went down with neither signal is ``CONFIG RESETSTAT``, whose time INFO does not tell.
    """
    if cur.uptime_seconds is None:
        return None
    gap = (cur.at - prev.at).total_seconds()
    if prev.server_id and cur.server_id:
        restarted = cur.server_id != prev.server_id
    else:
        restarted = cur.uptime_seconds < gap or (
            prev.uptime_seconds is not None and cur.uptime_seconds < prev.uptime_seconds)
    if not restarted:
        return None
    started = cur.at - timedelta(seconds=cur.uptime_seconds)
    return max(prev.at, min(cur.at, started))


@dataclass(frozen=True)
class RestartEstimate:
    """Commands run between the last sample and a restart: unseen, so estimated.

    INFO after a restart counts from zero; what the old process did after the last
    sample died with it. The estimate assumes the rate measured over the samples before
    that sample (``rate``) held until the restart. ``commands`` is None when no rate
    was measured over long enough to assume anything (then usage is a lower bound).
    """

    restart_at: datetime
    since: datetime
    rate: RateMeasure | None
    commands: float | None

    @property
    def unseen(self) -> timedelta:
        return self.restart_at - self.since


def estimate_restart(history: Sequence[RatePoint], prev: CounterSample, restart_at: datetime,
                     *, rate_window: timedelta, min_span: timedelta) -> RestartEstimate:
    """Estimate the commands between ``prev`` and ``restart_at`` from the trailing rate.

    The rate must have been measured over at least ``min(min_span, unseen gap)``: a few
    seconds of samples say little about the next quarter hour, but enough about the
    next few seconds.
    """
    unseen = restart_at - prev.at
    measure = measure_rate(history, prev.at, rate_window)
    if unseen <= timedelta(0):
        return RestartEstimate(restart_at, prev.at, measure, 0.0)
    if measure is None or measure.span < min(min_span, unseen):
        return RestartEstimate(restart_at, prev.at, measure, None)
    return RestartEstimate(restart_at, prev.at, measure,
                           measure.rate * unseen.total_seconds())


@dataclass(frozen=True)
class WindowUsage:
    """Commands counted in one quota window, and the last sample counted.

    ``used`` includes estimates of what restarts hid (see :class:`RestartEstimate`).
    ``partial`` means ``used`` is a lower bound: counting began after the window started
    and the server was up before it, or a restart hid commands no rate could estimate.
    """

    window_start: datetime
    used: float
    partial: bool
    last: CounterSample
    resets: int = 0


def _older_reading(last: CounterSample, sample: CounterSample) -> bool:
    """Same server, less uptime: read before ``last`` though stamped after it (two runs
    overlapping). Counting it as a reset would add the whole lifetime counter."""
    return (bool(sample.server_id) and sample.server_id == last.server_id
            and sample.uptime_seconds is not None and last.uptime_seconds is not None
            and sample.uptime_seconds < last.uptime_seconds)


@dataclass(frozen=True)
class Step:
    """What folding one sample did: the new usage, the increment attributed to the
    sample (counted growth plus ``estimated``), and flags."""

    usage: WindowUsage
    increment: float
    reset: bool
    counted: bool
    estimate: RestartEstimate | None = None

    @property
    def estimated(self) -> float:
        return (self.estimate.commands or 0.0) if self.estimate is not None else 0.0


def advance(state: WindowUsage | None, sample: CounterSample, window: QuotaWindow, *,
            history: Sequence[RatePoint] = (), rate_window: timedelta = timedelta(hours=1),
            estimate_after: timedelta = timedelta(minutes=15)) -> Step:
    """Fold one new sample into the window's usage.

    A sample not newer than the last one counted (a slower concurrent run) changes
    nothing: counting it would look like a reset and count twice. ``history`` (the
    counted samples before this one) gives the trailing rate that estimates what a
    restart hid; ``estimate_after`` is how long that rate must have been measured.
    """
    # Arithmetic on aware datetimes that share a zone is wall-clock arithmetic in Python,
    # which is off by an hour across DST changes: compute in UTC.
    sample = replace(sample, at=sample.at.astimezone(UTC))
    if state is None:
        started_in_window = (sample.uptime_seconds is not None
                             and sample.at - timedelta(seconds=sample.uptime_seconds)
                             >= window.start)
        used = sample.total if started_in_window else 0.0
        return Step(WindowUsage(window.start, used, not started_in_window, sample), used,
                    False, True)
    if sample.at <= state.last.at or _older_reading(state.last, sample):
        return Step(state, 0.0, False, False)
    increment, reset = corrected_increment(state.last, sample)
    resets = state.resets + int(reset)
    estimate = None
    if reset:
        restarted = restart_time(state.last, sample)
        if restarted is not None:
            estimate = estimate_restart(history, state.last, restarted,
                                        rate_window=rate_window, min_span=estimate_after)
    unknown = estimate is not None and estimate.commands is None
    estimated = (estimate.commands or 0.0) if estimate is not None else 0.0
    if state.window_start == window.start:
        usage = replace(state, used=state.used + increment + estimated, last=sample,
                        resets=resets, partial=state.partial or unknown)
        return Step(usage, increment + estimated, reset, True, estimate)
    # Rollover: the increment spans the boundary; keep the share after the window start,
    # assuming a steady rate over the interval it accrued in (Prometheus extrapolates the
    # same way). After a restart the counted part accrued since the restart, and the
    # estimated part between the last sample and the restart.
    accrued_from = estimate.restart_at if estimate is not None else state.last.at
    span = (sample.at - accrued_from).total_seconds()
    inside = (sample.at - window.start).total_seconds()
    share = increment if span <= 0 or inside >= span else increment * inside / span
    if estimate is not None and estimate.commands and estimate.unseen.total_seconds() > 0:
        unseen_inside = (estimate.restart_at - max(estimate.since, window.start)).total_seconds()
        share += estimate.commands * max(0.0, unseen_inside) / estimate.unseen.total_seconds()
    gap_too_long = state.last.at < window.start - (window.end - window.start)
    unknown_inside = unknown and estimate is not None and estimate.restart_at > window.start
    return Step(WindowUsage(window.start, share, gap_too_long or unknown_inside, sample,
                            int(reset)),
                increment + estimated, reset, True, estimate)


@dataclass(frozen=True)
class RatePoint:
    """A counted sample's time and the commands attributed to the interval ending there
    (its corrected increment, plus any estimate of what a restart hid)."""

    at: datetime
    increment: float


@dataclass(frozen=True)
class RateMeasure:
    """A rate and how it is known: over which span of samples, from how many."""

    rate: float
    span: timedelta
    samples: int


def measure_rate(points: Sequence[RatePoint], end: datetime, span: timedelta, *,
                 since: datetime | None = None) -> RateMeasure | None:
    """Commands per second over the samples in ``[end - span, end]`` (and after ``since``).

    The earliest point only marks where counting starts; its increment belongs to the
    interval before it. ``None`` with fewer than two samples: one sample says nothing
    about a rate. How long the span is matters as much as the number, so it is returned
    with it; callers decide whether it is long enough to act on.
    """
    end = end.astimezone(UTC)  # real elapsed time, also across DST changes
    start = end - span
    if since is not None:
        start = max(start, since.astimezone(UTC))
    recent = [RatePoint(p.at.astimezone(UTC), p.increment) for p in points
              if start <= p.at.astimezone(UTC) <= end]
    if len(recent) < 2:
        return None
    seconds = (recent[-1].at - recent[0].at).total_seconds()
    if seconds <= 0:
        return None
    return RateMeasure(sum(p.increment for p in recent[1:]) / seconds,
                       recent[-1].at - recent[0].at, len(recent))


def samples_since(points: Sequence[RatePoint], since: datetime) -> int:
    return sum(1 for p in points if p.at.astimezone(UTC) >= since)


def project(used: float, rate: float | None, now: datetime, window: QuotaWindow) -> float | None:
    """used + rate × seconds left in the window (the guide's formula)."""
    if rate is None:
        return None
    return used + rate * max(0.0, (window.end - now).total_seconds())


# ----- judgements ---------------------------------------------------------------------


@dataclass(frozen=True)
class RestartNote:
    """A restart in the window whose unseen commands were estimated (for the message)."""

    restart_at: datetime
    estimated: float


@dataclass(frozen=True)
class QuotaReading:
    """What the quota judgement needs. ``rate`` is measured over the window's samples;
    ``projected`` is only set when that span reached ``project_after``."""

    target: str
    used: float
    limit: int
    window: QuotaWindow
    now: datetime
    rate: RateMeasure | None
    projected: float | None
    partial: bool = False
    project_after: timedelta = timedelta(minutes=15)
    samples: int = 1
    estimated: float = 0.0
    restarts: tuple[RestartNote, ...] = ()

    @property
    def rate_basis(self) -> str:
        """How the rate is known, in words: the message and metadata both say it."""
        if self.rate is None:
            n = self.samples
            return f"rate not yet known: {n} sample{'s' if n != 1 else ''} in this window"
        basis = f"{_fmt_rate(self.rate.rate)} ops/s over the last {fmt_span(self.rate.span)}"
        if self.rate.span < self.project_after:
            basis += (f", too short to project (project_after "
                      f"{fmt_span(self.project_after)})")
        return basis


def project_reading(target: str, used: float, limit: int, window: QuotaWindow, now: datetime,
                    rate: RateMeasure | None, *, project_after: timedelta, samples: int,
                    partial: bool = False, estimated: float = 0.0,
                    restarts: Sequence[RestartNote] = ()) -> QuotaReading:
    """A reading whose projection exists only once the rate was measured over at least
    ``project_after`` of samples: extrapolating a few seconds (or one sample divided by
    the time since midnight) to a whole day or month pages people for nothing."""
    projected = None
    if rate is not None and rate.span >= project_after:
        projected = project(used, rate.rate, now, window)
    return QuotaReading(target, used, limit, window, now, rate, projected, partial,
                        project_after, samples, estimated, tuple(restarts))


def fmt_span(delta: timedelta) -> str:
    """``3 s``, ``12 min``, ``1.5 h``, ``2 d``: how long a rate was measured over."""
    seconds = delta.total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def _clock(window: QuotaWindow, when: datetime) -> str:
    local = window.local(when)
    if window.kind == "day":
        return local.strftime("%H:%M")
    return local.strftime("%b %-d %H:%M")


def _end_clock(window: QuotaWindow) -> str:
    if window.kind == "day":
        return "24:00"
    return window.local(window.end).strftime("%b %-d 00:00")


def estimate_note(r: QuotaReading) -> str:
    """``includes ~30,005 commands estimated across a Redis restart at 14:05``."""
    if not r.restarts:
        return ""
    last = max(r.restarts, key=lambda n: n.restart_at)
    estimated = min(r.estimated, r.used)
    where = (f"a Redis restart at {_clock(r.window, last.restart_at)}" if len(r.restarts) == 1
             else f"{len(r.restarts)} Redis restarts, the last at "
                  f"{_clock(r.window, last.restart_at)}")
    return f"includes ~{fmt_number(round(estimated))} commands estimated across {where}"


def judge_quota(r: QuotaReading, *, warn_percent: float, critical_percent: float,
                labels: dict[str, str], page_on_projection: bool = False) -> Observation:
    """Warning at ``warn_percent`` of the limit, used or projected; critical at
    ``critical_percent`` used — or projected too, with ``page_on_projection``, for teams
    that want the page before the quota is gone.

    The sentence is the guide's, plus how the rate is known: "Expected under 7,000
    commands (70 % of 10,000/day) today (UTC); used 5,210 by 14:00 at 2.5 ops/s over the
    last 45 min, projected 12,400 by 24:00".
    """
    projected = r.projected
    used_percent = 100.0 * r.used / r.limit
    worst_percent = 100.0 * max(r.used, projected or 0.0) / r.limit
    paging_percent = worst_percent if page_on_projection else used_percent
    if paging_percent >= critical_percent:
        status, severity, threshold = Status.ALERT, Severity.CRITICAL, critical_percent
    elif worst_percent >= warn_percent:
        status, severity, threshold = Status.ALERT, Severity.WARNING, warn_percent
    else:
        status, severity, threshold = Status.OK, None, warn_percent
    per = "day" if r.window.kind == "day" else "month"
    expected = (f"under {fmt_number(round(r.limit * threshold / 100))} commands "
                f"({fmt_number(threshold)} % of {fmt_number(r.limit)}/{per})")
    seen = f"used {fmt_number(round(r.used))}"
    notes = [n for n in (estimate_note(r),) if n]
    if r.partial:
        notes.append("a lower bound: commands before the first sample, or before a restart "
                     "with no rate to estimate them, were not seen")
    if notes:
        seen += f" ({'; '.join(notes)})"
    seen += f" by {_clock(r.window, r.now)}"
    if r.rate is None:
        seen += f"; {r.rate_basis}, so no projection"
    else:
        seen += f" at {r.rate_basis}"
    if projected is not None:
        seen += f", projected {fmt_number(round(projected))} by {_end_clock(r.window)}"
    summary = f"Expected {expected} {r.window.label()}; {seen}"
    details = {"first_steps": FIRST_STEPS} if status == Status.ALERT else {}
    return Observation(r.target, status, {**labels, "check": "quota"}, float(r.used),
                       summary=summary, expected=expected, seen=seen, window=r.window.label(),
                       details=details, severity=severity)


def _fmt_rate(rate: float) -> str:
    return f"{rate:,.1f}" if rate >= 1 or rate == 0 else f"{rate:.2g}"


@dataclass(frozen=True)
class InfoDeltas:
    """What changed between two INFO samples of the same server (reset-aware)."""

    hits: float
    misses: float
    evicted: float
    rejected: float
    interval: timedelta


def _obs(target: str, check: str, labels: dict[str, str], ok: bool, value: float | None,
         summary: str, expected: str, severity: Severity) -> Observation:
    return Observation(target, Status.OK if ok else Status.ALERT, {**labels, "check": check},
                       value, summary=summary, expected=expected,
                       severity=None if ok else severity)


# ----- hit-rate bands and ops/s levels (the Redis guide's "Understanding the Metrics") ----


@dataclass(frozen=True)
class Band:
    """A hit-rate band: below ``below`` percent is this band, alerting at ``severity``."""

    below: float
    severity: Severity


@dataclass(frozen=True)
class HitRateSpec:
    """good ≥ ``good_at``; bad < ``bad.below``; terrible < ``terrible.below`` (a band that
    is ``None`` is off); judged over ``window`` once it holds ``min_reads`` reads."""

    good_at: float = 80.0
    bad: Band | None = Band(50.0, Severity.WARNING)
    terrible: Band | None = Band(20.0, Severity.CRITICAL)
    window: timedelta = timedelta(minutes=15)
    min_reads: int = 100


@dataclass(frozen=True)
class Level:
    """An ops/s level: at or above ``above`` for ``for_`` alerts at ``severity``."""

    above: float
    for_: timedelta
    severity: Severity


@dataclass(frozen=True)
class OpsSpec:
    high: Level | None = Level(100.0, timedelta(minutes=10), Severity.WARNING)
    dangerous: Level | None = Level(1000.0, timedelta(minutes=10), Severity.CRITICAL)


@dataclass(frozen=True)
class HistorySample:
    """One counted sample of a target, as the store keeps it: ``increment`` is the
    commands attributed to the interval ending here (corrected across resets); the
    keyspace counters are ``None`` where the source has none (Upstash)."""

    at: datetime
    increment: float
    server_id: str = ""
    hits: float | None = None
    misses: float | None = None


@dataclass(frozen=True)
class HitWindow:
    """Reads in a span of samples: hits and misses (reset-aware), and over how long."""

    hits: float
    misses: float
    span: timedelta

    @property
    def reads(self) -> float:
        return self.hits + self.misses

    @property
    def percent(self) -> float | None:
        return 100.0 * self.hits / self.reads if self.reads > 0 else None


def _counter_delta(prev: HistorySample, cur: HistorySample, cur_value: float,
                   prev_value: float) -> float:
    if cur.server_id != prev.server_id or cur_value < prev_value:
        return cur_value  # a restart or CONFIG RESETSTAT: the new value is growth from zero
    return cur_value - prev_value


def hit_window(samples: Sequence[HistorySample], now: datetime,
               window: timedelta) -> HitWindow | None:
    """Hits and misses over the samples of the last ``window`` (at least the last
    interval: with checks further apart than ``window``, the interval since the
    previous check). ``None`` with fewer than two samples that carry the counters."""
    pts = sorted((s for s in samples if s.hits is not None and s.misses is not None
                  and s.at <= now), key=lambda s: s.at)
    if len(pts) < 2:
        return None
    inside = [i for i, s in enumerate(pts) if s.at >= now - window]
    first = min(inside[0] if inside else len(pts) - 1, len(pts) - 2)
    hits = misses = 0.0
    for prev, cur in itertools.pairwise(pts[first:]):
        assert prev.hits is not None and prev.misses is not None
        assert cur.hits is not None and cur.misses is not None
        hits += _counter_delta(prev, cur, cur.hits, prev.hits)
        misses += _counter_delta(prev, cur, cur.misses, prev.misses)
    return HitWindow(hits, misses, pts[-1].at - pts[first].at)


def fmt_percent(value: float) -> str:
    """``35 %``, ``49.5 %``: whole numbers stay whole, others keep one decimal."""
    return f"{fmt_number(round(value, 1))} %"


def fmt_over(span: timedelta) -> str:
    """``15 minutes``: a span between checks, rounded to the minute once it is longer
    than two (runs start a few seconds late; "14m58s" says nothing more)."""
    seconds = span.total_seconds()
    if seconds > 120:
        span = timedelta(minutes=round(seconds / 60))
    else:
        span = timedelta(seconds=round(seconds))
    return format_duration(span)


HIT_RATE_MEANING = {
    "good": "caching is working well",
    "fair": "caching works, below the 80 % a well-used cache reaches",
    "bad": "most reads miss the cache — check key expiry (TTL) and eviction",
    "terrible": "the cache is barely used: no caching or wrong cache keys — check that "
                "reads use the keys writes set",
}


def judge_hit_rate(target: str, reads: HitWindow | None, spec: HitRateSpec, *,
                   labels: dict[str, str]) -> Observation:
    """The hit rate over the last ``spec.window`` in the guide's bands: one alert per
    target whose severity follows the band ("hit rate 35 % over the last 15 minutes is
    bad (< 50 %): most reads miss the cache — check key expiry (TTL) and eviction").

    Too few reads say nothing about a cache: under ``spec.min_reads`` the check does not
    alert, and the message and ``details`` say why.
    """
    obs_labels = {**labels, "check": "hit_rate"}
    worst = spec.bad or spec.terrible
    expected = (f"a cache hit rate of at least {fmt_percent(worst.below)}" if worst
                else "no hit-rate band")
    if reads is None:
        return Observation(target, Status.OK, obs_labels, None,
                           summary="hit rate not known yet: it needs two samples of the "
                                   "keyspace counters", expected=expected, seen="no reads",
                           details={"judged": False})
    over = f"over the last {fmt_over(reads.span)}"
    details: dict[str, object] = {"reads": reads.reads, "hits": reads.hits,
                                  "misses": reads.misses,
                                  "window_seconds": reads.span.total_seconds()}
    percent = reads.percent
    if percent is None or reads.reads < spec.min_reads:
        return Observation(
            target, Status.OK, obs_labels, percent,
            summary=(f"hit rate not judged: only {fmt_number(reads.reads)} reads {over} "
                     f"(fewer than {fmt_number(spec.min_reads)}), too few to say how "
                     "well the cache works"),
            expected=expected, seen=f"{fmt_number(reads.reads)} reads", window=over,
            details={**details, "judged": False, "low_traffic": True})
    band, name = None, ("good" if percent >= spec.good_at else "fair")
    for candidate, candidate_name in ((spec.terrible, "terrible"), (spec.bad, "bad")):
        if candidate is not None and percent < candidate.below:
            band, name = candidate, candidate_name
            break
    if band is not None:
        bound = f"< {fmt_percent(band.below)}"
    elif name == "good":
        bound = f"≥ {fmt_percent(spec.good_at)}"
    else:
        bound = f"below {fmt_percent(spec.good_at)}"
    summary = (f"hit rate {fmt_percent(percent)} {over} is {name} ({bound}): "
               f"{HIT_RATE_MEANING[name]}")
    seen = (f"{fmt_percent(percent)} ({fmt_number(reads.hits)} hits, "
            f"{fmt_number(reads.misses)} misses)")
    return Observation(target, Status.ALERT if band else Status.OK, obs_labels, percent,
                       summary=summary, expected=expected, seen=seen, window=over,
                       details={**details, "judged": True, "band": name},
                       severity=band.severity if band else None)


@dataclass(frozen=True)
class Interval:
    """The commands per second between two counted samples."""

    start: datetime
    end: datetime
    rate: float


def intervals(samples: Sequence[HistorySample]) -> list[Interval]:
    """The rate of each interval between consecutive samples, oldest first."""
    pts = sorted(samples, key=lambda s: s.at)
    out = []
    for prev, cur in itertools.pairwise(pts):
        seconds = (cur.at - prev.at).total_seconds()
        if seconds > 0:
            out.append(Interval(prev.at, cur.at, cur.increment / seconds))
    return out


@dataclass(frozen=True)
class Held:
    """How long the rate has stayed at or above a level, up to the latest sample, and
    the lowest interval rate in that time."""

    duration: timedelta
    lowest: float


def held_above(spans: Sequence[Interval], level: float) -> Held | None:
    """Walk back from the latest interval while its rate is at or above ``level``.

    An interval's rate is all that is known of it, so a level held over an interval
    counts from that interval's start. ``None`` when the latest interval is below.
    """
    held: list[Interval] = []
    for span in reversed(spans):
        if span.rate < level:
            break
        held.append(span)
    if not held:
        return None
    return Held(held[0].end - held[-1].start, min(s.rate for s in held))


OPS_MEANING = {
    "high": "heavy usage — if none is expected, look for tight polling loops "
            "(sleep(0.01) is 100 polls/s), caching without TTLs and duplicate background "
            "workers",
    "dangerous": "this is usually a cache bug or an infinite loop — look for tight "
                 "polling loops",
}


def judge_ops_rate(target: str, samples: Sequence[HistorySample], spec: OpsSpec, *,
                   labels: dict[str, str]) -> Observation:
    """The guide's ops/s levels, each alerting only once the rate has stayed at or above
    it for its ``for_`` ("ops/s has stayed above 1,000 for 10 minutes: this is usually a
    cache bug or an infinite loop — look for tight polling loops"): a brief spike, or
    the rate of a few seconds after a restart, pages no one. One alert per target whose
    severity follows the highest level held long enough.

    Sustained-ness comes from the target's own samples, not the engine's ``for``, which
    is one per rule (the target), shared by the quota and every other check.
    """
    obs_labels = {**labels, "check": "ops_rate"}
    spans = intervals(samples)
    levels = [(name, lv) for name, lv in (("dangerous", spec.dangerous), ("high", spec.high))
              if lv is not None]
    lowest_level = min((lv.above for _, lv in levels), default=None)
    expected = (f"under {fmt_number(lowest_level)} ops/s" if lowest_level is not None
                else "no ops/s level")
    if not spans:
        return Observation(target, Status.OK, obs_labels, None,
                           summary="ops/s not known yet: it needs two samples",
                           expected=expected, seen="no rate", details={"judged": False})
    latest = spans[-1]
    now_rate = f"{_fmt_rate(latest.rate)} ops/s"
    last = f"over the last {fmt_over(latest.end - latest.start)}"
    details: dict[str, object] = {"judged": True, "rate": latest.rate}
    building: list[str] = []
    for name, level in levels:
        held = held_above(spans, level.above)
        if held is None:
            continue
        if held.duration >= level.for_:
            summary = (f"ops/s has stayed above {fmt_number(level.above)} for "
                       f"{fmt_over(level.for_)}: {OPS_MEANING[name]}")
            seen = (f"{now_rate} {last}; at or above {fmt_number(level.above)} for "
                    f"{fmt_over(held.duration)}, lowest {_fmt_rate(held.lowest)} ops/s")
            details.update({"level": name, "held_seconds": held.duration.total_seconds(),
                            "lowest_rate": held.lowest,
                            "first_steps": FIRST_STEPS})
            return Observation(target, Status.ALERT, obs_labels, latest.rate, summary=summary,
                               expected=expected, seen=seen, window=last,
                               details=details, severity=level.severity)
        building.append(f"above {fmt_number(level.above)} for {fmt_over(held.duration)} "
                        f"so far, {name} once it holds for {fmt_over(level.for_)}")
    summary = f"ops/s {_fmt_rate(latest.rate)} {last}"
    summary += f": {building[0]}" if building else \
        (f", under {fmt_number(lowest_level)}" if lowest_level is not None else "")
    return Observation(target, Status.OK, obs_labels, latest.rate, summary=summary,
                       expected=expected, seen=now_rate, window=last, details=details)


def judge_memory(target: str, used: float, maxmemory: float, *, max_percent: float,
                 labels: dict[str, str], severity: Severity = Severity.WARNING) -> Observation:
    if maxmemory <= 0:  # maxmemory 0 means no limit: nothing to compare with
        return _obs(target, "memory", labels, True, None,
                    f"maxmemory is 0 (unlimited); using {fmt_bytes(used)}", "no limit", severity)
    percent = 100.0 * used / maxmemory
    expected = f"memory under {fmt_number(max_percent)} % of maxmemory {fmt_bytes(maxmemory)}"
    summary = f"Expected {expected}; using {fmt_bytes(used)} ({percent:.1f} %)"
    return _obs(target, "memory", labels, percent < max_percent, percent, summary, expected,
                severity)


def judge_counter(target: str, check: str, what: str, increase: float, allowed: int,
                  interval: timedelta, *, labels: dict[str, str],
                  severity: Severity = Severity.WARNING) -> Observation:
    expected = f"no {what}" if allowed == 0 else f"at most {fmt_number(allowed)} {what}"
    since = f"in the last {format_duration(interval)}"
    summary = f"Expected {expected} {since}; got {fmt_number(increase)}"
    return _obs(target, check, labels, increase <= allowed, increase, summary, expected,
                severity)


def judge_clients(target: str, clients: float, maxclients: float, *, max_percent: float,
                  labels: dict[str, str], severity: Severity = Severity.WARNING) -> Observation:
    percent = 100.0 * clients / maxclients if maxclients > 0 else 0.0
    expected = (f"connected clients under {fmt_number(max_percent)} % of maxclients "
                f"{fmt_number(maxclients)}")
    summary = f"Expected {expected}; {fmt_number(clients)} connected ({percent:.1f} %)"
    return _obs(target, "clients", labels, percent < max_percent, float(clients), summary,
                expected, severity)


def judge_keys(target: str, keys: float, keys_max: int, *, labels: dict[str, str],
               severity: Severity = Severity.WARNING) -> Observation:
    expected = f"at most {fmt_number(keys_max)} keys"
    summary = f"Expected {expected}; the server holds {fmt_number(keys)}"
    return _obs(target, "keys", labels, keys <= keys_max, float(keys), summary, expected,
                severity)


def judge_database_state(target: str, state: str, *, labels: dict[str, str]) -> Observation:
    """A provider that reports the database suspended is the outage the quota check exists
    to prevent: critical, whatever the numbers say."""
    expected = "the database to be active"
    ok = state != "suspended"
    summary = f"Expected {expected}; the provider reports it {state}"
    return _obs(target, "state", labels, ok, None, summary, expected, Severity.CRITICAL)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def judge_command_rate(target: str, rate: float | None, assessment: Assessment | None, *,
                       window: timedelta, labels: dict[str, str],
                       severity: Severity = Severity.WARNING) -> Observation:
    """The command rate against its learned range ("Expected commands per second on
    demo_cache in the last hour to be about 12 (8.5–15.5, from the same hour of the week
    over the last 4 weeks), got 250"). No rate yet, or a baseline still learning, is a
    quiet ``nodata`` (``learning``): never a page."""
    subject = f"commands per second on {target}"
    frame = format_duration(window)
    obs_labels = {**labels, "check": "command_rate"}
    if rate is None or assessment is None:
        return Observation(target, Status.NODATA, obs_labels, None,
                           summary=f"{subject}: rate not yet known (fewer than two samples "
                                   f"in the last {frame})",
                           seen="no rate", window=frame, severity=severity, learning=True)
    seen = fmt_number(round(rate, 3))
    summary = baseline_summary(subject, frame, assessment, seen)
    details = baseline_details(assessment)
    if assessment.learning:
        return Observation(target, Status.NODATA, obs_labels, float(rate), summary=summary,
                           expected=assessment.expected_text, seen=seen, window=frame,
                           details=details, severity=severity, learning=True)
    return Observation(target, Status.ALERT if assessment.is_alert else Status.OK, obs_labels,
                       float(rate), summary=summary, expected=assessment.expected_text,
                       seen=seen, window=frame, details=details, severity=severity)
