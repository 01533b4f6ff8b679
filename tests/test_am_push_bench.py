"""``benchmarks/am_push_bench.py`` runs (quick size: 500 alerts, a first push and one
re-send) and checks what it counts: every alert firing in the timeline, one notification
per group after the first cycle and none more after the re-send, each delivered once."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.store import Timeline
from benchmarks import am_push_bench
from benchmarks.timeline_bench import BenchmarkError

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_the_quick_push_benchmark_runs_on_sqlite_and_counts_what_routing_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    results, skipped = am_push_bench.run(quick=True)
    assert [(r.name, r.cycle) for r in results] == [("am_push_sqlite", "first"),
                                                    ("am_push_sqlite", "resend")]
    assert "am_push_postgresql" in skipped
    for r in results:
        assert (r.alerts, r.cycles, r.batch, r.posts) == (500, 1, 64, 8)  # 500 / 64 → 8
        assert (r.firing, r.groups, r.notifications, r.delivered) == (500, 100, 100, 100)
        assert r.p50_ms > 0 and r.null_p50_ms > 0 and r.p99_ms >= r.p50_ms
        assert r.posts_per_s > 0 and r.alerts_per_s > r.posts_per_s
    text = am_push_bench.format_table(results, skipped)
    assert "p50/null" in text and "100/100" in text and "skipped am_push_postgresql" in text


def test_the_counts_it_checks_catch_a_second_notification_or_a_lost_alert(
        tmp_path: Path) -> None:
    """The checks the benchmark relies on, with a positive control each."""
    timeline = Timeline(f"sqlite:///{tmp_path / 'counts.db'}")
    timeline.ensure_schema()
    try:
        for group in ("a", "b"):
            timeline.outbox.enqueue("hook", "firing", f"root:hook:{{team=\"{group}\"}}#1", {})
        timeline.outbox.enqueue("hook", "resolved", 'root:hook:{team="a"}#2', {})
        assert am_push_bench._check_notifications(timeline, 2, "control") == 2
        timeline.outbox.enqueue("hook", "firing", 'root:hook:{team="a"}#3', {})
        with pytest.raises(BenchmarkError, match="one firing notification for each of 2"):
            am_push_bench._check_notifications(timeline, 2, "second")
        for host in ("h1", "h2", "h3"):
            timeline.alerts.process(Observation("disk_full", Status.ALERT, {"host": host}),
                                    RulePolicy(rule="disk_full"))
        assert am_push_bench._check_alerts(timeline, 3, "control") == 3
        with pytest.raises(BenchmarkError, match="expected 4 firing alerts"):
            am_push_bench._check_alerts(timeline, 4, "lost")
    finally:
        timeline.dispose()
