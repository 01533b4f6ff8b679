"""Cron expressions: one interpreter (croniter) for validating rules and computing deadlines.

Dagster schedules accept what :func:`is_valid_cron` accepts: five fields that croniter
can expand (no seconds field) and no day that never comes (30 or 31 February), so a
rule that validates here never fails later when its schedule is loaded.
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
    if len(text.split()) != 5 or not croniter.is_valid(text):
        return False
    fields = croniter.expand(text)[0]
    if len(fields) != 5:
        return False
    days, months = fields[2], fields[3]
    return not (list(months) == [2] and len(days) == 1 and days[0] in (30, 31))


def cron_iter(expression: str, start: datetime) -> croniter:
    """Fire times of ``expression`` after ``start`` (aware, in the schedule's timezone)."""
    return croniter(expression, start)
