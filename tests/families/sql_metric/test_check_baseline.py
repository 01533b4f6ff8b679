"""sql_metric's judge with a baseline: both must hold, learning is quiet, the message is
the standard's and the details say which bound was crossed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_jobs.core.baseline import Point, Settings, assess
from alert_jobs.core.engine import RulePolicy, evaluate
from alert_jobs.core.model import NoDataPolicy, Observation, Status
from alert_jobs.families.sql_metric.check import Bounds, judge

NOW = datetime(2026, 11, 24, 14, 7, tzinfo=UTC)
HISTORY = [Point(NOW - timedelta(weeks=1 + i % 4, minutes=i), 1200 + (i % 7 - 3) * 20)
           for i in range(48)]


NO_BOUNDS = Bounds()


def _judge(value: float | None, bounds: Bounds = NO_BOUNDS,
           history: list[Point] = HISTORY) -> Observation:
    a = assess(value if value is not None else 0.0, history, Settings(), now=NOW,
               timezone="UTC")
    return judge("orders_last_hour", value, bounds, subject="orders", window="1 hour",
                 baseline=a)


def test_a_dip_is_an_alert_in_the_standard_s_words() -> None:
    obs = _judge(310)
    assert obs.status == Status.ALERT
    assert obs.summary.startswith("Expected orders in the last hour to be about 1,200 (")
    assert obs.summary.endswith("from the same hour of the week over the last 4 weeks), got 310")
    assert obs.details["crossed"] == "lower" and obs.details["expected_value"] == 1200
    assert obs.value == 310.0


def test_inside_the_band_is_ok_positive_control_for_the_dip() -> None:
    obs = _judge(1210)
    assert obs.status == Status.OK and obs.details["crossed"] is None


def test_a_fixed_bound_still_holds_beside_the_baseline() -> None:
    obs = _judge(1210, Bounds(max=1000))
    assert obs.status == Status.ALERT and obs.details["crossed"] == "max"
    assert "to be at most 1,000" in obs.summary and "got 1,210" in obs.summary
    assert obs.expected.endswith("and to be at most 1,000")


def test_learning_is_a_quiet_nodata_that_keeps_the_value() -> None:
    obs = _judge(5000, history=HISTORY[:5])
    assert obs.status == Status.NODATA and obs.learning and obs.value == 5000.0
    assert obs.summary.endswith("got 5,000 (learning: 5 of 20 points for Tuesday 14:00)")
    # the engine never pages for it, even with `nodata: alert` …
    policy = RulePolicy(rule="orders_last_hour", nodata=NoDataPolicy.ALERT)
    decision = evaluate(obs, None, policy, NOW)
    assert decision.record.state == "inactive" and not decision.notifications
    # … while a fixed bound crossed during learning does (positive control)
    loud = _judge(5000, Bounds(max=1000), history=HISTORY[:5])
    assert loud.status == Status.ALERT
    assert evaluate(loud, None, policy, NOW).record.state == "firing"


def test_no_value_is_nodata_naming_what_was_expected() -> None:
    obs = _judge(None)
    assert obs.status == Status.NODATA and not obs.learning and obs.value is None
    assert obs.summary.startswith("Expected orders in the last hour to be about 1,200")
    assert obs.summary.endswith("but the query returned no value (no row, or NULL)")
