"""How ``alert-jobs rules backtest`` re-judges stored sql_metric values with changed settings.

Fixed bounds: ``--set min=5``, ``max=``, ``resolve_min=``, ``resolve_max=``, and for a
rule with a single bound ``threshold=`` (or its severity: ``critical=`` / ``warning=``)
change the rule's expected range; each stored value is judged again with
:func:`~alert_jobs.families.sql_metric.check.judge`, hysteresis included.

Baselines (``expect.baseline``): ``--set width=5`` (and ``min_points``, ``season``,
``history``, ``direction``, ``floor``, ``adopt_after``) change how the expected range is
learned. A baseline's judgement depends on the values before it, so the judge of one
alert instance is *stateful*: fed the instance's values in time order, it learns from
them as the runtime would have with those settings — the slot's points
(:func:`~alert_jobs.core.baseline.slot_ranges`) of the values it kept, leaving out those
it judged alerts, at today's level from the last hours, and adopting a level shift the
way the runtime does (:class:`~alert_jobs.core.baseline.Learner`).
The backtest feeds it ``history`` of evaluations (and the rule's backfilled points)
before the period it reports on, so it has a baseline from the first value that counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from alert_jobs.config import Baseline
from alert_jobs.core.baseline import Learner, Point
from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.sql_metric.check import Bounds, bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.family import Rejudge

BOUND_KEYS = ("min", "max", "resolve_min", "resolve_max")
ALIASES = ("threshold", "critical", "warning")
BASELINE_KEYS = ("width", "min_points", "season", "history", "direction", "floor",
                 "adopt_after")
THRESHOLD_KEYS = (*BOUND_KEYS, *ALIASES, *BASELINE_KEYS)


def changed_bounds(rule: SqlMetricRule, sets: Mapping[str, str]) -> Bounds:
    """The rule's bounds with ``sets`` applied; ValueError says what is wrong."""
    current = bounds_of(rule)
    values: dict[str, float | None] = {"min": current.min, "max": current.max,
                                       "resolve_min": current.resolve_min,
                                       "resolve_max": current.resolve_max}
    for key, text in sets.items():
        if key in BASELINE_KEYS:
            continue
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


def changed_baseline(rule: SqlMetricRule, sets: Mapping[str, str]) -> Baseline | None:
    """The rule's ``expect.baseline`` with the baseline keys of ``sets`` applied (validated
    as the rules file would be); ValueError says what is wrong."""
    changes = {k: v for k, v in sets.items() if k in BASELINE_KEYS}
    spec = rule.expect.baseline
    if not changes:
        return spec
    if spec is None:
        key = next(iter(changes))
        raise ValueError(f"rule {rule.name!r} has no expect.baseline: --set {key}= changes "
                         "a baseline rule's settings")
    data: dict[str, Any] = spec.model_dump()
    for key, text in changes.items():
        data[key] = None if key == "adopt_after" and text.lower() in ("null", "never") \
            else text
    try:
        return Baseline.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'baseline'}: {e['msg']}"
                             for e in exc.errors())
        raise ValueError(f"--set: {problems}") from None


class FixedJudge:
    """Fixed bounds: each value is judged on its own (nothing to learn)."""

    history = timedelta(0)

    def __init__(self, rule: SqlMetricRule, bounds: Bounds):
        self.rule, self.bounds = rule, bounds

    def learn(self, points: Sequence[tuple[datetime, float]]) -> None:
        """Fixed bounds learn nothing."""

    def __call__(self, value: float, was_firing: bool, at: datetime) -> Observation:
        return judge(self.rule.name, value, self.bounds, subject=self.rule.name, window="",
                     was_firing=was_firing)


class BaselineJudge:
    """One alert instance's baseline, learned from the values it is fed in time order:
    :class:`alert_jobs.core.baseline.Learner` (the runtime's evaluation in memory),
    with the rule's fixed bounds beside it. A value any bound alerted on is left out of
    the history, as the runtime's query leaves out evaluations with status ``alert``."""

    def __init__(self, rule: SqlMetricRule, bounds: Bounds, spec: Baseline):
        self.rule, self.bounds, self.spec = rule, bounds, spec
        self.learner = Learner(spec.settings(), rule.timezone or "UTC")
        self.subject = rule.description or rule.name.replace("_", " ")
        self.window = format_duration(rule.window)

    @property
    def history(self) -> timedelta:
        return self.spec.history

    def learn(self, points: Sequence[tuple[datetime, float]]) -> None:
        self.learner.learn([Point(at, value) for at, value in points])

    def __call__(self, value: float, was_firing: bool, at: datetime) -> Observation:
        assessment = self.learner.assess(value, at)
        observation = judge(self.rule.name, value, self.bounds, subject=self.subject,
                            window=self.window, was_firing=was_firing, baseline=assessment)
        self.learner.record(at, value, assessment.band.expected if assessment.band else None,
                            alerting=observation.status == Status.ALERT)
        return observation


def rejudge(rule: SqlMetricRule, sets: Mapping[str, str]) -> Rejudge:
    """The family's ``rejudge`` hook: a judge of one alert instance's stored values with
    ``sets`` applied (stateful for a baseline rule; call it once per instance)."""
    bounds = changed_bounds(rule, sets)
    spec = changed_baseline(rule, sets)
    if spec is None:
        return FixedJudge(rule, bounds)
    return BaselineJudge(rule, bounds, spec)
