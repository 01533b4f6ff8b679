"""Maintenance windows as Alertmanager users write them: named ``time_intervals``. Pure.

A named interval is a list of entries; it is active at an instant when any entry
contains it. An entry contains an instant when every field it gives matches (a field it
leaves out, or gives as an empty list, matches everything), read on the wall clock of
its ``location`` (an IANA zone, UTC by default):

* ``times``: ``[start, end)`` in minutes of the day, from ``HH:MM`` text (``00:00`` to
  ``24:00``); the end must be after the start, so a window over midnight is two ranges.
* ``weekdays``: names, ``sunday`` to ``saturday``, or inclusive ranges ``monday:friday``
  (the week starts on Sunday, so ``saturday:sunday`` is refused: write both days).
* ``days_of_month``: ``1`` to ``31``, or ``-1`` (the last day) to ``-31``, and inclusive
  ranges; a range past the month's end is clipped to it (``1:31`` in February).
* ``months``: names or numbers, ``january`` = 1, and inclusive ranges.
* ``years``: numbers and inclusive ranges.

Routes use intervals as Alertmanager does (:func:`time_mute`): a route is muted while
any of its ``mute_time_intervals`` is active, and while none of its
``active_time_intervals`` is (when it has any). The text parsers raise
:class:`TimeIntervalError` with a message for the rules file's error report.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")

# Alertmanager's own format: two-digit hours and minutes, up to 23:59, or 24:00.
_TIME = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_INT = re.compile(r"^[+-]?[0-9]+$")


class TimeIntervalError(ValueError):
    """A time interval field that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class TimeRange:
    """Minutes of the day ``[start, end)``: 17:00 to 24:00 is ``TimeRange(1020, 1440)``."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Span:
    """An inclusive range of weekdays (0 = Sunday), days of month, months or years."""

    begin: int
    end: int

    def contains(self, value: int) -> bool:
        return self.begin <= value <= self.end


@dataclass(frozen=True)
class IntervalEntry:
    """One entry of a named interval; ``None`` fields match everything."""

    times: tuple[TimeRange, ...] | None = None
    weekdays: tuple[Span, ...] | None = None
    days_of_month: tuple[Span, ...] | None = None
    months: tuple[Span, ...] | None = None
    years: tuple[Span, ...] | None = None
    location: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (timezone-aware) falls in this entry, on its location's clock."""
        local = aware(moment).astimezone(ZoneInfo(self.location))
        if self.times:
            minute = local.hour * 60 + local.minute
            if not any(r.start <= minute < r.end for r in self.times):
                return False
        if self.days_of_month and not any(_day_matches(s, local) for s in self.days_of_month):
            return False
        if self.months and not any(s.contains(local.month) for s in self.months):
            return False
        weekday = local.isoweekday() % 7  # Sunday = 0, as Alertmanager counts
        if self.weekdays and not any(s.contains(weekday) for s in self.weekdays):
            return False
        return not self.years or any(s.contains(local.year) for s in self.years)


@dataclass(frozen=True)
class TimeInterval:
    """A named interval: active when any of its entries contains the instant (an
    interval with no entries is never active, as in Alertmanager)."""

    name: str
    entries: tuple[IntervalEntry, ...] = ()

    def contains(self, moment: datetime) -> bool:
        return any(entry.contains(moment) for entry in self.entries)


def _day_matches(span: Span, local: datetime) -> bool:
    """Alertmanager's day-of-month rule: negatives count back from the month's last day
    (-1 is the last); a range starting past the month's end matches nothing; the rest is
    clipped to the month."""
    days = calendar.monthrange(local.year, local.month)[1]
    begin = span.begin if span.begin > 0 else days + span.begin + 1
    end = span.end if span.end > 0 else days + span.end + 1
    if begin > days:
        return False
    return max(begin, 1) <= local.day <= min(end, days)


def time_mute(mute: Sequence[str], active: Sequence[str],
              intervals: Mapping[str, TimeInterval], now: datetime) -> str | None:
    """Why a route with these ``mute_time_intervals`` and ``active_time_intervals`` sends
    nothing at ``now``, or None when it sends. Unknown names raise ``KeyError`` (the
    rules file refuses them, so this is a programming error)."""
    for name in mute:
        if intervals[name].contains(now):
            return f"muted by time interval {name}"
    if active and not any(intervals[name].contains(now) for name in active):
        return f"outside its active time intervals ({', '.join(active)})"
    return None


