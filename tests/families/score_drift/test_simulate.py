"""A score_drift rule in a rule test: hand-written reference and current distributions go
through the family's real check (reference build and store, PSI/KS judging, the engine)
on a simulated clock, with only the histogram reads replaced (``simulate`` hook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import Status
from alert_jobs.families.score_drift import FAMILY
from alert_jobs.families.score_drift.config import ScoreDriftRule
from alert_jobs.families.score_drift.store import ALL_HOURS, DriftReferenceStore
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, TestClock
from alert_jobs.store import Timeline

START = datetime(2026, 1, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)
RULES = parse_rules("""
defaults: {receivers: [console]}
checks:
  score_drift:
    - name: fraud_scores
      database: "sqlite://"
      table: scores
      time_column: ts
      score_column: score
      feature_columns: [amount]
    - name: per_model
      database: "sqlite://"
      table: scores
      time_column: ts
      score_column: score
      segment_columns: [model]
""")
NORMAL = [100, 200, 400, 200, 100]  # 1,000 scores, centred on 0.5
SHIFTED = [10, 40, 150, 400, 400]  # the same number, pushed up


@pytest.fixture
def timeline(tmp_path: Path) -> Timeline:
    tl = Timeline(f"sqlite:///{tmp_path / 'test.db'}")
    tl.upgrade()
    return tl


def rule_of(rules: RulesFile, name: str) -> ScoreDriftRule:
    (rule,) = [r for r in rules.rules_of(ScoreDriftRule) if r.name == name]
    return rule


def run(timeline: Timeline, name: str, inputs: dict[str, Any], steps: int,
        every: timedelta = 10 * MIN) -> dict[int, list[RuleOutcome]]:
    """Outcomes of the distribution check at each step (``every`` apart)."""
    sim = FAMILY.simulate(rule_of(RULES, name), inputs, TestClock(START, every))
    out: dict[int, list[RuleOutcome]] = {}
    since = None
    for k in range(steps + 1):
        now = START + k * every
        out[k] = [o for o in sim.step(RULES, timeline, now=now, since=since)
                  if o.observation.labels.get("check") == "distribution"]
        since = now
    return out


def status(outcomes: list[RuleOutcome]) -> tuple[Status, str]:
    (one,) = outcomes
    return one.observation.status, str(one.state)


def test_a_shifted_distribution_is_a_psi_alert_and_the_same_one_is_not(
        timeline: Timeline) -> None:
    seen = run(timeline, "fraud_scores", {
        "reference": {"bins": NORMAL},
        "current": [{"from": "0m", "bins": NORMAL}, {"from": "30m", "bins": SHIFTED}]}, 5)
    for k in range(3):  # the same distribution: PSI 0, nothing fires
        assert status(seen[k]) == (Status.OK, "inactive")
        assert "PSI of fraud_scores scores in the last 1 h is 0.00" in \
            seen[k][0].observation.summary
    for k in (3, 4, 5):  # shifted from 30m on: the positive control
        obs = seen[k][0].observation
        assert status(seen[k]) == (Status.ALERT, "firing")
        assert obs.value is not None and obs.value > 0.25
        assert f"is {obs.value:.2f}" in obs.summary and "PSI" in obs.summary
        assert str(obs.severity) == "critical"
    # volume, invalid scores, null rates, high scores: judged, and quiet
    assert [a.labels["check"] for a in timeline.alerts.list()] == ["distribution"]
    # the reference was built through the real path and stored
    (slot,) = DriftReferenceStore(timeline).load("fraud_scores", "", [ALL_HOURS])
    assert slot.histogram.valid == 1000


def test_scores_in_series_notation(timeline: Timeline) -> None:
    ramp = "0.2+0.0003x1999"  # 2,000 scores from 0.2 to 0.8
    seen = run(timeline, "fraud_scores", {
        "reference": {"scores": ramp, "nulls": 10},
        "current": [{"from": "0m", "scores": ramp},
                    {"from": "20m", "scores": "0.5+0.0002x1999 _x5"}]}, 2)
    assert status(seen[1]) == (Status.OK, "inactive")
    assert status(seen[2]) == (Status.ALERT, "firing")


def test_a_failing_current_read_is_an_error_alert(timeline: Timeline) -> None:
    seen = run(timeline, "fraud_scores", {
        "reference": {"bins": NORMAL},
        "current": [{"from": "0m", "bins": NORMAL}, {"from": "20m", "error": "timeout"}]}, 2)
    assert status(seen[1]) == (Status.OK, "inactive")
    obs = seen[2][0].observation
    assert obs.status == Status.ERROR and "timeout" in obs.summary
    assert "fraud_scores" in obs.summary


def test_a_failing_reference_build_is_an_error_alert(timeline: Timeline) -> None:
    seen = run(timeline, "fraud_scores", {
        "reference": [{"from": "-1d", "error": "permission_denied"},
                      {"from": "15m", "bins": NORMAL}],
        "current": {"bins": NORMAL}}, 2)
    obs = seen[0][0].observation
    assert obs.status == Status.ERROR and "permission_denied" in obs.summary
    assert str(seen[0][0].state) == "firing"
    assert status(seen[2]) == (Status.OK, "resolved")  # built once it could be read


def test_the_reference_is_rebuilt_when_its_schedule_fires(timeline: Timeline) -> None:
    """reference_schedule 03:00: the shifted scores become normal after the rebuild."""
    seen = run(timeline, "fraud_scores", {
        "reference": [{"from": "-7d", "bins": NORMAL}, {"from": "2h", "bins": SHIFTED}],
        "current": {"bins": SHIFTED}}, 4, every=timedelta(hours=1))
    assert [status(seen[k])[0] for k in range(5)] == [Status.ALERT] * 3 + [Status.OK] * 2


def test_one_segment_of_a_segmented_rule(timeline: Timeline) -> None:
    seen = run(timeline, "per_model", {
        "segment": "fraud-v3", "reference": {"bins": NORMAL},
        "current": [{"from": "0m", "bins": NORMAL}, {"from": "10m", "bins": SHIFTED}]}, 1)
    assert status(seen[0]) == (Status.OK, "inactive")
    assert status(seen[1]) == (Status.ALERT, "firing")
    assert seen[1][0].observation.labels["model"] == "fraud-v3"


@pytest.mark.parametrize(("name", "inputs", "path", "words"), [
    ("fraud_scores", {"current": {"bins": NORMAL}}, (), "missing reference"),
    ("fraud_scores", {"reference": {"bins": NORMAL}, "current": {"bins": [1, 2, 3]}},
     ("current", "bins"), "divide"),
    ("fraud_scores", {"reference": {"bins": NORMAL, "scores": "0.1"}, "current": {"bins": [1]}},
     ("reference",), "exactly one of scores or bins"),
    ("fraud_scores", {"reference": {"bins": NORMAL}, "current": {"scores": "0.1 nope"}},
     ("current", "scores"), "not a series term"),
    ("fraud_scores", {"reference": {"bins": NORMAL}, "current": [{"bins": NORMAL}]},
     ("current", 0), "needs from"),
    ("fraud_scores", {"reference": {"bins": NORMAL, "from": "1m"}, "current": {"bins": [1]}},
     ("reference", "from"), "unknown key"),
    ("fraud_scores", {"reference": {"bins": [5, -1]}, "current": {"bins": [1]}},
     ("reference", "bins", 1), "whole number"),
    ("fraud_scores", {"reference": {"bins": NORMAL, "feature_nulls": {"age": 3}},
                      "current": {"bins": [1]}},
     ("reference", "feature_nulls", "age"), "feature_columns"),
    ("fraud_scores", {"reference": {"bins": NORMAL}, "current": {"bins": [1]},
                      "segment": "a"}, ("segment",), "no segment_columns"),
    ("per_model", {"reference": {"bins": NORMAL}, "current": {"bins": [1]}}, (),
     "segment_columns"),
])
def test_bad_inputs_name_the_key(name: str, inputs: dict[str, Any], path: tuple[Any, ...],
                                 words: str) -> None:
    with pytest.raises(InputError) as err:
        FAMILY.simulate(rule_of(RULES, name), inputs, TestClock(START, MIN))
    assert err.value.path == path
    assert words in err.value.reason
