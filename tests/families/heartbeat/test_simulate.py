"""A heartbeat check in a rule test: pings from the test input go through the real ping
path and the sensor's evaluation on a simulated clock (``simulate`` hook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import AlertRecord
from alert_jobs.families.heartbeat import FAMILY
from alert_jobs.families.heartbeat.config import HeartbeatCheck
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.simulation import InputError, TestClock
from alert_jobs.store import Timeline

START = datetime(2026, 1, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)
RULES = parse_rules("""
defaults: {receivers: [console]}
checks:
  heartbeat:
    - {name: backup, period: 10m, grace: 5m}
    - {name: etl, slug: nightly-etl, period: 1h, grace: 10m, max_duration: 10m}
    - {name: idle, period: 1d}
""")


@pytest.fixture
def timeline(tmp_path: Path) -> Timeline:
    tl = Timeline(f"sqlite:///{tmp_path / 'test.db'}")
    tl.upgrade()
    return tl


def check(rules: RulesFile, name: str) -> HeartbeatCheck:
    (rule,) = [r for r in rules.rules_of(HeartbeatCheck) if r.name == name]
    return rule


def run(timeline: Timeline, name: str, inputs: dict[str, Any], minutes: int,
        rules: RulesFile = RULES) -> dict[int, list[AlertRecord]]:
    """Step the check every minute from 0 to ``minutes``, as the harness does; the
    active alerts of the rule after each step."""
    sim = FAMILY.simulate(check(rules, name), inputs, TestClock(START, MIN))
    seen: dict[int, list[AlertRecord]] = {}
    since = None
    for m in range(minutes + 1):
        now = START + m * MIN
        sim.step(rules, timeline, now=now, since=since)
        since = now
        seen[m] = [a for a in timeline.alerts.list() if a.rule == name]
    return seen


def states(alerts: list[AlertRecord]) -> list[tuple[str, str]]:
    return [(a.labels["problem"], str(a.state)) for a in alerts]


def test_a_silent_check_goes_down_after_period_plus_grace_and_a_ping_resolves_it(
        timeline: Timeline) -> None:
    seen = run(timeline, "backup", {"pings": "0m 27m"}, 30)
    assert all(seen[m] == [] for m in range(15))  # positive control: up, then late
    assert states(seen[15]) == [("missing", "firing")]
    alert = seen[15][0]
    assert "Heartbeat backup is down" in alert.last_summary
    assert alert.labels["heartbeat"] == "backup" and alert.fired_at == START + 15 * MIN
    assert states(seen[26]) == [("missing", "firing")]
    assert seen[27] == []  # the ping at 27m resolves it
    resolved = timeline.alerts.get(alert.fingerprint)
    assert resolved is not None and resolved.resolved_at == START + 27 * MIN
    # the pings went through the real ping path: stored in the ping log, with their time
    log = HeartbeatStore(timeline).pings("backup")
    assert [(p["kind"], p["at"]) for p in reversed(log)] == [
        ("success", START), ("success", START + 27 * MIN)]


def test_a_fail_ping_alerts_at_once_and_a_success_clears_it(timeline: Timeline) -> None:
    seen = run(timeline, "backup", {"pings": [{"at": "0m"}, {"at": "3m", "kind": "fail"},
                                              {"at": "6m", "exit_code": 0}]}, 8)
    assert seen[2] == []
    assert states(seen[3]) == [("failed", "firing")]
    assert "reported a failure" in seen[3][0].last_summary
    assert seen[6] == []


def test_a_ping_between_two_evaluations_counts_at_its_own_time(timeline: Timeline) -> None:
    """An evaluation interval of 5 min: the fail at 7m alerts at 7m, as the ping
    endpoint's evaluation would, not at the next evaluation."""
    rule = check(RULES, "backup")
    sim = FAMILY.simulate(rule, {"pings": "0m fail@7m"}, TestClock(START, 5 * MIN))
    sim.step(RULES, timeline, now=START, since=None)
    sim.step(RULES, timeline, now=START + 5 * MIN, since=START)
    assert timeline.alerts.list() == []
    outcomes = sim.step(RULES, timeline, now=START + 10 * MIN, since=START + 5 * MIN)
    (alert,) = timeline.alerts.list()
    assert alert.labels["problem"] == "failed" and alert.fired_at == START + 7 * MIN
    assert [str(o.state) for o in outcomes] == ["firing"]


def test_a_start_without_a_finish_past_max_duration_alerts(timeline: Timeline) -> None:
    seen = run(timeline, "etl", {"pings": "start@0m 0@4m start@20m"}, 32)
    assert all(seen[m] == [] for m in range(30))  # the first run finished in time
    assert states(seen[30]) == [("duration", "firing")]
    assert "ran longer than expected" in seen[30][0].last_summary
    assert seen[30][0].labels["heartbeat"] == "nightly-etl"


def test_pings_before_the_start_are_history(timeline: Timeline) -> None:
    seen = run(timeline, "backup", {"pings": ["-14m"]}, 2)
    assert seen[0] == []
    assert states(seen[1]) == [("missing", "firing")]


def test_a_check_never_pinged_never_alerts(timeline: Timeline) -> None:
    seen = run(timeline, "idle", {"pings": []}, 5)
    assert all(v == [] for v in seen.values())
    row = HeartbeatStore(timeline).get("idle")
    assert row is not None and str(row.state.status) == "new"  # synced from the rules


@pytest.mark.parametrize(("inputs", "path", "words"), [
    ({}, (), "needs pings"),
    ({"pings": [], "values": "1"}, ("values",), "unknown key"),
    ({"pings": "0m fail@soon"}, ("pings",), "not a duration"),
    ({"pings": "0m crash@5m"}, ("pings",), "unknown ping kind"),
    ({"pings": [{"at": "1m"}, {"kind": "fail"}]}, ("pings", 1), "needs at"),
    ({"pings": [{"at": "1m", "kind": "log"}]}, ("pings", 0, "kind"), "unknown ping kind"),
    ({"pings": [{"at": "1m", "exit_code": 300}]}, ("pings", 0, "exit_code"), "0-255"),
    ({"pings": [{"at": "1m", "when": "2m"}]}, ("pings", 0, "when"), "unknown key"),
    ({"pings": 5}, ("pings",), "list or a string"),
])
def test_bad_inputs_name_the_key(inputs: dict[str, Any], path: tuple[Any, ...],
                                 words: str) -> None:
    with pytest.raises(InputError) as err:
        FAMILY.simulate(check(RULES, "backup"), inputs, TestClock(START, MIN))
    assert err.value.path == path
    assert words in err.value.reason
