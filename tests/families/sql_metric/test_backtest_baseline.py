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
    """docs/baseline.md: the demo rule's settings (the defaults: width 4, today's level,
    the Poisson floor; `for: 10m`) fire nothing on two weeks of its seasonal orders, with
    no `floor`; a narrower band on the same values fires (the positive control)."""
    rule = _orders_rule()
    spec = rule.expect.baseline
    assert spec is not None and spec.width == 4 and spec.floor == 0
    assert _firings(rejudge(rule, {}), orders, T0) == 0
    assert _firings(rejudge(rule, {"width": "2"}), orders, T0) > 0


def test_the_judge_learns_in_time_order_and_starts_learning(orders) -> None:
    """Fed from the start of the history, the first values are `nodata` (learning), then
    the slot holds `min_points` and the judge gives a band: it learned from its input."""
    judge = rejudge(_orders_rule(), {})
    assert isinstance(judge, BaselineJudge) and judge.history == timedelta(days=28)
    first = judge(orders[0][1], False, orders[0][0])
    assert first.status == Status.NODATA and first.learning
    assert "learning: 0 of 20 points" in first.summary
    three_weeks = [judge(v, False, at) for at, v in orders[1:]
                   if at < orders[0][0] + timedelta(days=21)]
    assert three_weeks[-1].status == Status.OK and three_weeks[-1].details["points"] >= 20
    with pytest.raises(ValueError, match="time order"):
        judge(orders[0][1], False, orders[0][0])


def test_backfilled_points_give_a_baseline_from_the_first_value(orders) -> None:
    judge = rejudge(_orders_rule(), {})
    judge.learn([(at, v) for at, v in orders if at < T0])
    at, value = next((at, v) for at, v in orders if at >= T0)
    obs = judge(value, False, at)
    assert obs.status == Status.OK and obs.details["points"] >= 40  # (4 weeks, clipped)
    assert obs.summary.startswith("Expected orders in the last hour to be about ")


FLAT = {"season": "none", "history": "2d", "min_points": "5", "adopt_after": "6h"}


def _replay(judge: object, steps: list[tuple[datetime, float]]
            ) -> list[tuple[datetime, Status, float | None]]:
    """(at, status, expected) of each value, ``was_firing`` as the engine keeps it
    (`for: 0m`, no `keep_firing_for`)."""
    assert callable(judge)
    firing, out = False, []
    for at, value in steps:
        obs = judge(value, firing, at)
        firing = obs.status == Status.ALERT
        out.append((at, obs.status, obs.details.get("expected_value")))
    return out


def test_alerts_are_left_out_and_a_lasting_level_is_adopted_by_the_sign_test() -> None:
    """A count around 100 that halves: the drop alerts and its values are not learned
    (neither into the slot nor into today's level: the band stays at 100); once 80 % of
    the last ``adopt_after`` lies below what was expected, the new level is adopted with
    a factor (0.5: the history counts halved) and the values are inside again."""
    rule = _orders_rule()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [(start + i * STEP, 100.0 + (i % 5) - 2) for i in range(288)]  # a day at 100
    steps += [(start + (288 + i) * STEP, 50.0) for i in range(144)]  # 12 h at 50
    judge = rejudge(rule, FLAT)
    assert isinstance(judge, BaselineJudge)
    seen = _replay(judge, steps)
    drop = seen[288:]
    assert drop[0][1] == Status.ALERT and drop[0][2] == pytest.approx(100, abs=2)
    adopted = next(i for i, s in enumerate(drop) if s[1] == Status.OK)
    assert all(s[1] == Status.ALERT and s[2] == pytest.approx(100, abs=2)
               for s in drop[:adopted])

    def below(k: int) -> float:  # the sign test over the 6 h before seen[k]
        window = [(v, e) for (at, v), (_, _, e) in zip(steps, seen, strict=True)
                  if seen[k][0] - timedelta(hours=6) <= at < seen[k][0] and e is not None]
        return sum(1 for v, e in window if v < e) / len(window)

    assert below(288 + adopted) >= 0.8 > below(288 + adopted - 1)
    assert adopted * STEP < timedelta(hours=6)  # before 6 hours of alerts: the sign test
    [shift] = judge.learner.shifts
    assert shift.since == steps[288][0] and shift.adopted_at == steps[288 + adopted][0]
    assert shift.factor == pytest.approx(0.5, abs=0.01) and shift.offset == 0
    assert {s[1] for s in drop[adopted:]} == {Status.OK}
    assert drop[-1][2] == pytest.approx(50, abs=1)
    # Positive control: never adopting keeps alerting.
    never = _replay(rejudge(rule, {**FLAT, "adopt_after": "never"}), steps)
    assert {s[1] for s in never[288:]} == {Status.ALERT}


def test_blips_on_both_sides_are_not_adopted() -> None:
    """Single values far out every 2 hours cross the band, but the last 6 hours do not lie
    on their side: nothing is adopted and each blip alerts (the adoption above is the
    positive control)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [(start + i * STEP, 300.0 if i >= 288 and i % 24 == 0 else 100.0 + (i % 5) - 2)
             for i in range(432)]
    judge = rejudge(_orders_rule(), FLAT)
    assert isinstance(judge, BaselineJudge)
    seen = _replay(judge, steps)
    assert judge.learner.shifts == []
    alerts = [at for at, status, _ in seen if status == Status.ALERT]
    assert alerts == [at for at, v in steps if v == 300.0] and len(alerts) == 6


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
