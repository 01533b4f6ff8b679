"""The stateful baseline judge ``rules backtest`` replays a baseline rule with.

Pure: values in, observations out (the replay over a real timeline is in
``tests/families/quality/test_baseline_backtest.py``). The demo's own orders (the feed's
generator) are the seasonal series: hourly counts every 5 minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.config import load_rules
from alert_jobs.core.model import Status
from alert_jobs.demo import feed
from alert_jobs.families.sql_metric.backtest import BaselineJudge, FixedJudge, rejudge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from tests.conftest import ROOT

T0 = datetime(2026, 3, 10, 14, 2, tzinfo=UTC)
STEP = timedelta(minutes=5)


def _orders_rule() -> SqlMetricRule:
    rule = load_rules(ROOT / "alerts.yaml").rule("orders_last_hour")
    assert isinstance(rule, SqlMetricRule)
    return rule.model_copy(update={"timezone": "UTC"})


def _hourly_orders(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """(t, orders in [t - 1h, t)) every 5 minutes, as the rule's query counts them."""
    first = start - timedelta(hours=1)
    minute0 = int(first.timestamp()) // 60 + 1
    counts = [feed.order_count(feed.EPOCH + timedelta(minutes=m))
              for m in range(minute0, int(end.timestamp()) // 60 + 1)]
    out, t = [], start
    while t <= end:
        lo = int((t - timedelta(hours=1)).timestamp()) // 60 + 1 - minute0
        hi = int(t.timestamp()) // 60 + 1 - minute0
        out.append((t, float(sum(counts[lo:hi]))))
        t += STEP
    return out


def _firings(judge: object, series: list[tuple[datetime, float]], since: datetime) -> int:
    """Alerts that last 3 evaluations (the demo rule's `for: 10m`) at or after ``since``."""
    assert callable(judge)
    run = fired = 0
    for at, value in series:
        status = judge(value, run > 0, at).status
        run = run + 1 if status == Status.ALERT else 0
        fired += at >= since and run == 3
    return fired


@pytest.fixture(scope="module")
def orders() -> list[tuple[datetime, float]]:
    return _hourly_orders(T0 - timedelta(days=28), T0 + timedelta(days=14))


def test_the_demo_settings_stay_quiet_on_two_weeks_of_demo_orders(orders) -> None:
    """docs/baseline.md: the demo rule's settings fire nothing on its seasonal orders;
    without the floor the same width fires (the positive control)."""
    rule = _orders_rule()
    assert _firings(rejudge(rule, {}), orders, T0) == 0
    assert _firings(rejudge(rule, {"floor": "0"}), orders, T0) > 0
    assert _firings(rejudge(rule, {"floor": "0", "width": "2"}), orders, T0) > \
        _firings(rejudge(rule, {"floor": "0"}), orders, T0)


def test_the_judge_learns_in_time_order_and_starts_learning(orders) -> None:
    """Fed from the start of the history, the first values are `nodata` (learning), then
    the slot holds `min_points` and the judge gives a band: it learned from its input."""
    judge = rejudge(_orders_rule(), {})
    assert isinstance(judge, BaselineJudge) and judge.history == timedelta(days=28)
    first = judge(orders[0][1], False, orders[0][0])
    assert first.status == Status.NODATA and first.learning
    assert "learning: 0 of 20 points" in first.summary
    week = [judge(v, False, at) for at, v in orders if at < orders[0][0] + timedelta(days=21)]
    assert week[-1].status == Status.OK and week[-1].details["points"] >= 20


def test_backfilled_points_give_a_baseline_from_the_first_value(orders) -> None:
    judge = rejudge(_orders_rule(), {})
    judge.learn([(at, v) for at, v in orders if at < T0])
    at, value = next((at, v) for at, v in orders if at >= T0)
    obs = judge(value, False, at)
    assert obs.status == Status.OK and obs.details["points"] >= 40  # (4 weeks, clipped)
    assert obs.summary.startswith("Expected orders in the last hour to be about ")


def test_alerts_are_left_out_and_a_lasting_level_is_adopted() -> None:
    """A flat series at 100 that drops to 50: the drop alerts, its values are not learned
    (the band stays at 100), and after ``adopt_after`` the new level is adopted."""
    rule = _orders_rule()
    judge = rejudge(rule, {"season": "none", "history": "2d", "min_points": "5",
                           "floor": "5", "adopt_after": "6h"})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [(start + i * STEP, 100.0 + (i % 5) - 2) for i in range(288)]  # a day at 100
    steps += [(start + (288 + i) * STEP, 50.0) for i in range(144)]  # 12 h at 50
    firing, statuses = False, []
    for at, value in steps:
        obs = judge(value, firing, at)
        firing = obs.status == Status.ALERT or (firing and obs.status != Status.OK)
        statuses.append((at, obs.status, obs.details.get("expected_value")))
    drop = [s for s in statuses if s[0] >= start + 288 * STEP]
    assert drop[0][1] == Status.ALERT and drop[0][2] == pytest.approx(100, abs=2)
    assert drop[10][1] == Status.ALERT and drop[10][2] == pytest.approx(100, abs=2)
    adopted = next(i for i, s in enumerate(drop) if s[1] == Status.OK)
    assert timedelta(hours=6) <= adopted * STEP <= timedelta(hours=6, minutes=5)
    assert drop[-1][1] == Status.OK and drop[-1][2] == pytest.approx(50, abs=2)
    # Positive control: never adopting keeps alerting.
    never = rejudge(rule, {"season": "none", "history": "2d", "min_points": "5",
                           "floor": "5", "adopt_after": "never"})
    tail = [never(v, True, at).status for at, v in steps][-10:]
    assert set(tail) == {Status.ALERT}


def test_set_values_are_validated_like_the_rules_file() -> None:
    rule = _orders_rule()
    assert isinstance(rejudge(rule, {"width": "4"}), BaselineJudge)
    for sets, message in (({"width": "0"}, "width"), ({"season": "hour_of_month"}, "season"),
                          ({"history": "3d"}, "at least 7d"), ({"min_points": "x"},
                                                               "min_points")):
        with pytest.raises(ValueError, match=message):
            rejudge(rule, sets)
    fixed = rule.model_copy(update={"expect": rule.expect.model_copy(
        update={"baseline": None, "min": 1.0})})
    assert isinstance(rejudge(fixed, {"min": "5"}), FixedJudge)
    with pytest.raises(ValueError, match=r"has no expect\.baseline"):
        rejudge(fixed, {"width": "4"})
