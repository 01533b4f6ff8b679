"""``redis_quota``: command usage of a Redis (INFO) or Upstash database against its daily
or monthly quota, projected to the end of the window, plus hit rate, memory, evictions,
rejected connections, clients and keys.

Reference: ``docs/redis_quota.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from alert_jobs.families.redis_quota.config import SECTION
from alert_jobs.runtime.family import Family

if TYPE_CHECKING:
    import dagster as dg

    from alert_jobs.config import RulesFile
    from alert_jobs.runtime.evaluate import RuleOutcome
    from alert_jobs.store import Timeline


def _definitions(rules: RulesFile) -> dg.Definitions:
    from alert_jobs.families.redis_quota.definitions import build_definitions

    return build_definitions(rules)


def _evaluate(rules: RulesFile, rule: Any, timeline: Timeline, *, now: datetime,
              run_id: str | None) -> list[RuleOutcome]:
    from alert_jobs.families.redis_quota.run import evaluate

    return evaluate(rules, rule, timeline, now=now, run_id=run_id)


def _register_cli(commands: Any) -> None:
    from alert_jobs.families.redis_quota.cli import register

    register(commands)


FAMILY = Family(
    name="redis_quota",
    description="Redis / Upstash command usage against a daily or monthly quota, and Redis health",
    rules=SECTION,
    definitions=_definitions,
    evaluate=_evaluate,
    register_cli=_register_cli,
)
