"""``alert-jobs rules test`` for ``sql_metric``: the rule's query answered by the test's
series instead of its database, everything else the family's real run.

Inputs (``docs/sql_metric.md#rule-tests``):

* ``values``: the query's number at each evaluation; a read of the window
  ``[t - window, t)`` sees ``values.at(t)``; ``_`` is no row (``nodata``), ``error`` /
  ``error(reason)`` a failed query (the rule's ``error`` observation, naming the reason);
* ``history`` (baseline rules only): the numbers before ``values`` starts, which the
  backfill's past-window queries read (at the window's end), usually
  ``{values: "1000x8063", start: -28d, interval: 5m}``.

Each step is :func:`~alert_jobs.families.sql_metric.run.evaluate_batch` with this
reader: the same judging, baseline backfill, learning and adoption, state in the
timeline's baseline tables, and ``process_batch`` into the engine. The rule's database
URL is never resolved. The backfill gets a budget large enough to finish in one step
(a rule test does not wait for the next tick to have its baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.core.errors import SourceError
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.run import BackfillBudget, ValueAt, evaluate_batch
from alert_jobs.runtime.baseline import BACKFILL_SECONDS
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, Series, TestClock, series_of
from alert_jobs.store import Timeline

#: The backfill queries one simulated step may make: every point of a year of minutes.
SIMULATED_BACKFILL_QUERIES = 600_000


class SimulatedQuery:
    """One ``sql_metric`` rule whose query reads the test's series."""

    def __init__(self, rule: SqlMetricRule, values: Series, history: Series | None = None):
        self.rule, self.values, self.history = rule, values, history
        self._values_start = values.points[0].at if values.points else None

    def value_at(self, start: datetime, end: datetime) -> float | None:
        """The query over ``[start, end)``: the series at ``end`` (``history`` before
        ``values`` starts); ``error`` raises the :class:`SourceError` a failed query does."""
        series = self.values
        if self.history is not None and (self._values_start is None
                                         or end < self._values_start):
            series = self.history
        point = series.at(end)
        if point.error is not None:
            raise SourceError(point.error)
        return point.number

    def reader(self, rule: SqlMetricRule) -> ValueAt:
        return self.value_at

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        budget = BackfillBudget(queries=SIMULATED_BACKFILL_QUERIES, rules=1,
                                seconds=BACKFILL_SECONDS, per_rule=SIMULATED_BACKFILL_QUERIES)
        return evaluate_batch(rules, [self.rule], timeline, now=now, run_id=None,
                              read=self.reader, budget=budget)


def simulate(rule: SqlMetricRule, inputs: Mapping[str, Any], clock: TestClock
             ) -> SimulatedQuery:
    """The family's ``simulate`` hook (:class:`~alert_jobs.runtime.simulation.Simulate`)."""
    learned = rule.expect.baseline is not None
    allowed = ("values", "history") if learned else ("values",)
    for key in inputs:
        if key not in allowed:
            if key == "history":
                raise InputError((key,), "history is the past of a learned baseline; this "
                                 "rule has no expect.baseline (give only values)")
            raise InputError((key,), f"unknown key {key!r}: a sql_metric rule's input is "
                             f"values (the query's number at each evaluation)"
                             + (" and history (the numbers before values starts, for the "
                                "baseline's backfill)" if learned else ""))
    if "values" not in inputs:
        raise InputError((), "a sql_metric rule's input needs values: the query's number at "
                         "each evaluation, e.g. values: \"10x5 50x10\" (_ for no row, "
                         "error(timeout) for a failed query)")
    values = series_of(inputs["values"], clock, ("values",))
    history = series_of(inputs["history"], clock, ("history",)) if "history" in inputs \
        else None
    return SimulatedQuery(rule, values, history)
