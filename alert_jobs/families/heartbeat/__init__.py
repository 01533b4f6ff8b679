"""``heartbeat``: jobs ping /ping/<slug>; silence past a period or cron deadline (plus
grace) pages, as do failures and hung runs. The same family watches the Dagster instance
(failed runs, asset checks, ticks) and the rules file, and pings an external dead-man
URL.

Reference: ``docs/heartbeat.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.heartbeat.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="heartbeat",
    package=__name__,
    description="jobs that stop pinging, and the system and Dagster instance watching themselves",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.heartbeat.definitions:build_definitions"),
    register_cli=lazy("alert_jobs.families.heartbeat.cli:register"),
    http_routes=lazy("alert_jobs.families.heartbeat.http:ping_routes"),
    simulate=lazy("alert_jobs.families.heartbeat.simulate:simulate"),
    trim=lazy("alert_jobs.families.heartbeat.store:trim_pings"),
)
