"""``checks.slo`` in the rules file: an objective, its period, an SLI as good/total event
counts, and the multi-window, multi-burn-rate pairs that alert on it.

The defaults are the SRE Workbook's (ch. 5, Table 5-8, with the 24 h / 2 h pair of its
example rules): page when 2 % of a 30-day budget burns in 1 h (and in the last 5 min)
or 5 % in 6 h (and 30 min); ticket when 10 % burns in 1 day (and 2 h) or in 3 days (and
6 h). A pair's ``factor`` is ``budget_percent / 100 × period / long``, so the same
percentages give 13.44 / 5.6 / 2.8 / 0.93 over 28 days. There is no ``for:``: the short
window already keeps a pair from firing on a spike that is over, and from staying on
for long after the errors stop (the Workbook advises against durations here).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config import Duration, RuleBase, RulesSection, SecretOrText, Strict
from alert_jobs.core.model import Severity

#: A pair's severity in SLO words, and the alert severity it routes as.
SEVERITIES: dict[str, Severity] = {"page": Severity.CRITICAL, "ticket": Severity.WARNING}


class BurnPair(Strict):
    """One multi-window condition: the error budget burns faster than ``factor`` × the
    sustainable rate over ``long`` AND over ``short`` (AND inside a pair, OR across
    pairs). Give ``factor`` or ``budget_percent`` (the share of the period's budget that
    burning at ``factor`` for ``long`` spends), not both."""

    long: Duration
    short: Duration
    factor: Annotated[float, Field(gt=0)] | None = None
    budget_percent: Annotated[float, Field(gt=0, le=100)] | None = None
    severity: Literal["page", "ticket"] = "page"

    @model_validator(mode="after")
    def _one_rate(self) -> BurnPair:
        if (self.factor is None) == (self.budget_percent is None):
            raise PydanticCustomError("burn", "give exactly one of factor or budget_percent")
        if self.short <= timedelta(0) or self.long <= timedelta(0):
            raise PydanticCustomError("burn", "long and short must be positive durations")
        if self.short >= self.long:
            raise PydanticCustomError(
                "burn", "the short window must be shorter than the long one (the Workbook "
                "uses 1/12 of it: 1h/5m, 6h/30m)")
        return self


def workbook_pairs() -> list[BurnPair]:
    """The Workbook's pairs, as budget percentages (so they scale with the period)."""
    return [
        BurnPair(long=timedelta(hours=1), short=timedelta(minutes=5), budget_percent=2,
                 severity="page"),
        BurnPair(long=timedelta(hours=6), short=timedelta(minutes=30), budget_percent=5,
                 severity="page"),
        BurnPair(long=timedelta(days=1), short=timedelta(hours=2), budget_percent=10,
                 severity="ticket"),
        BurnPair(long=timedelta(days=3), short=timedelta(hours=6), budget_percent=10,
                 severity="ticket"),
    ]


class SqlSli(Strict):
    """Event counts from any SQLAlchemy URL: one query over ``:window_start`` and
    ``:window_end`` (UTC, end exclusive) returning one row with columns named
    ``good, total`` or ``bad, total``. It runs once per new bucket (and over coarser
    buckets during a backfill), never over a whole long window."""

    database: SecretOrText
    query: str
    query_timeout: Duration = timedelta(seconds=30)

    @field_validator("query")
    @classmethod
    def _one_statement(cls, query: str) -> str:
        if not query.strip():
            raise PydanticCustomError("query", "query is empty")
        if ";" in query.strip().rstrip(";"):
            raise PydanticCustomError("query", "give exactly one SQL statement")
        return query


class PrometheusSli(Strict):
    """Event counts from Prometheus' HTTP API: ``total`` and one of ``good`` / ``bad``,
    PromQL expressions that give the number of events in the last ``{{window}}``
    (replaced by the bucket's length, e.g. ``sum(increase(http_requests_total[{{window}}]))``).
    A bucket is an instant query at its end; a backfill is a range query with the
    bucket as its step."""

    url: SecretOrText
    total: str
    good: str | None = None
    bad: str | None = None
    query_timeout: Duration = timedelta(seconds=30)
    #: Extra HTTP headers (e.g. ``Authorization: {env: PROM_TOKEN}``), never logged.
    headers: dict[str, SecretOrText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _good_or_bad(self) -> PrometheusSli:
        if (self.good is None) == (self.bad is None):
            raise PydanticCustomError("sli", "give exactly one of good or bad, with total")
        for expr in (self.total, self.good or self.bad or ""):
            if "{{window}}" not in expr:
                raise PydanticCustomError(
                    "sli", "each expression must count events over {{window}}, e.g. "
                    "sum(increase(http_requests_total[{{window}}]))")
        return self


class Sli(Strict):
    """Where the good and total event counts come from: ``sql`` or ``prometheus``."""

    sql: SqlSli | None = None
    prometheus: PrometheusSli | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Sli:
        if (self.sql is None) == (self.prometheus is None):
            raise PydanticCustomError("sli", "give exactly one of sql or prometheus")
        return self


class SloRule(RuleBase):
    """An SLO: ``objective`` percent of events good over ``period``.

    One alert per SLO: its severity is the highest pair that holds (page over ticket), it
    resolves when no pair holds. ``min_events`` is the fewest events a window must hold
    for its pair to fire (the Workbook's low-traffic caveat: one failure in ten requests
    must not page); a window with fewer is reported, not alerted on.
    """

    objective: Annotated[float, Field(gt=0, lt=100)]
    period: Duration = timedelta(days=30)
    sli: Sli
    pairs: list[BurnPair] = Field(default_factory=workbook_pairs)
    min_events: Annotated[int, Field(ge=0)] = 100
    #: Length of one stored bucket of counts: the source is read once per bucket.
    bucket: Duration = timedelta(minutes=1)
    #: How far back a new rule reads its history once (the period by default, so the
    #: budget is known from the first run); older buckets are read coarser.
    backfill: Duration | None = None
    #: What the service is called in messages ("Checkout availability").
    service: str = ""

    @model_validator(mode="after")
    def _windows(self) -> SloRule:
        if self.for_ > timedelta(0):
            raise PydanticCustomError(
                "slo", "an SLO has no `for:`: the short window of each pair does its job "
                "(the SRE Workbook advises against durations on burn-rate alerts)")
        if self.period not in (timedelta(days=30), timedelta(days=28)) and \
                self.period < timedelta(days=1):
            raise PydanticCustomError("slo", "period must be at least 1 day (30d or 28d usual)")
        if not self.pairs:
            raise PydanticCustomError("slo", "give at least one burn-rate pair")
        if not timedelta(seconds=10) <= self.bucket <= timedelta(hours=1):
            raise PydanticCustomError("slo", "bucket must be between 10s and 1h")
        for pair in self.pairs:
            if pair.long > self.period:
                raise PydanticCustomError("slo", "a pair's long window is longer than the "
                                          "period")
            if pair.short < self.bucket:
                raise PydanticCustomError("slo", "a pair's short window is shorter than one "
                                          "bucket")
        return self

    @property
    def budget_fraction(self) -> float:
        """The error budget as a fraction of events: 0.001 for 99.9."""
        return round((100 - self.objective) / 100, 12)


SECTION = RulesSection(family="slo", rule_model=SloRule, order=15)
