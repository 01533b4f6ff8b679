"""``retention:``: how long the timeline keeps what grows without bound.

At 1,000 rules evaluated every minute the timeline grows by about 23 GB a month
(evaluations above all). A daily job (the ``timeline_retention`` asset) removes, in
small batches, what is older than these settings; what the alert-quality rollups were
computed from is summarised already (``alert_episodes`` and the rollups are never
trimmed), and anything younger than a setting is never touched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field

from alert_jobs.config.types import Cron, Duration, Strict, Timezone


class RetentionConfig(Strict):
    enabled: bool = True
    #: The timeline's events (what happened to every alert, who acted): the monthly
    #: review and a year-on-year postmortem need a year and a bit.
    events: Duration = timedelta(days=400)
    #: Every evaluation, also those that changed nothing (``timeline --run-id``, rule
    #: backtests over the last 30 days).
    evaluations: Duration = timedelta(days=35)
    #: Notifications delivered (or failed for good) this long ago; undelivered ones stay.
    delivered_notifications: Duration = timedelta(days=7)
    #: The newest pings kept per heartbeat check.
    pings_per_check: Annotated[int, Field(ge=1)] = 100
    #: When the daily job runs, and the rows deleted per transaction (short
    #: transactions: evaluations running meanwhile wait for one batch at most).
    schedule: Cron = "17 3 * * *"
    timezone: Timezone = "UTC"
    batch: Annotated[int, Field(ge=1, le=100_000)] = 5_000
