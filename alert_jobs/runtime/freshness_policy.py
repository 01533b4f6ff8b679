"""A scheduled check asset's freshness expectation, in the form Dagster and the watch read.

Each family gives the specs of the assets a schedule evaluates these fields
(:func:`freshness_fields`): Dagster's own ``FreshnessPolicy.time_window`` (the UI shows
the asset's freshness, and Dagster's freshness daemon judges it), and definition
metadata naming the schedule and the window, so the instance watch can say *which*
schedule stopped and why (:mod:`alert_jobs.families.heartbeat.watch_freshness`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile

#: Definition metadata of a scheduled check asset: the schedule that evaluates it …
SCHEDULE_KEY = "alert_jobs/schedule"
#: … and how long it may go unevaluated, in seconds.
WINDOW_KEY = "alert_jobs/stale_after_seconds"


def freshness_fields(rules: RulesFile, family: str, schedule: str, cron: str, timezone: str
                     ) -> dict[str, Any]:
    """``AssetSpec`` keyword arguments (``freshness_policy``, ``metadata``) for an asset
    that ``schedule`` evaluates; none when ``freshness.enabled`` is off."""
    if not rules.freshness.enabled:
        return {}
    window = rules.freshness.window(family, cron, timezone, schedule)
    return {"freshness_policy": dg.FreshnessPolicy.time_window(fail_window=window),
            "metadata": {SCHEDULE_KEY: schedule, WINDOW_KEY: window.total_seconds()}}
