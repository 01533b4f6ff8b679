"""``sql_metric``'s rule-test hook: a rule evaluated from a series on a simulated clock,
through the family's real run (judging, baseline backfill and learning, the engine) on
a fresh SQLite timeline. The rules' databases are env references that are never set:
reading them would be an ``error`` observation, so a test that sees its series' values
proves the database was not touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import AlertState, Status
from alert_jobs.families.sql_metric import FAMILY
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, TestClock
from alert_jobs.store import Timeline

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)


def rules_of(*rules: str) -> RulesFile:
    body = "\n".join(f"    - {r}" for r in rules)
    return parse_rules(f"""
version: 1
defaults: {{receivers: [console], group_interval: 0s}}
receivers: [{{name: console, type: console}}]
checks:
  sql_metric:
{body}
""")


def rule(name: str, expect: str, **more: str) -> str:
    extra = "".join(f", {k}: {v}" for k, v in more.items())
    return (f"{{name: {name}, database: {{env: SIM_DB_NEVER_SET}}, query: 'select 1', "
            f"window: 5m, expect: {expect}{extra}}}")


def fresh_timeline(tmp_path: Path) -> Timeline:
    tmp_path.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(f"sqlite:///{tmp_path / 'rule-test.db'}")
    timeline.upgrade()
    return timeline


def run(rules: RulesFile, name: str, inputs: dict[str, Any], tmp_path: Path, steps: int, *,
        clock: TestClock | None = None) -> list[RuleOutcome]:
    """Evaluate the rule at ``steps`` simulated minutes, as the harness does; one outcome
    per step."""
    clock = clock or TestClock(START, MINUTE)
    simulator = FAMILY.simulate(rules.rule(name), inputs, clock)  # type: ignore[misc]
    timeline = fresh_timeline(tmp_path)
    out: list[RuleOutcome] = []
    since = None
    for k in range(steps):
        now = clock.at(k * clock.interval)
        outcomes = simulator.step(rules, timeline, now=now, since=since)
        assert len(outcomes) == 1
        out.append(outcomes[0])
        since = now
    return out


def states(outcomes: list[RuleOutcome]) -> list[AlertState]:
    return [o.state for o in outcomes]


def test_for_goes_pending_then_firing_and_resolves(tmp_path: Path) -> None:
    rules = rules_of(rule("dead_letters", "{max: 0}", **{"for": "5m"}))
    got = run(rules, "dead_letters", {"values": "0 0 3+1x6 0x3"}, tmp_path, 13)
    P, F, N, R = (AlertState.PENDING, AlertState.FIRING, AlertState.INACTIVE,
                  AlertState.RESOLVED)
    # bad from 2m to 8m: pending until it has been bad for 5m (at 7m), firing; good
    # again at 9m: resolved
    assert states(got) == [N, N, P, P, P, P, P, F, F, R, R, R, R]
    assert got[7].observation.value == 8.0  # the series' value, not the database's
    assert "8" in got[7].observation.summary


def test_no_value_is_nodata_by_the_rules_policy(tmp_path: Path) -> None:
    alerting = rules_of(rule("orders", "{min: 1}"))
    quiet = rules_of(rule("orders", "{min: 1}", nodata="ok"))
    inputs = {"values": "5 5 _ _ 5"}
    loud = run(alerting, "orders", inputs, tmp_path / "a", 5)
    calm = run(quiet, "orders", inputs, tmp_path / "b", 5)
    assert [o.observation.status for o in loud] == [Status.OK, Status.OK, Status.NODATA,
                                                    Status.NODATA, Status.OK]
    assert states(loud)[2] == AlertState.FIRING  # nodata: alert (the default) alerts
    assert states(loud)[4] == AlertState.RESOLVED
    assert [o.observation.status for o in calm][2] == Status.NODATA
    assert AlertState.FIRING not in states(calm)  # the same input, nodata: ok
    # positive control: the quiet rule does fire on a real breach
    breach = run(quiet, "orders", {"values": "5 0"}, tmp_path / "c", 2)
    assert states(breach)[1] == AlertState.FIRING


def test_a_failed_query_is_the_rules_error_naming_the_reason(tmp_path: Path) -> None:
    rules = rules_of(rule("orders", "{min: 1}", description="orders"))
    got = run(rules, "orders", {"values": "5 error(timeout) 5 error"}, tmp_path, 4)
    assert [o.observation.status for o in got] == [Status.OK, Status.ERROR, Status.OK,
                                                   Status.ERROR]
    assert states(got)[1] == AlertState.FIRING
    assert "timeout" in got[1].observation.summary
    assert "SIM_DB_NEVER_SET" not in got[1].observation.summary  # the database: untouched
    assert "simulated" in got[3].observation.summary  # error without a reason says so
    assert states(got)[2] == AlertState.RESOLVED


def test_the_series_ending_is_no_value(tmp_path: Path) -> None:
    rules = rules_of(rule("orders", "{min: 1}"))
    got = run(rules, "orders", {"values": "5 5"}, tmp_path, 3)
    assert [o.observation.status for o in got] == [Status.OK, Status.OK, Status.NODATA]


# ----- learned baselines ---------------------------------------------------------------

BASELINE = "{baseline: {season: hour_of_week, history: 28d, min_points: 4, floor: 10}}"
FLAT_HISTORY = {"values": "1000x8063", "start": "-28d", "interval": "5m"}


def test_a_baseline_with_a_flat_history_fires_when_the_value_leaves_the_band(
        tmp_path: Path) -> None:
    rules = rules_of(rule("orders", BASELINE, description="orders"))
    # 1000 for 5 evaluations, 300 for 5, 1000 for 3 (a+bxn is n+1 values)
    got = run(rules, "orders", {"values": "1000x4 300x4 1000x2", "history": FLAT_HISTORY},
              tmp_path, 13, clock=TestClock(START, 5 * MINUTE))
    status = [o.observation.status for o in got]
    assert status[:5] == [Status.OK] * 5  # the band is there at the first evaluation
    assert status[5:10] == [Status.ALERT] * 5
    assert states(got)[5] == AlertState.FIRING
    assert got[5].observation.value == 300.0
    assert "1,000" in got[5].observation.summary  # expected about 1,000
    assert status[10:] == [Status.OK] * 3 and states(got)[10] == AlertState.RESOLVED


def test_a_baseline_without_history_is_learning_and_never_pages(tmp_path: Path) -> None:
    rules = rules_of(rule("orders", BASELINE, description="orders"))
    got = run(rules, "orders", {"values": "1000x4 300x4 1000x2"}, tmp_path, 11,
              clock=TestClock(START, 5 * MINUTE))
    assert all(o.observation.status == Status.NODATA for o in got)
    assert all(o.observation.learning for o in got)
    assert all(o.state != AlertState.FIRING for o in got)
    # positive control: the same rule and values with a history fire (test above), and
    # a fixed bound beside the learning baseline still pages
    both = rules_of(rule("orders", "{min: 500, baseline: {season: hour_of_week, "
                                   "history: 28d, min_points: 4, floor: 10}}"))
    fixed = run(both, "orders", {"values": "1000x4 300x4 1000x2"}, tmp_path / "b", 6,
                clock=TestClock(START, 5 * MINUTE))
    assert states(fixed)[5] == AlertState.FIRING


def test_history_errors_stop_the_backfill_and_the_rule_is_still_evaluated(
        tmp_path: Path) -> None:
    rules = rules_of(rule("orders", BASELINE))
    history = {"values": "errorx8063", "start": "-28d", "interval": "5m"}
    got = run(rules, "orders", {"values": "1000x2", "history": history}, tmp_path, 2,
              clock=TestClock(START, 5 * MINUTE))
    assert [o.observation.status for o in got] == [Status.NODATA, Status.NODATA]
    assert got[0].observation.learning


# ----- bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(("inputs", "path", "words"), [
    ({"values": "1 2", "vals": "3"}, ("vals",), "unknown key"),
    ({"values": "1 2 three"}, ("values",), "'three' is not a series term"),
    ({}, (), "needs values"),
    ({"value": "1"}, ("value",), "unknown key"),
    ({"values": "1", "history": "1x10"}, ("history",), "no expect.baseline"),
])
def test_bad_inputs_name_the_key(inputs: dict[str, Any], path: tuple[str, ...],
                                 words: str) -> None:
    rules = rules_of(rule("orders", "{min: 1}"))
    with pytest.raises(InputError) as caught:
        FAMILY.simulate(rules.rule("orders"), inputs, TestClock(START, MINUTE))  # type: ignore[misc]
    assert caught.value.path == path
    assert words in caught.value.reason


def test_bad_history_names_its_key() -> None:
    rules = rules_of(rule("orders", BASELINE))
    bad = {"values": "1", "history": {"values": "1x10", "start": "sometime"}}
    with pytest.raises(InputError) as caught:
        FAMILY.simulate(rules.rule("orders"), bad, TestClock(START, MINUTE))  # type: ignore[misc]
    assert caught.value.path == ("history", "start")
    # positive control: the same history with a duration is accepted
    good = {"values": "1", "history": {"values": "1x10", "start": "-1h"}}
    assert FAMILY.simulate(rules.rule("orders"), good, TestClock(START, MINUTE)) is not None  # type: ignore[misc]

