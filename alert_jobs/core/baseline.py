"""Expected ranges learned from history: seasonal slots, robust bands, level shifts.

Pure (no I/O, no Dagster, no SQL): the runtime reads the points of the slot
(:mod:`alert_jobs.runtime.baseline`, one indexed query) and hands them here; the
accuracy benchmark and ``rules backtest`` call the same functions on generated or
stored series.

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

Level shifts: a value that stays outside the band on the same side for ``adopt_after``
is a new level. The baseline *adopts* it: a :class:`Shift` (since when, by how much)
is stored, and history points from before ``since`` count with the offset added, so the
old level no longer drags the median back; points from ``since`` on are history as
they are. Shifts older than the history no longer touch any point and are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

#: MAD × this estimates a normal distribution's standard deviation.
MAD_TO_SIGMA = 1.4826

#: Half the width of a season slot: points within ±30 minutes of the same time.
SLOT_HALF = timedelta(minutes=30)

Crossed = Literal["upper", "lower"]


@dataclass(frozen=True)
class Settings:
    """:class:`alert_jobs.config.Baseline` as plain data (core does not import config)."""

    season: str = "hour_of_week"  # hour_of_week | hour_of_day | none
    history: timedelta = timedelta(days=28)
    width: float = 3.0
    min_points: int = 20
    direction: str = "both"  # above | below | both
    floor: float = 0.0
    adopt_after: timedelta | None = timedelta(days=1)


@dataclass(frozen=True)
class Point:
    """One past value of the metric (an evaluation, or a backfilled window)."""

    at: datetime
    value: float


@dataclass(frozen=True)
class Shift:
    """An adopted level: points before ``since`` count as ``value + offset``."""

    since: datetime
    adopted_at: datetime
    offset: float


@dataclass(frozen=True)
class Band:
    """The expected value and the range a value may stray within.

    ``lower``/``upper`` are ``-inf``/``inf`` on the side ``direction`` does not watch.
    ``spread`` is the robust standard deviation (before ``floor``); ``points`` how many
    history points it came from.
    """

    expected: float
    lower: float
    upper: float
    spread: float
    points: int


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
    watch, and all three None while learning), ``spread``, ``points``, ``crossed``
    ("upper" | "lower" | None) and ``learning`` (the reason, or None). JSON-safe: no inf."""
    raise NotImplementedError


def slot_ranges(now: datetime, season: str, history: timedelta, timezone: str
                ) -> list[tuple[datetime, datetime]]:
    """The UTC ``[start, end)`` ranges of past time in the same season slot as ``now``,
    oldest first, all inside ``[now - history, now)``.

    ``hour_of_week``: ``[t - 30m, t + 30m)`` for ``t`` = the same local wall-clock time
    1, 2, … weeks before ``now`` (as many as ``history`` holds); ``hour_of_day``: the
    same on each past day; ``none``: one range ``[now - history, now)``. Local time is
    ``timezone`` (IANA); a wall-clock time that does not exist or exists twice on a DST
    day is resolved the way :mod:`zoneinfo` folds it (fold=0). Ranges are clipped to
    ``[now - history, now)``; an empty one is dropped.
    """
    raise NotImplementedError


def slot_label(now: datetime, season: str, timezone: str) -> str:
    """The slot in words, for the learning reason: "Tuesday 14:00" (hour_of_week, the
    local hour ``now`` falls in), "14:00" (hour_of_day), "any time" (none)."""
    raise NotImplementedError


def season_phrase(season: str, history: timedelta) -> str:
    """Where the expectation comes from, for the message: "from the same hour of the
    week over the last 4 weeks", "from the same hour of the day over the last 14 days",
    "from the last 7 days" (history in whole weeks when it is a multiple of 7 days)."""
    raise NotImplementedError


def adjusted(points: Sequence[Point], shifts: Sequence[Shift]) -> list[float]:
    """The values of ``points`` with every adopted shift applied: a point before a
    shift's ``since`` gets that shift's ``offset`` added (shifts add up)."""
    raise NotImplementedError


def band(values: Sequence[float], settings: Settings) -> Band:
    """Median and MAD × 1.4826 of ``values`` (non-empty); the half-width is
    ``max(width × spread, floor)``; the side ``direction`` ignores is ``±inf``."""
    raise NotImplementedError


def assess(value: float, history: Sequence[Point], settings: Settings, *, now: datetime,
           timezone: str, shifts: Sequence[Shift] = (), subject: str = "") -> Assessment:
    """Judge ``value`` against the band of ``history`` (the slot's points, firing ones
    already left out by the caller) after ``shifts``.

    Fewer than ``min_points`` points: ``learning`` with the reason, e.g. "learning: 12 of
    20 points for Tuesday 14:00" (never an alert). A value exactly on a bound is inside.
    """
    raise NotImplementedError


def due_for_adoption(assessment: Assessment, bad_since: datetime | None, now: datetime,
                     settings: Settings) -> bool:
    """Has the value been outside the band (``bad_since``: when the alert's bad streak
    began) for at least ``adopt_after``, and is it still? Never when ``adopt_after`` is
    None or the assessment is learning or inside."""
    raise NotImplementedError


def new_shift(residuals: Sequence[float], since: datetime, now: datetime) -> Shift:
    """The shift to adopt: ``offset`` = the median of ``residuals`` (value − expected of
    the evaluations since ``since``; non-empty), adopted at ``now``."""
    raise NotImplementedError


def live_shifts(shifts: Sequence[Shift], now: datetime, history: timedelta) -> list[Shift]:
    """The shifts that still touch a point of the history (``since > now - history``)."""
    raise NotImplementedError


def summary(subject: str, window: str, assessment: Assessment, seen: str) -> str:
    """The standard's sentence: "Expected orders in the last hour to be about 1,200
    (1,050–1,350, from the same hour of the week over the last 4 weeks), got 310."
    (without the final period; ``window`` is "1h"-style text, "" for none; ``seen`` the
    formatted value). During learning: "… got 310 (learning: 12 of 20 points for
    Tuesday 14:00)"."""
    raise NotImplementedError


def backfill_times(now: datetime, step: timedelta, history: timedelta, season: str,
                   timezone: str, *, before: datetime) -> list[datetime]:
    """The window ends a new rule should compute to have a baseline soon, most useful
    first: every ``step`` in ``[now - history, before)`` (``before``: the rule's first
    evaluation, so backfilled and evaluated points never overlap), ordered so that the
    points of the slots coming up next are first: by how far ahead of ``now`` their slot
    is (for ``hour_of_week`` the time-of-week distance forward from now, for
    ``hour_of_day`` the time-of-day distance; ``none``: newest first), newest first
    within a slot."""
    raise NotImplementedError
