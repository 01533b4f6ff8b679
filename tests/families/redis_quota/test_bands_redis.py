"""The hit-rate bands and the sustained ops/s levels against a real Redis: real GETs
that hit and miss, a real tight loop of commands, and the engine's decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from alert_jobs.config import parse_rules
from alert_jobs.core.model import AlertState, Severity, Status
from alert_jobs.families.redis_quota.run import check_target
from alert_jobs.store import Timeline

NOON = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def rules_for(url: str, settings: str) -> Any:
    return parse_rules(f"""
receivers: [{{name: console, type: console}}]
checks:
  redis_quota:
    - {{name: cache, url: '{url}', quota: {{window: day, limit: 1000000}}, {settings}}}
""")


def outcome(rules: Any, timeline: Timeline, at: datetime, check: str) -> Any:
    result = check_target(rules, rules.checks.redis_quota[0], timeline, now=at)
    return next(o for o in result.outcomes if o.observation.labels["check"] == check)


def client_of(server: Any) -> redis.Redis:
    return redis.Redis.from_url(server.url, lib_name=None, lib_version=None)


def test_a_terrible_hit_rate_pages_after_a_quiet_window_did_not(redis_factory,
                                                                 sqlite_url: str) -> None:
    server = redis_factory()
    rules = rules_for(server.url, "hit_rate: {window: 1m, min_reads: 50}, ops_rate: null")
    timeline = Timeline(sqlite_url)
    client = client_of(server)
    for i in range(10):
        client.set(f"present:{i}", i)
    outcome(rules, timeline, NOON, "hit_rate")
    for i in range(10):
        client.get(f"absent:{i}")  # 10 misses: too few reads to judge
    quiet = outcome(rules, timeline, NOON + timedelta(minutes=1), "hit_rate")
    assert quiet.observation.status == Status.OK
    assert quiet.observation.summary.startswith("hit rate not judged: only 10 reads over the "
                                                "last 1 minute (fewer than 50)")
    for i in range(20):
        client.get(f"present:{i % 10}")  # 20 hits
    for i in range(180):
        client.get(f"absent:{i}")  # 180 misses: 10 %
    loud = outcome(rules, timeline, NOON + timedelta(minutes=2), "hit_rate")
    assert loud.observation.severity == Severity.CRITICAL
    assert loud.state == AlertState.FIRING
    assert loud.observation.summary.startswith(
        "hit rate 10 % over the last 1 minute is terrible (< 20 %): the cache is barely used")
    assert loud.observation.seen == "10 % (20 hits, 180 misses)"


def test_a_tight_loop_that_keeps_going_pages_as_dangerous(redis_factory,
                                                          sqlite_url: str) -> None:
    """Seconds stand for minutes (``for: 2s``): the test's clock advances one second
    per check while a real loop sends 1,500 commands in between."""
    server = redis_factory()
    rules = rules_for(server.url, "hit_rate: null, ops_rate: {high: {for: 2s}, "
                                  "dangerous: {for: 2s}}")
    timeline = Timeline(sqlite_url)
    client = client_of(server)

    def tight_loop() -> None:
        for _ in range(1500):
            client.get("job:status")

    outcome(rules, timeline, NOON, "ops_rate")
    tight_loop()
    brief = outcome(rules, timeline, NOON + timedelta(seconds=1), "ops_rate")
    assert brief.observation.status == Status.OK, "1 s above 1,000 is not yet sustained"
    assert "dangerous once it holds for 2 seconds" in brief.observation.summary
    tight_loop()
    held = outcome(rules, timeline, NOON + timedelta(seconds=2), "ops_rate")
    assert held.observation.severity == Severity.CRITICAL
    assert held.state == AlertState.FIRING
    assert held.observation.summary == (
        "ops/s has stayed above 1,000 for 2 seconds: this is usually a cache bug or an "
        "infinite loop — look for tight polling loops")
    assert held.observation.value is not None and held.observation.value >= 1500
    calm = outcome(rules, timeline, NOON + timedelta(seconds=3), "ops_rate")
    assert calm.observation.status == Status.OK
    assert calm.state == AlertState.RESOLVED
