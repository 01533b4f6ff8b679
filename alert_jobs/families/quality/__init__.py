"""``quality``: alert quality: actionable rate, times to ack and resolve, flaps, the
monthly review, and backtests of rule changes.

Reference: ``docs/quality.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alert_jobs.families.quality.config import SECTION
from alert_jobs.runtime.family import Family

if TYPE_CHECKING:
    import dagster as dg

    from alert_jobs.config import RulesFile


def _definitions(rules: RulesFile) -> dg.Definitions:
    from alert_jobs.families.quality.definitions import build_definitions

    return build_definitions(rules)


def _register_cli(commands: Any) -> None:
    from alert_jobs.families.quality.cli import register

    register(commands)


FAMILY = Family(
    name="quality",
    description="how good the alerts are: actionable rate, times to ack and resolve, reviews",
    rules=SECTION,
    definitions=_definitions,
    register_cli=_register_cli,
    writes_timeline=False,
)
