"""An SLO in a rule test: good/total counts from the test input go through the family's
real evaluation (backfill plan, bucket store, burn-rate windows, engine) on a simulated
clock, with only the bucket reader replaced (``simulate`` hook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import AlertRecord, Status
from alert_jobs.families.slo import FAMILY
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, TestClock
from alert_jobs.store import Timeline

START = datetime(2026, 1, 5, tzinfo=UTC)
MIN = timedelta(minutes=1)
RULES = parse_rules("""
defaults: {receivers: [console]}
checks:
  slo:
    - name: checkout
      objective: 99.9
      service: Checkout
      sli: {sql: {database: "sqlite://", query: "select 1 as good, 1 as total"}}
    - name: search
      objective: 99.9
      sli:
        prometheus:
          url: http://prometheus.invalid:9090
          total: sum(increase(requests_total[{{window}}]))
          bad: sum(increase(requests_total{code=~"5.."}[{{window}}]))
""")
#: Three days of history at 1,000 events a minute (every pair's windows are covered
#: from the first evaluation), then the test's first hour.
DAYS = 3 * 24 * 60
TOTAL = {"values": f"1000x{DAYS + 59}", "start": "-3d"}


def bad_from_start(errors: str) -> dict[str, Any]:
    """No errors in the history, then ``errors`` from the test's start."""
    return {"values": f"0x{DAYS - 1} {errors}", "start": "-3d"}


@pytest.fixture
def timeline(tmp_path: Path) -> Timeline:
    tl = Timeline(f"sqlite:///{tmp_path / 'test.db'}")
    tl.upgrade()
    return tl


def rule_of(rules: RulesFile, name: str) -> SloRule:
    (rule,) = [r for r in rules.rules_of(SloRule) if r.name == name]
    return rule


def run(timeline: Timeline, name: str, inputs: dict[str, Any], minutes: int
        ) -> tuple[dict[int, list[AlertRecord]], dict[int, list[RuleOutcome]]]:
    sim = FAMILY.simulate(rule_of(RULES, name), inputs, TestClock(START, MIN))
    alerts: dict[int, list[AlertRecord]] = {}
    outcomes: dict[int, list[RuleOutcome]] = {}
    since = None
    for m in range(minutes + 1):
        now = START + m * MIN
        outcomes[m] = sim.step(RULES, timeline, now=now, since=since)
        since = now
        alerts[m] = [a for a in timeline.alerts.list() if a.rule == name]
    return alerts, outcomes


@pytest.mark.parametrize("name", ["checkout", "search"])  # SQL and Prometheus SLIs
def test_all_errors_page_within_the_first_minutes(tmp_path: Path, name: str) -> None:
    healthy = Timeline(f"sqlite:///{tmp_path / 'healthy.db'}")
    healthy.upgrade()
    ok, ok_outcomes = run(healthy, name, {"total": TOTAL, "bad": bad_from_start("0x59")}, 5)
    # the positive control: the same history, healthy traffic, never alerts
    assert all(v == [] for v in ok.values())
    assert {o.observation.status for v in ok_outcomes.values() for o in v} == {Status.OK}
    assert "within its error budget" in ok_outcomes[5][0].observation.summary

    burning = Timeline(f"sqlite:///{tmp_path / 'burning.db'}")
    burning.upgrade()
    alerts, outcomes = run(burning, name, {"total": TOTAL, "bad": bad_from_start("1000x59")},
                           5)
    assert alerts[0] == []  # nothing bad read yet: the first error minute ends at 1m
    # The Workbook: at 100 % errors, 99.9 % over 30 days, the 1 h / 5 min pair (14.4×)
    # fires after 0.864 min, i.e. at the first evaluation that has read an error minute.
    (alert,) = alerts[1]
    assert str(alert.state) == "firing" and str(alert.severity) == "critical"
    assert "burning its error budget" in alert.last_summary
    assert "over the last 1 h" in alert.last_summary
    assert outcomes[1][0].observation.value == pytest.approx(1000 / 60 / 0.001 / 1000)


def test_good_counts_work_as_bad_ones(timeline: Timeline) -> None:
    good = {"values": f"1000x{DAYS - 1} 0x59", "start": "-3d"}
    alerts, _ = run(timeline, "checkout", {"total": TOTAL, "good": good}, 2)
    assert alerts[0] == [] and [str(a.state) for a in alerts[1]] == ["firing"]


def test_a_source_error_is_an_error_alert_and_its_events_are_read_later(
        timeline: Timeline) -> None:
    bad = {"values": f"0x{DAYS + 1} error(connection_refused) 0x56", "start": "-3d"}
    _alerts, outcomes = run(timeline, "checkout", {"total": TOTAL, "bad": bad}, 4)
    assert outcomes[1][0].observation.status == Status.OK  # positive control
    error = outcomes[2][0].observation
    assert error.status == Status.ERROR
    assert "connection_refused" in error.summary and "checkout" in error.summary
    assert [o[0].observation.status for o in (outcomes[3], outcomes[4])] == [Status.OK] * 2
    # the failed read stored nothing; the next one read the minute again, with its events
    counts = SloBucketStore(timeline).window_counts(
        "checkout", [timedelta(minutes=4)], end=START + 4 * MIN)[timedelta(minutes=4)]
    assert counts.total == pytest.approx(4000) and counts.coverage == pytest.approx(1.0)


def test_a_source_with_nothing_is_nodata(timeline: Timeline) -> None:
    total = {"values": f"1000x{DAYS - 1} _x59", "start": "-3d"}
    _, outcomes = run(timeline, "checkout", {"total": total, "bad": bad_from_start("0x59")},
                      6)
    assert outcomes[0][0].observation.status == Status.OK  # positive control
    last = outcomes[6][0].observation
    assert last.status == Status.NODATA and "no data for" in last.summary


def test_counts_at_a_coarser_interval_are_spread_over_the_buckets(timeline: Timeline) -> None:
    """One point per 5 min of 5,000 events is 1,000 a minute in the 1-minute buckets."""
    total = {"values": "5000x900", "start": "-3d", "interval": "5m"}
    bad = {"values": "0x900", "start": "-3d", "interval": "5m"}
    _, outcomes = run(timeline, "checkout", {"total": total, "bad": bad}, 1)
    counts = SloBucketStore(timeline).window_counts(
        "checkout", [timedelta(minutes=5)], end=START + MIN)[timedelta(minutes=5)]
    assert counts.total == pytest.approx(5000)
    assert outcomes[1][0].observation.status == Status.OK


@pytest.mark.parametrize(("inputs", "path", "words"), [
    ({"bad": "0"}, (), "missing total"),
    ({"total": "1"}, (), "exactly one of good or bad"),
    ({"total": "1", "good": "1", "bad": "0"}, ("bad",), "exactly one of good or bad"),
    ({"total": "1", "bad": "0", "errors": "0"}, ("errors",), "unknown key"),
    ({"total": "10 oops", "bad": "0"}, ("total",), "not a series term"),
    ({"total": "10 10", "bad": "0 11"}, ("bad",), "part of total"),
    ({"total": "10 -1", "bad": "0"}, ("total",), "negative"),
    ({"total": {"values": "1", "start": "yesterday"}, "bad": "0"}, ("total", "start"),
     "not a duration"),
])
def test_bad_inputs_name_the_key(inputs: dict[str, Any], path: tuple[Any, ...],
                                 words: str) -> None:
    with pytest.raises(InputError) as err:
        FAMILY.simulate(rule_of(RULES, "checkout"), inputs, TestClock(START, MIN))
    assert err.value.path == path
    assert words in err.value.reason
