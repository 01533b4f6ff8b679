"""The threshold the monthly review suggests for a rule under ``quality.min_actionable``.

Reads the rule's stored evaluations and episodes of the month (as ``alert-jobs rules
backtest`` does) and hands them to the pure
:func:`~alert_jobs.families.quality.backtest.best_threshold`, which replays them with
the rule's ``max`` raised (or ``min`` lowered) through the family's own judge: "threshold
max 120 → 180 would have kept 4 of 4 actionable episodes and dropped 9 of 11 noisy
ones". When it cannot suggest one it says why, so the review never just stays silent
about a noisy rule.

A rule with a learned baseline gets its width backtested instead
(:func:`~alert_jobs.families.quality.review.width_suggestions`); a family without a
``rejudge`` hook or without ``min``/``max`` among its ``threshold_keys`` has no fixed
threshold the review can move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.families.quality.backtest import (
    THRESHOLD_SIDES,
    Judge,
    ThresholdChoice,
    best_threshold,
    effective,
    rejudged,
)
from alert_jobs.families.quality.check import QualityRow
from alert_jobs.families.quality.questions import ThresholdFinding
from alert_jobs.runtime.family import Rejudge
from alert_jobs.store import Timeline


def current_bounds(rule: Any, keys: tuple[str, ...]) -> dict[str, float]:
    """The rule's fixed bounds the family can change (``expect.max``/``expect.min``)."""
    expect = getattr(rule, "expect", None)
    out = {}
    for key in THRESHOLD_SIDES:
        value = getattr(expect, key, None)
        if key in keys and isinstance(value, int | float):
            out[key] = float(value)
    return out


def threshold_finding(rules: RulesFile, timeline: Timeline, row: QualityRow,
                      start: datetime, end: datetime) -> ThresholdFinding:
    """The backtested threshold of ``row``'s rule over ``[start, end)``, or why none."""
    from alert_jobs.families.quality.stored import load_history
    from alert_jobs.runtime.evaluate import policy_for
    from alert_jobs.runtime.family import family_of

    if row.actionable == 0:
        return ThresholdFinding(None, "no actionable episode: consider deleting")
    try:
        rule = effective(rules, rules.rule(row.rule))
    except KeyError:
        return ThresholdFinding(None, "the rule is no longer in the rules file")
    family = family_of(rule)
    if getattr(getattr(rule, "expect", None), "baseline", None) is not None:
        return ThresholdFinding(None, "a baseline rule (its width is backtested instead)")
    make = family.rejudge
    bounds = current_bounds(rule, family.threshold_keys)
    if make is None or not bounds:
        return ThresholdFinding(None, f"a {family.name} rule has no fixed threshold to "
                                      "backtest")
    evals, episodes = load_history(timeline, rule.name, start, end)
    if not any(e.value is not None for e in evals):
        return ThresholdFinding(None, "no stored values this month to replay")
    base = replace(policy_for(rules, rule), enabled=True)
    choices = []
    for key, current in bounds.items():
        choice = best_threshold(evals, episodes, base, key=key, current=current,
                                judge_for=_judges(rule, make, key), end=end, since=start)
        if choice is not None:
            choices.append(choice)
    if not choices:
        return ThresholdFinding(None, "no threshold keeps every actionable episode and "
                                      "drops a noisy one")
    return ThresholdFinding(_most_noise_dropped(choices))


def _judges(rule: Any, make: Callable[[Any, Mapping[str, str]], Rejudge], key: str
            ) -> Callable[[float], Judge]:
    """``bound → judge``: the stored values judged with ``key`` set to the bound."""
    return lambda bound: rejudged(rule.name, lambda: make(rule, {key: repr(bound)}))


def _most_noise_dropped(choices: list[ThresholdChoice]) -> ThresholdChoice:
    """Of a rule with both bounds, the side that drops the most noise (max on a tie)."""
    return max(choices, key=lambda c: (c.result.noisy_dropped, c.key == "max"))