# ----- the text of the rules file -------------------------------------------------

def parse_time(text: str) -> int:
    """``"HH:MM"`` → minutes of the day (``"24:00"`` is 1440, the end of the day)."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise TimeIntervalError(f"expected a time of day as HH:MM from 00:00 to 24:00, "
                                f"got {text!r}")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def time_range(start_time: str, end_time: str) -> TimeRange:
    start, end = parse_time(start_time), parse_time(end_time)
    if start >= end:
        raise TimeIntervalError(
            f"end_time {end_time} must be after start_time {start_time} (a window over "
            "midnight is two ranges: start to 24:00, and 00:00 to end)")
    return TimeRange(start, end)


def _split(text: str, what: str) -> tuple[str, str]:
    text = str(text).strip().lower()
    parts = text.split(":")
    if len(parts) == 1:
        return text, text
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise TimeIntervalError(f"expected a {what} or a range like {_EXAMPLES[what]}, got {text!r}")


_EXAMPLES = {"weekday": "monday:friday", "day of the month": "1:5 or -3:-1",
             "month": "january:march or 1:3", "year": "2026:2027"}


def _number(text: str, what: str) -> int:
    if not _INT.match(text):
        raise TimeIntervalError(f"{text!r} is not a valid {what}")
    return int(text)


def weekday_span(text: str) -> Span:
    """``"monday:friday"`` → ``Span(1, 5)``; ``"sunday"`` → ``Span(0, 0)``."""
    first, last = _split(text, "weekday")
    for name in (first, last):
        if name not in WEEKDAYS:
            raise TimeIntervalError(f"{name!r} is not a weekday (expected one of "
                                    f"{', '.join(WEEKDAYS)})")
    span = Span(WEEKDAYS.index(first), WEEKDAYS.index(last))
    if span.begin > span.end:
        raise TimeIntervalError(
            f"weekday range {text!r} ends before it starts (weeks run sunday to saturday: "
            f"list {first} and {last} separately)")
    return span


def day_of_month_span(text: str) -> Span:
    """``"1:5"``, ``"-3:-1"`` (the last three days), ``"15"``."""
    first, last = _split(text, "day of the month")
    span = Span(_number(first, "day of the month"), _number(last, "day of the month"))
    for day in (span.begin, span.end):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(f"{day} is not a day of the month (1 to 31, or -1 for "
                                    "the last day to -31)")
    if span.begin < 0 < span.end:
        raise TimeIntervalError(f"day range {text!r} starts from the end of the month, so "
                                "it must end there too (a negative end)")
    # As Alertmanager: with the shortest month (28 days), the end must not come first.
    if (28 + span.begin if span.begin < 0 else span.begin) > (
            28 + span.end if span.end < 0 else span.end):
        raise TimeIntervalError(f"day range {text!r} ends before it starts")
    return span


def month_span(text: str) -> Span:
    """``"january:march"``, ``"1:3"``, ``"december"``, ``"12"``."""
    first, last = _split(text, "month")

    def month(name: str) -> int:
        if name in MONTHS:
            return MONTHS.index(name) + 1
        if _INT.match(name) and 1 <= int(name) <= 12:
            return int(name)
        raise TimeIntervalError(f"{name!r} is not a month (a name like january, or 1 to 12)")

    span = Span(month(first), month(last))
    if span.begin > span.end:
        raise TimeIntervalError(f"month range {text!r} ends before it starts (write a range "
                                "over new year as two: november:december and january:february)")
    return span


def year_span(text: str) -> Span:
    """``"2026:2027"``, ``"2026"``."""
    first, last = _split(text, "year")
    span = Span(_number(first, "year"), _number(last, "year"))
    if span.begin < 1 or span.end < 1:
        raise TimeIntervalError(f"year range {text!r}: years are positive")
    if span.begin > span.end:
        raise TimeIntervalError(f"year range {text!r} ends before it starts")
    return span


def location(name: str) -> str:
    """An IANA zone name (``Europe/Berlin``, ``UTC``), checked."""
    try:
        ZoneInfo(str(name))
    except (ValueError, OSError, KeyError):
        raise TimeIntervalError(f"unknown location {name!r} (use an IANA time zone like "
                                "UTC or Europe/Berlin)") from None
    return str(name)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def aware(moment: datetime) -> datetime:
    """``moment`` with a timezone (naive times are taken as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
