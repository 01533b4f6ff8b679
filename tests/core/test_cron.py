"""One cron interpreter: what rules accept is exactly what Dagster schedules accept."""

from __future__ import annotations

import itertools

import dagster as dg
import pytest

from alert_jobs.core.cron import is_valid_cron

MINUTES = ["*", "0", "*/5", "1-5", "0,30", "60", "?"]
HOURS = ["*", "3", "*/2", "9-17", "24"]
DAYS = ["*", "1", "15", "30", "31", "L", "15W", "LW", "?", "1-7", "32"]
MONTHS = ["*", "2", "1-6", "JAN", "13"]
WEEKDAYS = ["*", "1", "5L", "1#2", "MON-FRI", "?", "7", "8"]


def _dagster_accepts(expression: str) -> bool:
    try:
        dg.ScheduleDefinition(name="probe", cron_schedule=expression, job_name="probe")
    except Exception:
        return False
    return True


def test_rules_accept_exactly_what_dagster_schedules_accept() -> None:
    corpus = [" ".join(fields) for fields in
              itertools.product(MINUTES, HOURS, DAYS, MONTHS, WEEKDAYS)][::7]
    corpus += ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@reboot",
               "* * * * * *", "0 0 15W * *", "0 0 30 2 *", "0 0 29 2 *", "bogus"]
    disagree = [e for e in corpus if is_valid_cron(e) != _dagster_accepts(e)]
    assert disagree == []
    accepted = sum(is_valid_cron(e) for e in corpus)
    assert 0 < accepted < len(corpus), "the corpus has both valid and invalid expressions"


@pytest.mark.parametrize("expression", ["0 0 15W * *", "0 0 LW * *", "0 0 31 2 *"])
def test_a_day_dagster_cannot_schedule_is_refused(expression: str) -> None:
    assert not is_valid_cron(expression)


def test_longest_gap_is_the_longest_interval_including_dst() -> None:
    from datetime import timedelta

    from alert_jobs.core.cron import longest_gap

    assert longest_gap("* * * * *", "UTC") == timedelta(minutes=1)
    assert longest_gap("*/5 * * * *", "Europe/Berlin") == timedelta(minutes=5)
    assert longest_gap("0 9 * * 1-5", "UTC") == timedelta(days=3)  # Friday → Monday
    # 02:30 does not exist on the spring-forward day in Berlin: that gap is the longest.
    assert longest_gap("30 2 * * *", "Europe/Berlin") > timedelta(days=1)
