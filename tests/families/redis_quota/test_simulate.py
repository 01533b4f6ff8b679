"""``redis_quota``'s rule-test hook: a target's INFO (or Upstash stats) as series on a
simulated clock, through the family's real check (quota window, counter resets and
restarts, projection, INFO checks, the engine) on a fresh SQLite timeline. The targets'
URLs and credentials are env references that are never set: resolving them would be an
``error``, so a test that sees its series' values proves nothing was connected to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import AlertState, Severity, Status
from alert_jobs.families.redis_quota import FAMILY
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, TestClock
from alert_jobs.store import Timeline

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
CLOCK = TestClock(START, timedelta(minutes=1))
INFO_TARGET = ("{name: cache, url: {env: SIM_REDIS_NEVER_SET}, "
               "quota: {window: day, limit: 100000}}")
UPSTASH_TARGET = ("{name: cache, source: upstash, quota: {window: day, limit: 100000}, "
                  "upstash: {database_id: db-1, email: {env: SIM_NEVER_SET}, "
                  "api_key: {env: SIM_NEVER_SET}}}")


def rules_of(target: str) -> RulesFile:
    return parse_rules(f"""
version: 1
defaults: {{receivers: [console], group_interval: 0s}}
receivers: [{{name: console, type: console}}]
checks:
  redis_quota:
    - {target}
