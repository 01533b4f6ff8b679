"""``checks.sql_metric`` in the rules file: a query, a window and the expected range.

Rules that share a cron and timezone are evaluated together, in one Dagster run per
schedule tick (a *batch*, see :mod:`alert_jobs.families.sql_metric.batches`); ``batch:``
splits a rule off into a batch of its own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import Baseline, Duration, Name, RuleBase, RulesSection, SecretOrText, Strict
from alert_jobs.config.families import AddProblem


class Expect(Strict):
    """The good range: ``min`` and/or ``max`` (inclusive), and/or a ``baseline`` learned
    from the rule's own history (:class:`~alert_jobs.config.Baseline`); given both, both
    must hold.

    ``resolve_min``/``resolve_max`` give hysteresis: once firing, the value must come
    back inside this narrower range to count as good again.
    """

    min: float | None = None
    max: float | None = None
    resolve_min: float | None = None
    resolve_max: float | None = None
    baseline: Baseline | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Expect:
        if self.min is None and self.max is None and self.baseline is None:
            raise PydanticCustomError("bounds", "give at least one of min, max or baseline")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "bounds", "min ({min}) is greater than max ({max})",
                {"min": self.min, "max": self.max},
            )
        return self


class SqlMetricRule(RuleBase):
    """A SQL query returning one number over a window, compared with an expected range.

    The query may use the bind parameters ``:window_start``, ``:window_end`` (UTC
    timestamps) and ``:window_seconds``.
    """

    database: SecretOrText
    query: str
    window: Duration = timedelta(minutes=30)
    expect: Expect
    unit: str = ""
    query_timeout: Duration = timedelta(seconds=30)
    #: Evaluate in the batch of this name instead of the one its cron and timezone
    #: give (e.g. to keep slow queries out of the batch of the fast ones). Every rule of
    #: one batch must have the same schedule and timezone.
    batch: Name | None = None

    @field_validator("query")
    @classmethod
    def _one_statement(cls, query: str) -> str:
        if ";" in query.strip().rstrip(";"):
            raise PydanticCustomError("query", "give exactly one SQL statement")
        if not query.strip():
            raise PydanticCustomError("query", "query is empty")
        return query


def cross_check(data: dict[str, Any], receiver_names: Sequence[str], add: AddProblem) -> None:
    """A named batch is one run on one schedule: its rules must share cron and timezone."""
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)
    checks = data.get("checks")
    items = checks.get("sql_metric") if isinstance(checks, dict) else None
    first: dict[str, tuple[str, str, str]] = {}  # batch → (rule, cron, timezone)
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("batch"), str):
            continue
        cron = str(item.get("schedule") or defaults.get("schedule") or "*/5 * * * *").strip()
        zone = str(item.get("timezone") or defaults.get("timezone") or "UTC").strip()
        batch = item["batch"]
        if batch not in first:
            first[batch] = (str(item.get("name")), cron, zone)
            continue
        other, other_cron, other_zone = first[batch]
        if (cron, zone) != (other_cron, other_zone):
            add(("checks", "sql_metric", i, "batch"),
                f"batch {batch!r} runs on {other_cron!r} ({other_zone}) as rule {other!r} "
                f"says, but this rule's schedule is {cron!r} ({zone}); one batch is one "
                "schedule: give this rule the same schedule and timezone or another batch")


SECTION = RulesSection(family="sql_metric", rule_model=SqlMetricRule, cross_check=cross_check,
                       order=10)
