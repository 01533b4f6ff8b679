"""``quality:`` in the rules file: the monthly alert review and its thresholds.

Example::

    quality:
      review_receiver: team_email     # gets the review on the 1st of each month
      review_schedule: "0 9 1 * *"
      timezone: Europe/Berlin         # of the schedule; months and days are UTC
      report_dir: reports             # HTML reports (default $DAGSTER_HOME/reports)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from alert_jobs.config import Cron, Duration, RulesSection, Strict, Timezone
from alert_jobs.config.drills import FIRE_DRILL_FAILED, DrillsConfig
from alert_jobs.config.families import AddProblem


class QualityConfig(Strict):
    review_receiver: str | None = None
    review_schedule: Cron = "0 9 1 * *"
    daily_schedule: Cron = "30 0 * * *"
    timezone: Timezone = "UTC"
    report_dir: str = ""
    start_date: dt.date = dt.date(2025, 1, 1)  # first partition of the quality assets
    target_actionable: Annotated[float, Field(gt=0, le=1)] = 0.8
    min_actionable: Annotated[float, Field(gt=0, le=1)] = 0.5
    max_resolve: Duration = dt.timedelta(minutes=30)


def cross_check(data: dict[str, Any], receiver_names: Sequence[str], add: AddProblem) -> None:
    """``quality.review_receiver`` must name a receiver, ``drills.rules`` rules of the
    file, and an enabled drill schedule at least one rule (reported with the other
    errors)."""
    quality = data.get("quality")
    name = quality.get("review_receiver") if isinstance(quality, dict) else None
    if isinstance(name, str) and name not in receiver_names:
        add(("quality", "review_receiver"),
            f"unknown receiver {name!r} (known: {', '.join(receiver_names) or 'none'})")
    drills = data.get("drills")
    if not isinstance(drills, dict):
        return
    checks = data.get("checks") if isinstance(data.get("checks"), dict) else {}
    known = sorted({str(r["name"]) for rules in (checks or {}).values()
                    if isinstance(rules, list) for r in rules
                    if isinstance(r, dict) and isinstance(r.get("name"), str)})
    listed = drills.get("rules")
    for i, rule in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(rule, str) and rule not in known:
            add(("drills", "rules", i),
                f"unknown rule {rule!r} (known rules: {', '.join(known) or 'none'})")
    if drills.get("enabled") is True and not listed:
        add(("drills", "enabled"), "the drill schedule is enabled but drills.rules lists no "
                                   "rule to drill; list some or set enabled: false")


SECTION = RulesSection(family="quality",
                       settings=(("quality", QualityConfig), ("drills", DrillsConfig)),
                       reserved_rules=(FIRE_DRILL_FAILED,), cross_check=cross_check, order=90)