""")


def run(rules: RulesFile, inputs: dict[str, Any], tmp_path: Path, steps: int
        ) -> list[list[RuleOutcome]]:
    """The target checked at ``steps`` simulated minutes, as the harness does."""
    simulator = FAMILY.simulate(rules.rule("cache"), inputs, CLOCK)  # type: ignore[misc]
    tmp_path.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(f"sqlite:///{tmp_path / 'rule-test.db'}")
    timeline.upgrade()
    out = []
    since = None
    for k in range(steps):
        now = CLOCK.at(k * CLOCK.interval)
        out.append(simulator.step(rules, timeline, now=now, since=since))
        since = now
    return out


def check(outcomes: list[RuleOutcome], name: str) -> RuleOutcome:
    return next(o for o in outcomes if o.observation.labels.get("check") == name)


def test_crossing_70_then_90_percent_of_the_daily_quota_warns_then_pages(
        tmp_path: Path) -> None:
    got = run(rules_of(INFO_TARGET), {"info": {"total_commands_processed": "0+10000x11"}},
              tmp_path, 12)
    quota = [check(step, "quota") for step in got]
    assert [q.observation.value for q in quota] == [10000.0 * k for k in range(12)]
    assert [q.observation.status for q in quota[:7]] == [Status.OK] * 7  # up to 60 %
    assert quota[7].observation.status == Status.ALERT  # 70,000 of 100,000
    assert quota[7].observation.severity == Severity.WARNING
    assert quota[7].state == AlertState.FIRING
    assert quota[8].observation.severity == Severity.WARNING
    assert quota[9].observation.severity == Severity.CRITICAL  # 90 %
    assert quota[9].result.decision.record.severity == Severity.CRITICAL
    assert "used 90,000" in quota[9].observation.summary


def test_a_counter_reset_keeps_counting_and_a_restart_estimates_what_it_hid(
        tmp_path: Path) -> None:
    total = "0+10000x4 2000 4000"  # the counter drops from 40,000 to 2,000 at 5m
    resetstat = run(rules_of(INFO_TARGET), {"info": {"total_commands_processed": total}},
                    tmp_path / "resetstat", 7)
    restart = run(rules_of(INFO_TARGET), {"info": {"total_commands_processed": total,
                                                   "uptime_in_seconds": "300+60x4 30 90"}},
                  tmp_path / "restart", 7)
    # CONFIG RESETSTAT (uptime goes on): the new counter is growth from zero
    assert [check(s, "quota").observation.value for s in resetstat][4:] == [
        40000.0, 42000.0, 44000.0]
    # a restart 30 s before the check: the 30 s unseen are estimated from the rate
    # before (40,000 in 4 min = 10,000 a minute: 5,000), and the check says so
    after = [check(s, "quota").observation for s in restart]
    assert [o.value for o in after][4:] == [40000.0, 47000.0, 49000.0]
    assert "estimate" in after[5].summary
    assert all(o.status == Status.OK for o in after)  # no false alarm from the drop
    # positive control: the same target over its quota does alert
    over = run(rules_of(INFO_TARGET), {"info": {"total_commands_processed": "0 95000"}},
               tmp_path / "over", 2)
    assert check(over[1], "quota").state == AlertState.FIRING


def test_a_field_with_error_fails_the_read_and_no_fields_is_an_error_too(
        tmp_path: Path) -> None:
    inputs = {"info": {"total_commands_processed": "0+100x4 _ 600",
                       "used_memory": "10 error(timeout) 10 _ 10x3"}}
    got = run(rules_of(INFO_TARGET), inputs, tmp_path, 7)
    assert check(got[0], "quota").observation.status == Status.OK
    failed = check(got[1], "quota")
    assert failed.observation.status == Status.ERROR and failed.state == AlertState.FIRING
    assert "timeout" in failed.observation.summary
    assert "SIM_REDIS_NEVER_SET" not in failed.observation.summary
    assert check(got[2], "quota").observation.status == Status.OK  # read again: recovers
    assert check(got[2], "quota").state == AlertState.RESOLVED
    # a field with no value is left out of that INFO; the others are read
    assert check(got[3], "quota").observation.value == 300.0
    # no total_commands_processed: no reading (not a counter reset to zero)
    gap = check(got[5], "quota").observation
    assert gap.status == Status.ERROR and "total_commands_processed" in gap.summary
    assert check(got[6], "quota").observation.value == 600.0

    nothing = run(rules_of(INFO_TARGET), {"info": {"total_commands_processed": "0 _ 200"}},
                  tmp_path / "nothing", 3)
    empty = check(nothing[1], "quota").observation
    assert empty.status == Status.ERROR and "none of the fields" in empty.summary
    assert check(nothing[2], "quota").observation.status == Status.OK


def test_info_fields_reach_the_health_checks(tmp_path: Path) -> None:
    inputs = {"info": {"total_commands_processed": "0+10x3", "used_memory": "50 95 95 50",
                       "maxmemory": "100x3", "evicted_keys": "0 0 0 4"}}
    got = run(rules_of(INFO_TARGET), inputs, tmp_path, 4)
    memory = [check(s, "memory").observation.status for s in got]
    assert memory == [Status.OK, Status.ALERT, Status.ALERT, Status.OK]
    evicted = [check(s, "evicted_keys") for s in got[1:]]
    assert [e.observation.status for e in evicted] == [Status.OK, Status.OK, Status.ALERT]


def test_upstash_targets_read_their_daily_count(tmp_path: Path) -> None:
    inputs = {"upstash": {"daily_net_commands": "0+10000x9", "suspended": "0x8 1"}}
    got = run(rules_of(UPSTASH_TARGET), inputs, tmp_path, 10)
    quota = [check(s, "quota").observation for s in got]
    assert quota[6].status == Status.OK and quota[7].severity == Severity.WARNING
    assert quota[9].severity == Severity.CRITICAL
    state = [check(s, "state").observation.status for s in got]
    assert state[8] == Status.OK and state[9] == Status.ALERT


# ----- bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "inputs", "path", "words"), [
    (INFO_TARGET, {"info": {"total_commands_processed": "1"}, "values": "1"}, ("values",),
     "unknown key"),
    (INFO_TARGET, {"info": {"total_commands_processed": "1", "used_mem": "1"}},
     ("info", "used_mem"), "unknown field"),
    (INFO_TARGET, {"info": {"total_commands_processed": "0+1000x6O"}},
     ("info", "total_commands_processed"), "is not a series term"),
    (INFO_TARGET, {}, (), "needs info"),
    (INFO_TARGET, {"info": {"used_memory": "1"}}, ("info",), "needs total_commands_processed"),
    (INFO_TARGET, {"info": "0+1000x6"}, ("info",), "mapping of fields"),
    (UPSTASH_TARGET, {"info": {"total_commands_processed": "1"}}, ("info",), "unknown key"),
    (UPSTASH_TARGET, {"upstash": {"total_monthly_requests": "1"}}, ("upstash",),
     "needs daily_net_commands"),
])
def test_bad_inputs_name_the_key(target: str, inputs: dict[str, Any], path: tuple[str, ...],
                                 words: str) -> None:
    rules = rules_of(target)
    with pytest.raises(InputError) as caught:
        FAMILY.simulate(rules.rule("cache"), inputs, CLOCK)  # type: ignore[misc]
    assert caught.value.path == path
    assert words in caught.value.reason
