"""``time_intervals:`` in the rules file: Alertmanager's named maintenance windows.

The syntax is Alertmanager's, so a block copied from an ``alertmanager.yml`` works::

    time_intervals:
      - name: weekend_maintenance
        time_intervals:
          - weekdays: ["saturday:sunday"]   # refused: weeks run sunday to saturday
          - weekdays: [saturday, sunday]
            times: [{start_time: "02:00", end_time: "04:00"}]
            location: Europe/Berlin

Routes name them in ``mute_time_intervals`` and ``active_time_intervals``
(:mod:`alert_jobs.config.routes`); what they mean is in
:mod:`alert_jobs.core.time_intervals`, which these models compile to.

YAML 1.1 (PyYAML) reads an unquoted ``17:00`` or ``1:5`` as a base-60 number (1020,
65), where Alertmanager's YAML reader keeps the text; such numbers are turned back into
the text they were written as, so unquoted values mean what they say in either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config.types import Strict
from alert_jobs.core import time_intervals as ti


def _field(parse: Callable[[str], Any], unbase60: Callable[[int], str] = str, *,
           lower: bool = True) -> Callable[[Any], str]:
    """A validator that checks one value with ``parse`` and keeps its text (names in
    lower case: Alertmanager reads ``Monday`` as ``monday``)."""

    def check(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = unbase60(value)
        text = value if isinstance(value, str) else str(value)
        try:
            parse(text)
        except ti.TimeIntervalError as exc:
            raise PydanticCustomError("time_interval", "{reason}", {"reason": str(exc)}) from None
        return text.strip().lower() if lower else text

    return check


def _time_of_day(n: int) -> str:
    """``17:00`` unquoted reaches us as 1020; anything under 60 was not written as HH:MM."""
    return f"{n // 60:02d}:{n % 60:02d}" if n >= 60 else str(n)


def _number_or_range(n: int) -> str:
    """``15`` is a day (or month); ``1:5`` unquoted reaches us as 65 (= 1 × 60 + 5): no
    day or month is 60 or more, so such a number was a range."""
    return f"{n // 60}:{n % 60}" if n >= 60 else str(n)


TimeText = Annotated[str, BeforeValidator(_field(ti.parse_time, _time_of_day))]
WeekdayText = Annotated[str, BeforeValidator(_field(ti.weekday_span))]
DayOfMonthText = Annotated[str, BeforeValidator(_field(ti.day_of_month_span, _number_or_range))]
MonthText = Annotated[str, BeforeValidator(_field(ti.month_span, _number_or_range))]
YearText = Annotated[str, BeforeValidator(_field(ti.year_span))]
LocationText = Annotated[str, BeforeValidator(_field(ti.location, lower=False))]


class TimeRangeConfig(Strict):
    """``{start_time: "HH:MM", end_time: "HH:MM"}``: from the start, up to (not
    including) the end."""

    start_time: TimeText
    end_time: TimeText

    @model_validator(mode="after")
    def _ordered(self) -> TimeRangeConfig:
        self.compile()  # raises TimeIntervalError (a ValueError): end before start
        return self

    def compile(self) -> ti.TimeRange:
        return ti.time_range(self.start_time, self.end_time)


class IntervalEntryConfig(Strict):
    """One entry of a named interval: every field given must match; one left out (or
    empty) matches everything."""

    times: list[TimeRangeConfig] | None = None
    weekdays: list[WeekdayText] | None = None
    days_of_month: list[DayOfMonthText] | None = None
    months: list[MonthText] | None = None
    years: list[YearText] | None = None
    location: LocationText | None = None  # IANA zone; UTC when left out

    def compile(self) -> ti.IntervalEntry:
        def spans(values: list[str] | None, parse: Callable[[str], ti.Span]
                  ) -> tuple[ti.Span, ...] | None:
            return tuple(parse(v) for v in values) if values else None

        return ti.IntervalEntry(
            times=tuple(r.compile() for r in self.times) if self.times else None,
            weekdays=spans(self.weekdays, ti.weekday_span),
            days_of_month=spans(self.days_of_month, ti.day_of_month_span),
            months=spans(self.months, ti.month_span),
            years=spans(self.years, ti.year_span),
            location=self.location or "UTC")


class TimeIntervalConfig(Strict):
    """A named interval: active while any of its entries contains the current time."""

    name: Annotated[str, Field(min_length=1)]
    time_intervals: list[IntervalEntryConfig] = Field(default_factory=list)

    def compile(self) -> ti.TimeInterval:
        return ti.TimeInterval(self.name, tuple(e.compile() for e in self.time_intervals))
