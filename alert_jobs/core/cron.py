"""Cron expressions: one interpreter (croniter) for validating rules and computing deadlines.

A rule that validates here never fails later when its schedule is loaded: Dagster's own
validation accepts five fields that its croniter can expand (no seconds field), no day
that never comes (30 or 31 February), and no ``W`` (nearest weekday), which plain
croniter would accept. ``tests/core/test_cron.py`` compares the two over a corpus.
"""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

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
