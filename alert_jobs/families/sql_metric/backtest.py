"""How ``alert-jobs rules backtest`` re-judges a stored sql_metric value with changed bounds.

``--set min=5``, ``max=``, ``resolve_min=``, ``resolve_max=``, and for a rule with a
single bound ``threshold=`` (or its severity: ``critical=`` / ``warning=``) change the
rule's expected range; the replay then judges each stored value with
:func:`~alert_jobs.families.sql_metric.check.judge`, hysteresis included.
"""

from __future__ import annotations

from collections.abc import Mapping

from alert_jobs.core.model import Observation
from alert_jobs.families.sql_metric.check import Bounds, bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.family import Rejudge

BOUND_KEYS = ("min", "max", "resolve_min", "resolve_max")
ALIASES = ("threshold", "critical", "warning")
THRESHOLD_KEYS = (*BOUND_KEYS, *ALIASES)


def changed_bounds(rule: SqlMetricRule, sets: Mapping[str, str]) -> Bounds:
    """The rule's bounds with ``sets`` applied; ValueError says what is wrong."""
    current = bounds_of(rule)
    values: dict[str, float | None] = {"min": current.min, "max": current.max,
                                       "resolve_min": current.resolve_min,
                                       "resolve_max": current.resolve_max}
    for key, text in sets.items():
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"--set {key}: expected a number, got {text!r}") from None
        if key in ALIASES:
            if key != "threshold" and key != str(rule.severity):
                raise ValueError(f"rule {rule.name!r} is a {rule.severity} rule; its bound "
                                 f"is {rule.severity}= (or threshold=, min=, max=)")
            sides = [k for k in ("min", "max") if values[k] is not None]
            if len(sides) != 1:
                raise ValueError(f"rule {rule.name!r} has both min and max; say which: "
                                 "--set min=… or --set max=…")
            key = sides[0]
        values[key] = number
    if values["min"] is not None and values["max"] is not None and values["min"] > values["max"]:
        raise ValueError(f"min ({values['min']}) is greater than max ({values['max']})")
    return Bounds(values["min"], values["max"], values["resolve_min"], values["resolve_max"])


def rejudge(rule: SqlMetricRule, sets: Mapping[str, str]) -> Rejudge:
    """The family's ``rejudge`` hook: a judge of stored values with ``sets`` applied."""
    bounds = changed_bounds(rule, sets)

    def judge_again(value: float, was_firing: bool) -> Observation:
        return judge(rule.name, value, bounds, subject=rule.name, window="",
                     was_firing=was_firing)

    return judge_again
