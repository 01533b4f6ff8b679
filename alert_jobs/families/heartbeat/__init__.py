"""``heartbeat``: jobs ping /ping/<slug>; silence past a period or cron deadline (plus
grace) pages, as do failures and hung runs. The same family watches the Dagster instance
(failed runs, asset checks, ticks) and the rules file, and pings an external dead-man
URL.

Reference: ``docs/heartbeat.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alert_jobs.families.heartbeat.config import SECTION
from alert_jobs.runtime.family import Family

if TYPE_CHECKING:
    import dagster as dg

    from alert_jobs.config import RulesFile


def _definitions(rules: RulesFile) -> dg.Definitions:
    from alert_jobs.families.heartbeat.definitions import build_definitions

    return build_definitions(rules)


def _register_cli(commands: Any) -> None:
    from alert_jobs.families.heartbeat.cli import register

    register(commands)


FAMILY = Family(
    name="heartbeat",
    description="jobs that stop pinging, and the system and Dagster instance watching themselves",
    rules=SECTION,
    definitions=_definitions,
    register_cli=_register_cli,
)
