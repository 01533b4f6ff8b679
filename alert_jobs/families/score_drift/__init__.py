"""``score_drift``: batch drift checks of an ML-score table, computed in the database
against a stored reference: PSI, KS, mean and spread, high-score rate, null rates,
volume, invalid scores.

Reference: ``docs/score_drift.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from alert_jobs.families.score_drift.config import SECTION
from alert_jobs.runtime.family import Family

if TYPE_CHECKING:
    import dagster as dg

    from alert_jobs.config import RulesFile
    from alert_jobs.runtime.evaluate import RuleOutcome
    from alert_jobs.store import Timeline


def _definitions(rules: RulesFile) -> dg.Definitions:
    from alert_jobs.families.score_drift.definitions import build_definitions

    return build_definitions(rules)


def _evaluate(rules: RulesFile, rule: Any, timeline: Timeline, *, now: datetime,
              run_id: str | None) -> list[RuleOutcome]:
    from alert_jobs.families.score_drift.run import evaluate

    return evaluate(rules, rule, timeline, now=now, run_id=run_id)


def _register_cli(commands: Any) -> None:
    from alert_jobs.families.score_drift.cli import register

    register(commands)


FAMILY = Family(
    name="score_drift",
    description="drift of ML scores against a stored reference, computed in the database",
    rules=SECTION,
    definitions=_definitions,
    evaluate=_evaluate,
    register_cli=_register_cli,
)
