"""The demo data `make run` seeds: a past for the alert-quality assets, without replaying it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alert_jobs.demo import feed, seed_quality_history
from alert_jobs.demo.data import seed
from alert_jobs.store import Timeline


def test_quality_history_is_seeded_once_and_not_sent_again(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    written = seed_quality_history(timeline)
    assert written > 20  # weeks of episodes of two rules
    assert timeline.outbox.due_count() == 0  # history counts as sent back then: no console flood
    assert timeline.outbox.rows(pending_only=True) == []
    assert seed_quality_history(timeline) == 0  # a second `make run` adds nothing


def test_the_slo_burst_is_written_ahead_and_the_feed_leaves_it(tmp_path: Path) -> None:
    """The checkout requests' burst (30 % errors, minutes 3–13 after the seed) is in the
    database from the start; the feed's later rows for those minutes change nothing."""
    t0 = datetime(2026, 3, 10, 14, 2, tzinfo=UTC)
    db = seed(tmp_path / "demo.db", now=t0)
    query = ("SELECT count(*), sum(errors), sum(requests) FROM http_requests "
             "WHERE minute >= ? AND minute < ?")
    burst = ((t0 + timedelta(minutes=3)).strftime(feed.FMT),
             (t0 + timedelta(minutes=13)).strftime(feed.FMT))
    with sqlite3.connect(db) as conn:
        assert conn.execute(query, burst).fetchone() == (10, 360, 1200)
        month = conn.execute("SELECT count(*) FROM http_requests").fetchone()[0]
    assert month == 30 * 24 * 60 + 20  # 30 days before, 20 minutes ahead
    feed.append(db, t0, t0 + timedelta(minutes=30))
    with sqlite3.connect(db) as conn:
        assert conn.execute(query, burst).fetchone() == (10, 360, 1200)
        assert conn.execute("SELECT count(*) FROM http_requests").fetchone()[0] == month + 10
    quiet = seed(tmp_path / "quiet.db", now=t0, slo_burst=False)
    with sqlite3.connect(quiet) as conn:
        assert conn.execute(query, burst).fetchone()[1] < 5
