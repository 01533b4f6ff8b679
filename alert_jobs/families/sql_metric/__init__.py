"""``sql_metric``: a SQL query returns one number over a window, compared with an expected
range.

Reference: ``docs/sql_metric.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alert_jobs.families.sql_metric.config import SECTION
from alert_jobs.runtime.family import Family, Rejudge

if TYPE_CHECKING:
    import dagster as dg

    from alert_jobs.config import RulesFile
    from alert_jobs.runtime.evaluate import RuleOutcome
    from alert_jobs.store import Timeline


def _definitions(rules: RulesFile) -> dg.Definitions:
    from alert_jobs.families.sql_metric.definitions import build_definitions

    return build_definitions(rules)


def _rejudge(rule: Any, sets: Mapping[str, str]) -> Rejudge:
    from alert_jobs.families.sql_metric.backtest import rejudge

    return rejudge(rule, sets)


def _evaluate(rules: RulesFile, rule: Any, timeline: Timeline, *, now: datetime,
              run_id: str | None) -> list[RuleOutcome]:
    from alert_jobs.families.sql_metric.run import evaluate

    return evaluate(rules, rule, timeline, now=now, run_id=run_id)


FAMILY = Family(
    name="sql_metric",
    description="a SQL query's number over a window against an expected range",
    rules=SECTION,
    definitions=_definitions,
    evaluate=_evaluate,
    threshold_keys=("min", "max", "resolve_min", "resolve_max", "threshold", "critical",
                    "warning"),
    rejudge=_rejudge,
)
