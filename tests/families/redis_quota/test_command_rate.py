"""The command rate against a learned baseline, on a real Redis: quiet while learning,
an alert with the standard's sentence when a loop runs away, and the metadata."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alert_jobs.core.model import Status
from alert_jobs.families.redis_quota.run import check_target
from alert_jobs.store import Timeline
from tests.families.redis_quota.test_redis_quota import NOON, load, rules_for, target

BASELINE = "{baseline: {season: none, history: 1d, min_points: 5, floor: 0.5}}"  # width 4


def _rate(result: Any) -> Any:
    return next(o for o in result.outcomes if o.observation.labels.get("check") == "command_rate")


def test_a_runaway_loop_breaks_the_learned_rate_after_a_quiet_learning_phase(
        redis_factory: Any, db_url: str) -> None:
    server = redis_factory()
    client = server.client()
    rules = rules_for(target("cache", server.url, command_rate=BASELINE))
    rule = rules.rule("cache")
    timeline = Timeline(db_url)
    timeline.upgrade()
    seen = []
    for i in range(9):  # a steady ~1 command/s, checked every 5 minutes
        load(client, 300)
        result = check_target(rules, rule, timeline, now=NOON + timedelta(minutes=5 * i))
        seen.append(_rate(result))
    first = seen[0].observation
    assert first.status == Status.NODATA and first.learning and "rate not yet known" in \
        first.summary
    learning = seen[2].observation
    assert learning.status == Status.NODATA and learning.learning
    assert "(learning: 1 of 5 points for any time)" in learning.summary
    assert all(o.result.decision.record.state == "inactive" for o in seen)  # never paged
    steady = seen[-1].observation
    assert steady.status == Status.OK, steady.summary
    assert 0.5 < steady.value < 3  # 300 commands (+ the monitor's INFO) in 300 s
    # today's level needs 6 recent evaluations that had a band; 2 so far: none applied
    assert steady.details["level"] == 1.0 and steady.details["points"] == 7.0
    load(client, 60_000)  # a loop: ~200 commands/s for 5 minutes
    burst = check_target(rules, rule, timeline, now=NOON + timedelta(minutes=45))
    rate = _rate(burst)
    obs = rate.observation
    assert obs.status == Status.ALERT and rate.result.decision.record.state == "firing"
    assert obs.summary.startswith("Expected commands per second on cache in the last hour "
                                  "to be about ")
    assert "from the last day), got " in obs.summary
    assert obs.details["crossed"] == "upper"
    assert burst.metrics["command_rate_upper"] - burst.metrics["command_rate_expected"] == \
        pytest.approx(max(4 * obs.details["spread"], 0.5))  # the default width: 4
    m = burst.metrics
    assert m["command_rate_expected"] < m["command_rate_upper"] < obs.value
    assert "command_rate_lower" in m  # direction both: both bounds plot
