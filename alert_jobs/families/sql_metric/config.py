"""``checks.sql_metric`` in the rules file: a query, a window and the expected range."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import Duration, RuleBase, RulesSection, SecretOrText, Strict


class Expect(Strict):
    """The good range: ``min`` and/or ``max`` (inclusive).

    ``resolve_min``/``resolve_max`` give hysteresis: once firing, the value must come
    back inside this narrower range to count as good again.
    """

    min: float | None = None
    max: float | None = None
    resolve_min: float | None = None
    resolve_max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Expect:
        if self.min is None and self.max is None:
            raise PydanticCustomError("bounds", "give at least one of min or max")
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

    @field_validator("query")
    @classmethod
    def _one_statement(cls, query: str) -> str:
        if ";" in query.strip().rstrip(";"):
            raise PydanticCustomError("query", "give exactly one SQL statement")
        if not query.strip():
            raise PydanticCustomError("query", "query is empty")
        return query


SECTION = RulesSection(family="sql_metric", rule_model=SqlMetricRule, order=10)
