"""KS breaches only when it is also unlikely by chance at the sample size: a calm model
scored 240 times an hour must not warn because its hour happened to differ by KS 0.11
from a week of 40,000 scores; the same difference over thousands of scores does."""

from __future__ import annotations

import numpy as np

from alert_jobs.config import parse_rules
from alert_jobs.core.model import Severity, Status
from alert_jobs.families.score_drift.check import Grid, compare, histogram_from_values
from alert_jobs.families.score_drift.config import ScoreDriftRule
from alert_jobs.families.score_drift.judge import KS_ALPHA, Frame, judge_distribution

RULE = parse_rules("""
checks:
  score_drift:
    - {name: model_scores, database: 'sqlite:///x.db', table: s, time_column: t,
       score_column: score, min_samples: 100,
       psi: {warn: 0.5, critical: 1.0}, mean_shift: null, std_ratio: null}
""").rule("model_scores")  # KS alone decides here
FRAME = Frame("churn-v1 scores", "1 h", "the previous 7 days", {"model": "churn-v1"})
GRID = Grid()


def _judge(current: np.ndarray, reference: np.ndarray):
    assert isinstance(RULE, ScoreDriftRule)
    ref = histogram_from_values(reference, GRID)
    cur = histogram_from_values(current, GRID)
    return judge_distribution(RULE, FRAME, ref, cur, compare(ref, cur))


def _shifted(rng: np.random.Generator, n: int) -> np.ndarray:
    """Beta(2, 8) nudged up a little: KS ≈ 0.11 against the plain one."""
    return np.clip(rng.beta(2, 8, n) + 0.03, 0, 1)


def test_a_small_hour_s_chance_difference_does_not_breach_ks() -> None:
    rng = np.random.default_rng(13)
    reference = rng.beta(2, 8, 40_000)
    small = _judge(_shifted(rng, 240), reference)
    assert 0.1 <= small.details["ks"] < 0.126  # over the configured warning (0.1) …
    assert small.details["ks_p"] >= KS_ALPHA  # … but as large as chance makes it
    assert small.status == Status.OK and "Over the limit" not in small.summary
    # the same difference over 5,000 scores is no chance: it breaches (positive control)
    large = _judge(_shifted(rng, 5_000), reference)
    assert large.details["ks_p"] < KS_ALPHA and large.details["ks"] >= 0.1
    assert large.status == Status.ALERT and large.severity == Severity.WARNING
    assert "KS 0.1" in large.summary.split("Over the limit")[-1]


def test_a_real_drift_at_240_scores_still_breaches_ks() -> None:
    rng = np.random.default_rng(8)
    reference = rng.beta(2, 8, 40_000)
    half_high = np.where(rng.random(240) < 0.5, rng.uniform(0.9, 1.0, 240),
                         rng.beta(2, 8, 240))  # the demo's fraud-v3
    obs = _judge(half_high, reference)
    assert obs.details["ks"] > 0.4 and obs.details["ks_p"] < 1e-20
    assert obs.status == Status.ALERT and "KS 0.4" in obs.summary.split("Over the limit")[-1]
