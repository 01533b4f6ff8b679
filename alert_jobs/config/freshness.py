"""``freshness:``: when a scheduled check counts as stopped.

A check that silently stops running raises nothing: its schedule switched off by hand,
its code location not loading after a bad deploy, the daemon behind. Every scheduled
check asset therefore carries an expectation derived from its own schedule — by
default, evaluated at least once within twice the schedule's longest interval (a
weekday-only schedule's longest interval is the weekend). The same window is given to
Dagster as the asset's freshness policy (the UI shows it; Dagster's freshness daemon
judges it) and the instance watch turns a failing one into an alert that names the
likely cause.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from alert_jobs.config.types import Duration, Strict
from alert_jobs.core.cron import longest_quiet

#: Dagster refuses freshness windows under a minute.
MIN_WINDOW = timedelta(minutes=1)


class FreshnessConfig(Strict):
    enabled: bool = True
    #: stale when not evaluated within this many of the schedule's longest interval
    intervals: float = Field(default=2.0, ge=1.0, le=1000.0)
    #: a fixed window instead, per schedule (``sql_metric_every_minute_schedule: 5m``)
    #: or per family (``sql_metric: 15m``); a schedule's own comes first
    stale_after: dict[str, Duration] = Field(default_factory=dict)

    @field_validator("stale_after")
    @classmethod
    def _at_least_a_minute(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        short = [family for family, window in value.items() if window < MIN_WINDOW]
        if short:
            raise ValueError(f"stale_after of {', '.join(short)} must be at least 1m "
                             "(Dagster's freshness policies cannot be shorter)")
        return value

    def window(self, family: str, cron: str, timezone: str, schedule: str = "") -> timedelta:
        """How long a check of ``family`` that ``schedule`` evaluates on ``cron`` may go
        unevaluated."""
        fixed = self.stale_after.get(schedule, self.stale_after.get(family))
        if fixed is not None:
            return fixed
        return max(MIN_WINDOW, self.intervals * longest_quiet(cron, timezone))
