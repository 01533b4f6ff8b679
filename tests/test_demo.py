"""The demo data `make run` seeds: a past for the alert-quality assets, without replaying it."""

from __future__ import annotations

from alert_jobs.demo import seed_quality_history
from alert_jobs.store import Timeline


def test_quality_history_is_seeded_once_and_not_sent_again(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    written = seed_quality_history(timeline)
    assert written > 20  # weeks of episodes of two rules
    assert timeline.outbox.due_count() == 0  # history counts as sent back then: no console flood
    assert timeline.outbox.rows(pending_only=True) == []
    assert seed_quality_history(timeline) == 0  # a second `make run` adds nothing
