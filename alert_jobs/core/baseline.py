"""Expected ranges learned from history: seasonal slots, robust bands, level shifts.

Pure (no I/O, no Dagster, no SQL): the runtime reads the points of the slot and the
last hours' evaluations (:mod:`alert_jobs.runtime.baseline`, one indexed statement)
and hands them here; ``rules backtest`` and the accuracy benchmark judge stored or
generated series with :class:`Learner`, the same evaluation held in memory.

Why median and MAD: the band must not widen because of past incidents. A mean and a
standard deviation move with every outlier in the history (one spike of 10× in 48
points moves the mean by ~20 % and the deviation far more); the median moves by at
most one rank and the MAD (median absolute deviation, × 1.4826 to estimate a normal
standard deviation) ignores up to half of the points being wild. Evaluations that were
alerting are left out of the history as well (the runtime's query), so an incident
that lasted hours does not teach the baseline that it was normal.

Seasons: ``hour_of_week`` takes the points within ±30 minutes of the same time of the
week in each past week of the history (4 weeks: 4 ranges); ``hour_of_day`` the same
time of the day on each past day; ``none`` the whole history. Times are the rule's
timezone, so "Tuesday 14:00" stays Tuesday 14:00 across a DST change.

Today's level: days are not all alike (a sale, a holiday, a slow trend), so the
slot's median is scaled by the *level* of the last :data:`RECENT` hours: the median of
value ÷ expected of the evaluations that did not alert. Alerting ones are left out, so
an incident does not teach the baseline that it is normal. Counts (whole, non-negative
values) never get a spread below √expected, the Poisson noise of counting: a slot
where four quiet weeks agreed by chance must not page on a wobble of two errors.

Level shifts: when the value is outside the band and, over the last ``adopt_after``,
at least :data:`ADOPT_SIDE` of the evaluations lay on that side of what was expected
(a sign test: an ordinary day has about half on each side, and a shifted level that
dips back inside the band at night still lies on its side), the level is *adopted*: a
:class:`Shift` is stored, and history points before its ``since`` count scaled by its
``factor`` (the median value ÷ expected over that time: traffic that grows by half
grows by half at night and at the peak alike), or moved by its ``offset`` for a metric
that is not a positive count or rate. Points from ``since`` on are history as they
are. One adoption per ``adopt_after`` at most; shifts older than the history no longer
touch any point and are dropped.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from alert_jobs.core.formatting import fmt_number

#: MAD × this estimates a normal distribution's standard deviation.
MAD_TO_SIGMA = 1.4826

#: Half the width of a season slot: points within ±30 minutes of the same time.
SLOT_HALF = timedelta(minutes=30)

#: Today's level comes from the evaluations of the last hours …
RECENT = timedelta(hours=6)
#: … when there are at least this many of them that did not alert.
RECENT_MIN = 6

#: A level is adopted when this share of the last ``adopt_after`` lay on one side.
ADOPT_SIDE = 0.8

Crossed = Literal["upper", "lower"]


@dataclass(frozen=True)
class Settings:
    """:class:`alert_jobs.config.Baseline` as plain data (core does not import config)."""

    season: str = "hour_of_week"  # hour_of_week | hour_of_day | none
    history: timedelta = timedelta(days=28)
    width: float = 4.0
    min_points: int = 20
    direction: str = "both"  # above | below | both
    floor: float = 0.0
    adopt_after: timedelta | None = timedelta(hours=12)


@dataclass(frozen=True)
class Point:
    """One past value of the metric (an evaluation, or a backfilled window)."""

    at: datetime
    value: float


@dataclass(frozen=True)
class Recent:
    """A recent evaluation: what it saw, what was expected then, whether it alerted."""

    at: datetime
    value: float
    expected: float | None
    alerting: bool


@dataclass(frozen=True)
class Shift:
    """An adopted level: points before ``since`` count as ``value × factor + offset``."""

    since: datetime
    adopted_at: datetime
    offset: float = 0.0
    factor: float = 1.0


@dataclass(frozen=True)
class Band:
    """The expected value and the range a value may stray within.

    ``lower``/``upper`` are ``-inf``/``inf`` on the side ``direction`` does not watch.
    ``spread`` is the robust standard deviation (before ``floor``); ``points`` how many
    history points it came from; ``level`` today's factor (1: none applied).
    """

    expected: float
    lower: float
    upper: float
    spread: float
    points: int
    level: float = 1.0


@dataclass(frozen=True)
class Assessment:
    """What the baseline says about one value.

    Exactly one of: ``learning`` is the reason there is no band yet ("learning: 12 of 20
    points for Tuesday 14:00"), or ``band`` is set and ``crossed`` says which side the
    value left it on (``None``: inside). ``expected_text`` is the message standard's
    fragment: "to be about 1,200 (1,050–1,350, from the same hour of the week over the
    last 4 weeks)"; during learning it says what is being learned.
    """

    band: Band | None
    crossed: Crossed | None
    learning: str | None
    expected_text: str

    @property
    def is_alert(self) -> bool:
        return self.crossed is not None


def details(assessment: Assessment) -> dict[str, float | str | None]:
    """What an evaluation stores in ``details`` (and the asset's metadata plots):
    ``expected_value``, ``lower``, ``upper`` (None on a side ``direction`` does not
    watch, and all three None while learning), ``spread``, ``points``, ``level``, ``crossed``
    ("upper" | "lower" | None) and ``learning`` (the reason, or None). JSON-safe: no inf."""
    b = assessment.band
    return {
        "expected_value": b.expected if b else None,
        "lower": b.lower if b and math.isfinite(b.lower) else None,
        "upper": b.upper if b and math.isfinite(b.upper) else None,
        "spread": b.spread if b else None,
        "points": float(b.points) if b else None,
        "level": b.level if b else None,
        "crossed": assessment.crossed,
        "learning": assessment.learning,
    }


_PERIOD = {"hour_of_week": timedelta(days=7), "hour_of_day": timedelta(days=1)}


def _period(season: str) -> timedelta | None:
    if season not in (*_PERIOD, "none"):
        raise ValueError(f"unknown season {season!r} (hour_of_week, hour_of_day or none)")
    return _PERIOD.get(season)


def _same_wall_clock(local: datetime, back: timedelta, zone: ZoneInfo) -> datetime:
    """``local`` moved back by whole days on the wall clock (not in elapsed time), in UTC:
    Tuesday 14:00 a week before a DST change is Tuesday 14:00, not 13:00."""
    wall = local.replace(tzinfo=None) - back
    return wall.replace(tzinfo=zone).astimezone(UTC)


def slot_ranges(now: datetime, season: str, history: timedelta, timezone: str
                ) -> list[tuple[datetime, datetime]]:
    """The UTC ``[start, end)`` ranges of past time in the same season slot as ``now``,
    oldest first.

    ``hour_of_week``: ``[t - 30m, t + 30m)`` for ``t`` = the same local wall-clock time
    1, 2, … ``history ÷ 1 week`` weeks before ``now`` (28 days: 4 whole ranges; the
    oldest reaches half a slot past ``now - history``, see :func:`history_start`);
    ``hour_of_day``: the same on each past day; ``none``: one range
    ``[now - history, now)``. Local time is ``timezone`` (IANA); a wall-clock time that
    does not exist or exists twice on a DST day is resolved the way :mod:`zoneinfo`
    folds it (fold=0).
    """
    period = _period(season)
    if period is None:
        return [(now - history, now)] if history > timedelta(0) else []
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    ranges = []
    for k in range(history // period, 0, -1):
        t = _same_wall_clock(local, period * k, zone)
        ranges.append((t - SLOT_HALF, t + SLOT_HALF))
    return ranges


def history_start(now: datetime, season: str, history: timedelta) -> datetime:
    """The oldest time any slot of ``now`` reads (what a backfill must reach back to)."""
    return now - history - (SLOT_HALF if _period(season) is not None else timedelta(0))


def slot_label(now: datetime, season: str, timezone: str) -> str:
    """The slot in words, for the learning reason: "Tuesday 14:00" (hour_of_week, the
    local hour ``now`` falls in), "14:00" (hour_of_day), "any time" (none)."""
    if _period(season) is None:
        return "any time"
    local = now.astimezone(ZoneInfo(timezone))
    return local.strftime("%A %H:00" if season == "hour_of_week" else "%H:00")


def _span(history: timedelta) -> str:
    """"the last 4 weeks", "the last day", "the last 36 hours"."""
    seconds = round(history.total_seconds())
    for unit, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"the last {unit}" if n == 1 else f"the last {n} {unit}s"
    return f"the last {seconds} seconds"


def season_phrase(season: str, history: timedelta) -> str:
    """Where the expectation comes from, for the message: "from the same hour of the
    week over the last 4 weeks", "from the same hour of the day over the last 14 days",
    "from the last 7 days" (history in whole weeks when it is a multiple of 7 days)."""
    if _period(season) is None:
        return f"from {_span(history)}"
    what = "week" if season == "hour_of_week" else "day"
    return f"from the same hour of the {what} over {_span(history)}"


def adjusted(points: Sequence[Point], shifts: Sequence[Shift]) -> list[float]:
    """The values of ``points`` with every adopted shift applied: a point before a
    shift's ``since`` becomes ``value × factor + offset`` (older shifts first)."""
    if not shifts:
        return [p.value for p in points]
    ordered = sorted(shifts, key=lambda s: s.since)
    out = []
    for p in points:
        v = p.value
        for shift in ordered:
            if p.at < shift.since:
                v = v * shift.factor + shift.offset
        out.append(v)
    return out


def _counts(values: Sequence[float]) -> bool:
    return all(v >= 0 and float(v).is_integer() for v in values)


def band(values: Sequence[float], settings: Settings, *, level: float = 1.0,
         counts: bool | None = None) -> Band:
    """Median and MAD × 1.4826 of ``values`` (non-empty), both scaled by today's
    ``level``; counts keep a spread of at least √expected; the half-width is
    ``max(width × spread, floor)``; the side ``direction`` ignores is ``±inf``.
    ``counts``: whether the metric counts (default: ``values`` are whole and >= 0);
    :func:`assess` decides it on the history as read, since a scaling shift makes
    adjusted counts fractional."""
    if not values:
        raise ValueError("a band needs at least one value")
    median = statistics.median(values)
    expected = median * level
    spread = MAD_TO_SIGMA * statistics.median(abs(v - median) for v in values) * level
    if _counts(values) if counts is None else counts:
        spread = max(spread, math.sqrt(max(expected, 0.0)))
    half = max(settings.width * spread, settings.floor)
    lower = expected - half if settings.direction in ("below", "both") else -math.inf
    upper = expected + half if settings.direction in ("above", "both") else math.inf
    return Band(expected, lower, upper, spread, len(values), level)


def level_of(recent: Sequence[Recent]) -> float:
    """Today's level: the median of value ÷ expected of the recent evaluations that did
    not alert (1 with fewer than :data:`RECENT_MIN`, or for a metric that is not
    positive: a ratio means nothing around zero)."""
    ratios = [r.value / r.expected for r in recent
              if not r.alerting and r.expected is not None and r.expected > 0 and r.value >= 0]
    if len(ratios) < RECENT_MIN:
        return 1.0
    return float(statistics.median(ratios))


def _shown(value: float) -> str:
    """A band number as a person reads it: three significant digits (1,187.5 → 1,190;
    12.34 → 12.3), whole numbers below 1,000 as they are."""
    if value == 0 or not math.isfinite(value):
        return fmt_number(value)
    if float(value).is_integer() and abs(value) < 1000:
        return fmt_number(value)
    digits = 3 - 1 - math.floor(math.log10(abs(value)))
    return fmt_number(round(value, digits) if digits > 0 else float(round(value, digits)))


def _expected_text(b: Band, settings: Settings) -> str:
    phrase = season_phrase(settings.season, settings.history)
    about = _shown(b.expected)
    if math.isfinite(b.lower) and math.isfinite(b.upper):
        return f"to be about {about} ({_shown(b.lower)}–{_shown(b.upper)}, {phrase})"
    if math.isfinite(b.upper):
        return f"to be at most {_shown(b.upper)} (about {about}, {phrase})"
    return f"to be at least {_shown(b.lower)} (about {about}, {phrase})"


def assess(value: float, history: Sequence[Point], settings: Settings, *, now: datetime,
           timezone: str, shifts: Sequence[Shift] = (), recent: Sequence[Recent] = (),
           subject: str = "") -> Assessment:
    """Judge ``value`` against the band of ``history`` (the slot's points, alerting ones
    already left out by the caller) after ``shifts``, at today's level from ``recent``
    (the evaluations of the last :data:`RECENT`; :func:`level_of`).

    Fewer than ``min_points`` points: ``learning`` with the reason, e.g. "learning: 12 of
    20 points for Tuesday 14:00" (never an alert). A value exactly on a bound is inside.
    """
    values = adjusted(history, shifts)
    if len(values) < settings.min_points:
        label = slot_label(now, settings.season, timezone)
        reason = f"learning: {len(values)} of {settings.min_points} points for {label}"
        phrase = season_phrase(settings.season, settings.history)
        return Assessment(None, None, reason, f"to be learned {phrase}")
    b = band(values, settings, level=level_of(recent),
             counts=_counts([p.value for p in history]))
    crossed: Crossed | None = None
    if value > b.upper:
        crossed = "upper"
    elif value < b.lower:
        crossed = "lower"
    return Assessment(b, crossed, None, _expected_text(b, settings))


def adoption(assessment: Assessment, window: Sequence[Recent], value: float,
             shifts: Sequence[Shift], now: datetime, settings: Settings) -> Shift | None:
    """The level to adopt now, or None (see the module doc).

    ``window``: the evaluations of the last ``adopt_after`` (any order; this one not
    among them). Adopts when the value is outside the band, no shift was adopted within
    ``adopt_after``, the evaluations span at least 90 % of it, and at least
    :data:`ADOPT_SIDE` of them lay on the crossed side of what was expected then. The
    shift starts at the first of them that alerted on that side; its factor (or offset,
    for a metric that is not positive) is the median over all of them and this value.
    """
    after = settings.adopt_after
    b = assessment.band
    if after is None or b is None or assessment.crossed is None:
        return None
    if any(s.adopted_at > now - after for s in shifts):
        return None  # one adoption per adopt_after: a new level needs time to show
    judged = sorted((r for r in window if r.expected is not None and now - after <= r.at < now),
                    key=lambda r: r.at)
    if len(judged) < RECENT_MIN or now - judged[0].at < 0.9 * after:
        return None
    sign = 1.0 if assessment.crossed == "upper" else -1.0
    pairs = [(r.value, float(r.expected)) for r in judged if r.expected is not None]
    if sum(1 for v, e in pairs if (v - e) * sign > 0) < ADOPT_SIDE * len(pairs):
        return None
    since = next((r.at for r in judged if r.alerting and r.expected is not None
                  and (r.value - r.expected) * sign > 0), now)
    pairs.append((value, b.expected))
    if all(e > 0 and v >= 0 for v, e in pairs):
        return Shift(since, now, factor=float(statistics.median(v / e for v, e in pairs)))
    return Shift(since, now, offset=float(statistics.median(v - e for v, e in pairs)))


def live_shifts(shifts: Sequence[Shift], now: datetime, history: timedelta) -> list[Shift]:
    """The shifts that still touch a point of the history (``since > now - history``)."""
    return [s for s in shifts if s.since > now - history]


def summary(subject: str, window: str, assessment: Assessment, seen: str) -> str:
    """The standard's sentence: "Expected orders in the last hour to be about 1,200
    (1,050–1,350, from the same hour of the week over the last 4 weeks), got 310."
    (without the final period; ``window`` is ``format_duration`` text such as "1 hour"
    or "30 minutes", "" for none; ``seen`` the formatted value). During learning: "…
    got 310 (learning: 12 of 20 points for Tuesday 14:00)"."""
    if window.startswith("1 "):
        window = window[2:]
    frame = f" in the last {window}" if window else ""
    text = f"Expected {subject}{frame} {assessment.expected_text}, got {seen}"
    if assessment.learning:
        text += f" ({assessment.learning})"
    return text


def _time_of(at: datetime, period: timedelta, zone: ZoneInfo) -> timedelta:
    """Where ``at`` falls in its local week (or day): from Monday (midnight) 00:00."""
    local = at.astimezone(zone)
    into_day = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second)
    if period == timedelta(days=7):
        return timedelta(days=local.weekday()) + into_day
    return into_day


