"""``drills:`` in the rules file: the optional monthly fire drill (see ``docs/drills.md``).

Example::

    drills:
      enabled: true                 # off by default: a drill pages real people
      schedule: "0 10 1 * *"        # 10:00 on the 1st of each month …
      timezone: Europe/Berlin       # … in this timezone (explicit, never the server's)
      rules: [dead_letters, orders_last_hour]

The section is registered by the alert-quality family (drills are how alert quality
checks that a page still reaches someone); :func:`alert_jobs.runtime.drill.run_drill`
and the ``fire_drill_job`` read it with ``rules.section(DrillsConfig)``, which gives
these defaults (no schedule) when the section is absent.
"""

from __future__ import annotations

from pydantic import Field

from alert_jobs.config.types import Cron, Name, Strict, Timezone

#: The alert a failed or too slow scheduled drill raises (a name rules may not use).
FIRE_DRILL_FAILED = "fire_drill_failed"


class DrillsConfig(Strict):
    #: The schedule runs only when enabled; listing rules alone defines it, stopped.
    enabled: bool = False
    schedule: Cron = "0 10 1 * *"
    timezone: Timezone = "UTC"
    #: The rules the schedule drills, one run each.
    rules: list[Name] = Field(default_factory=list)
    #: Who the timeline names as having run a scheduled drill.
    by: str = "fire-drill-schedule"
