"""Cron expressions: one interpreter (croniter) for validating rules and computing deadlines.

A rule that validates here never fails later when its schedule is loaded: Dagster's own
validation accepts five fields that its croniter can expand (no seconds field), no day
that never comes (30 or 31 February), and no ``W`` (nearest weekday), which plain
croniter would accept. ``tests/core/test_cron.py`` compares the two over a corpus.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

_NUMBER = re.compile(r"^\d+$")
NAMED = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly"})


def is_valid_cron(expression: str) -> bool:
    """A five-field cron expression (or ``@daily`` and friends) that can ever fire."""
    text = expression.strip()
    if text in NAMED:
        return True
    if len(text.split()) != 5 or "W" in text.upper() or not croniter.is_valid(text):
        return False
    fields = croniter.expand(text)[0]
    if len(fields) != 5:
        return False
    days, months = fields[2], fields[3]
    return not (list(months) == [2] and len(days) == 1 and days[0] in (30, 31))


def cron_iter(expression: str, start: datetime) -> croniter:
    """Fire times of ``expression`` after ``start`` (aware, in the schedule's timezone)."""
    return croniter(expression, start)


#: A fixed start for measuring a cron's gaps, so an answer does not depend on the day it
#: is asked (a monthly or weekday cron has gaps of different lengths).
_GAP_REFERENCE = datetime(2026, 1, 1)


@functools.lru_cache(maxsize=512)
def longest_gap(expression: str, timezone: str, *, samples: int = 400) -> timedelta:
    """The longest time between two consecutive fire times of ``expression`` in
    ``timezone``, over ``samples`` fire times from a fixed date (DST days included)."""
    it = cron_iter(expression, _GAP_REFERENCE.replace(tzinfo=ZoneInfo(timezone)))
    previous = it.get_next(datetime)
    longest = timedelta(0)
    for _ in range(samples):
        current = it.get_next(datetime)
        longest = max(longest, current - previous)
        previous = current
    return longest


@functools.lru_cache(maxsize=512)
def longest_quiet(expression: str, timezone: str, *, days: int = 8) -> timedelta:
    """The longest time ``expression`` stays silent, over ``days`` days (a week and a
    day: weekends and nights included) as well as over :func:`longest_gap`'s samples.

    400 fire times of ``*/5 * * * 1-5`` span a day and a half and never meet the
    weekend; this also looks at every hour boundary of the span: a gap longer than an
    hour contains one, and the fires just before and after it bound that gap. About
    400 fire-time computations whatever the schedule (cached per process).
    """
    longest = longest_gap(expression, timezone)
    start = _GAP_REFERENCE.replace(tzinfo=ZoneInfo(timezone))
    it = croniter(expression, start)
    covered = start
    for hour in range(days * 24):
        # Half a minute past the boundary: a fire *at* the boundary is "before" it (fire
        # times are whole minutes, and croniter excludes its starting point both ways).
        probe = start + timedelta(hours=hour, seconds=30)
        if probe < covered:
            continue  # inside a gap already measured
        it.set_current(probe, force=True)
        after = it.get_next(datetime)
        it.set_current(probe, force=True)
        before = it.get_prev(datetime)
        longest = max(longest, after - before)
        covered = after
    return longest


def cron_slug(cron: str) -> str:
    """A readable identifier for a cron expression, for names of batches, jobs and
    schedules: ``* * * * *`` → ``every_minute``, ``*/5 * * * *`` → ``every_5m``, ``0 * * * *``
    → ``hourly_at_00``, ``0 */6 * * *`` → ``every_6h_at_00``, ``30 7 * * *`` →
    ``daily_0730``, anything else ``cron_…`` (``0 9 * * 1-5`` → ``cron_0_9_x_x_1to5``)."""
    fields = cron.split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"]:
        minute, hour = fields[0], fields[1]
        if minute == "*" and hour == "*":
            return "every_minute"
        if minute.startswith("*/") and _NUMBER.match(minute[2:]) and hour == "*":
            return f"every_{int(minute[2:])}m"
        if _NUMBER.match(minute) and hour == "*":
            return f"hourly_at_{int(minute):02d}"
        if _NUMBER.match(minute) and hour.startswith("*/") and _NUMBER.match(hour[2:]):
            return f"every_{int(hour[2:])}h_at_{int(minute):02d}"
        if _NUMBER.match(minute) and _NUMBER.match(hour):
            return f"daily_{int(hour):02d}{int(minute):02d}"
    text = cron.strip().lstrip("@").replace("*", "x").replace("/", "every").replace("-", "to")
    return "cron_" + re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()


def zone_slug(timezone: str) -> str:
    """``""`` for UTC, else ``_europe_berlin``-like."""
    if timezone == "UTC":
        return ""
    return "_" + re.sub(r"[^0-9A-Za-z]+", "_", timezone).strip("_").lower()