def backfill_times(now: datetime, step: timedelta, history: timedelta, season: str,
                   timezone: str, *, before: datetime) -> list[datetime]:
    """The window ends a new rule should compute to have a baseline soon, most useful
    first: every ``step`` in ``[now - history, before)`` (``before``: the rule's first
    evaluation, so backfilled and evaluated points never overlap), ordered so that the
    points of the slots coming up next are first: by how far ahead of ``now`` their slot
    is (for ``hour_of_week`` the time-of-week distance forward from now, for
    ``hour_of_day`` the time-of-day distance; ``none``: newest first), newest first
    within a slot.

    "Ahead" starts half a slot before now's time, so the slot now is judged in comes
    first, complete: within the first 5 × 12 points of a 5-minute rule with 4 weeks of
    hour_of_week history (4 past weeks of the slot, and this week's last half hour that
    is next week's), the current hour has its baseline.
    """
    if step <= timedelta(0):
        raise ValueError("the backfill step must be longer than 0s")
    start = history_start(now, season, history)
    times: list[datetime] = []
    t = before - step
    while t >= start:
        times.append(t)
        t -= step
    period = _period(season)
    if period is None:
        return times  # already newest first
    zone = ZoneInfo(timezone)
    here = _time_of(now, period, zone) - SLOT_HALF

    def ahead(at: datetime) -> tuple[float, float]:
        distance = (_time_of(at, period, zone) - here) % period
        return distance.total_seconds(), -at.timestamp()

    return sorted(times, key=ahead)


