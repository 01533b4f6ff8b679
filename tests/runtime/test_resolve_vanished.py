"""Resolving the alert instances an evaluation no longer produces reads the rule's own
open alerts (by the rule index), never another rule's — on real SQLite and PostgreSQL.
What that lookup costs with many open alerts: benchmarks/open_alerts_bench.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import AlertState, Observation, Severity, Status
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.evaluate import resolve_vanished
from alert_jobs.store import Timeline

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RULES = parse_rules(
    "version: 1\nreceivers: [{name: console, type: console}]\n"
    "defaults: {receivers: [console]}\nchecks:\n  sql_metric:\n"
    "    - {name: t, database: 'sqlite://', query: SELECT 1, expect: {max: 0}}\n")
RULE = RULES.rules_of(SqlMetricRule)[0]


def fire(timeline: Timeline, rule: str, labels: dict[str, str]) -> str:
    policy = RulePolicy(rule=rule, severity=Severity.WARNING, receivers=("console",))
    (result,) = timeline.alerts.process_many(
        [(Observation(rule, Status.ALERT, labels, 1.0, summary="x"), policy, None)],
        now=NOW, flush=False)
    assert result.decision.record.state == AlertState.FIRING
    return result.decision.record.fingerprint


def test_only_the_rules_own_vanished_instances_are_resolved(db_url: str) -> None:
    timeline = Timeline(db_url)
    timeline.upgrade()
    others = [fire(timeline, "other", {"i": str(i)}) for i in range(3)]
    kept = fire(timeline, "t", {"check": "quota"})
    gone = fire(timeline, "t", {"check": "hit_rate"})  # e.g. a check turned off

    resolved = resolve_vanished(RULES, RULE, timeline, {kept},
                                now=NOW + timedelta(minutes=1), run_id="r")
    assert [o.result.decision.record.fingerprint for o in resolved] == [gone]
    states = {a.fingerprint: a.state for a in timeline.alerts.list(include_inactive=True)}
    assert states[gone] == AlertState.RESOLVED  # positive control: it was resolved
    assert states[kept] == AlertState.FIRING
    assert all(states[fp] == AlertState.FIRING for fp in others)
    # Nothing left to resolve: a second pass resolves nothing.
    assert resolve_vanished(RULES, RULE, timeline, {kept},
                            now=NOW + timedelta(minutes=2), run_id="r") == []
