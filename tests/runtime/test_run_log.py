"""The run log line names who was told, also when the route tree decides (issue #16, 8)."""

from __future__ import annotations

from pathlib import Path

from alert_jobs.config import parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.runtime.evaluate import process_observation
from alert_jobs.store import Timeline, utcnow

RULES = """
receivers:
  - {name: console, type: console}
  - {name: team_hook, type: webhook, url: 'http://127.0.0.1:9/hook'}
  - {name: pager, type: webhook, url: 'http://127.0.0.1:9/page'}
route:
  receiver: console
  routes:
    - matchers: ["team=payments"]
      receiver: team_hook
      continue: true
      routes:
        - {matchers: ["severity=critical"], receiver: pager}
    - {matchers: ["team=payments"], receiver: console}
checks:
  sql_metric:
    - {name: routed, database: 'sqlite://', query: SELECT 1, expect: {max: 0},
       severity: critical, labels: {team: payments}}
    - {name: unmatched, database: 'sqlite://', query: SELECT 1, expect: {max: 0}}
    - {name: direct, database: 'sqlite://', query: SELECT 1, expect: {max: 0},
       receivers: [pager], labels: {team: payments}}
"""


def _line(tmp_path: Path, rule_name: str, status: Status = Status.ALERT) -> str:
    rules = parse_rules(RULES)
    rule = rules.rule(rule_name)
    timeline = Timeline(f"sqlite:///{tmp_path / 't.db'}")
    try:
        obs = Observation(rule.name, status, dict(rule.labels), 1.0, summary="1 > 0")
        outcome = process_observation(rules, rule, timeline, obs, now=utcnow(), run_id="r1")
        return outcome.result.decision.describe()
    finally:
        timeline.dispose()


def test_route_tree_receivers_are_named(tmp_path: Path) -> None:
    # team=payments, critical: the nested route (pager), then — continue — the sibling.
    line = _line(tmp_path, "routed")
    assert line.endswith("notify firing (first) → pager, console"), line


def test_root_route_is_named(tmp_path: Path) -> None:
    line = _line(tmp_path, "unmatched")
    assert line.endswith("notify firing (first) → console"), line


def test_a_rules_own_receivers_bypass_the_tree(tmp_path: Path) -> None:
    line = _line(tmp_path, "direct")
    assert line.endswith("notify firing (first) → pager"), line


def test_no_notification_no_arrow(tmp_path: Path) -> None:
    """Positive control of the format: an OK evaluation notifies no one."""
    assert "notify" not in _line(tmp_path, "unmatched", Status.OK)