class Learner:
    """The runtime's baseline evaluation held in memory, for replays: ``rules
    backtest`` and the accuracy benchmark judge a series exactly as the runtime would,
    without a database.

    It keeps every value it was fed with what was expected and whether the evaluation
    alerted, and answers :meth:`assess` the way :func:`alert_jobs.runtime.baseline.
    assess_value` does from the timeline: the slot's points (alerting ones left out
    unless an adopted shift's ``[since, adopted_at]`` covers them), the last
    :data:`RECENT` for today's level, and, when the value is outside, the last
    ``adopt_after`` for :func:`adoption`. Values must come in time order (earlier ones,
    e.g. backfilled points, through :meth:`learn` first).
    """

    def __init__(self, settings: Settings, timezone: str):
        self.settings, self.timezone = settings, timezone
        self.times: list[datetime] = []
        self.values: list[float] = []
        self.expected: list[float | None] = []
        self.alerting: list[bool] = []
        self.shifts: list[Shift] = []

    def learn(self, points: Sequence[Point]) -> None:
        """History from before the first evaluation (backfilled points): never alerts."""
        for p in sorted(points, key=lambda p: p.at):
            self.record(p.at, p.value, None, alerting=False)

    def record(self, at: datetime, value: float, expected: float | None, *,
               alerting: bool) -> None:
        """Keep one evaluation (``alerting``: its status was ``alert``, for whatever
        reason: a fixed bound too)."""
        if self.times and at <= self.times[-1]:
            raise ValueError(f"values must come in time order: {at} after {self.times[-1]}")
        self.times.append(at)
        self.values.append(value)
        self.expected.append(expected)
        self.alerting.append(alerting)

    def _between(self, start: datetime, end: datetime) -> range:
        return range(bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, end))

    def slot(self, now: datetime) -> list[Point]:
        """The points the runtime's history read returns for the slot of ``now``."""
        out = []
        for start, end in slot_ranges(now, self.settings.season, self.settings.history,
                                      self.timezone):
            for i in self._between(start, end):
                at = self.times[i]
                if not self.alerting[i] or any(s.since <= at <= s.adopted_at
                                               for s in self.shifts):
                    out.append(Point(at, self.values[i]))
        return out

    def recent(self, start: datetime, end: datetime) -> list[Recent]:
        return [Recent(self.times[i], self.values[i], self.expected[i], self.alerting[i])
                for i in self._between(start, end)]

    def assess(self, value: float, now: datetime) -> Assessment:
        """Judge ``value`` at ``now`` (adopting a level when due); not recorded yet."""
        self.shifts = live_shifts(self.shifts, now, self.settings.history)
        judged = assess(value, self.slot(now), self.settings, now=now, timezone=self.timezone,
                        shifts=self.shifts, recent=self.recent(now - RECENT, now))
        after = self.settings.adopt_after
        if judged.crossed is None or after is None:
            return judged
        shift = adoption(judged, self.recent(now - after, now), value, self.shifts, now,
                         self.settings)
        if shift is None:
            return judged
        self.shifts.append(shift)
        return assess(value, self.slot(now), self.settings, now=now, timezone=self.timezone,
                      shifts=self.shifts, recent=self.recent(now - RECENT, now))

    def evaluate(self, value: float, now: datetime) -> Assessment:
        """:meth:`assess` and :meth:`record` (alerting: the baseline crossed)."""
        judged = self.assess(value, now)
        self.record(now, value, judged.band.expected if judged.band else None,
                    alerting=judged.is_alert)
        return judged
