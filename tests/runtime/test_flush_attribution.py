"""A family that flushes its notification groups in its own run stamps them with that
run's id, so the run's own ``deliver(raised_by=run)`` sends them (issue #12's
attribution). The chaos test (``tests/test_chaos.py``) found redis_quota flushing
without it: its pages waited for the outbox retry sensor, minutes later. score_drift had
the same gap. The sources are the families' rule-test readers (no Redis, no database of
scores); the timeline is real SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.families.redis_quota import FAMILY as REDIS
from alert_jobs.families.redis_quota.run import check_targets
from alert_jobs.families.score_drift import FAMILY as DRIFT
from alert_jobs.families.score_drift.run import check_segments
from alert_jobs.runtime.simulation import TestClock
from alert_jobs.store import Timeline

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CLOCK = TestClock(NOW, timedelta(minutes=1))
RULES = """
version: 1
defaults: {receivers: [console], group_wait: 0s}
receivers: [{name: console, type: console}]
checks:
  redis_quota:
    - {name: cache, url: {env: NEVER_SET_REDIS_URL}, quota: {window: day, limit: 1000}}
  score_drift:
    - name: scores
      database: {env: NEVER_SET_SCORES_URL}
      table: scores
      time_column: at
      score_column: score
      min_samples: 100
      psi: {warn: 0.1, critical: 0.25}
"""


def _timeline(tmp_path: Path) -> Timeline:
    timeline = Timeline(f"sqlite:///{tmp_path / 't.db'}")
    timeline.upgrade()
    return timeline


def _rules() -> RulesFile:
    return parse_rules(RULES)


def test_a_redis_quota_page_belongs_to_the_run_that_raised_it(tmp_path: Path) -> None:
    rules, timeline = _rules(), _timeline(tmp_path)
    target = rules.rule("cache")
    sim = REDIS.simulate(target, {"info": {"total_commands_processed": "5000"}}, CLOCK)  # type: ignore[misc]
    results = check_targets(rules, [target], timeline, now=NOW, run_id="run-redis",
                            read=sim.read)
    assert any(o.observation.status == "alert" for r in results for o in r.outcomes)
    rows = timeline.outbox.rows()
    assert rows, "the quota page was not queued"  # positive control: there is a page
    assert {r["run_id"] for r in rows} == {"run-redis"}


def test_a_drift_page_belongs_to_the_run_that_raised_it(tmp_path: Path) -> None:
    rules, timeline = _rules(), _timeline(tmp_path)
    rule = rules.rule("scores")
    sim = DRIFT.simulate(rule, {"reference": {"bins": [400, 300, 200, 100, 0]},  # type: ignore[misc]
                                "current": {"bins": [0, 100, 200, 300, 400]}}, CLOCK)
    check_segments(rules, rule, timeline, [""], now=NOW, run_id="run-drift", flush=True,
                   reader=sim.current.reader(NOW), reference_reader=sim.reference.reader(NOW))
    rows = timeline.outbox.rows()
    assert rows, "the PSI page was not queued"
    assert {r["run_id"] for r in rows} == {"run-drift"}
