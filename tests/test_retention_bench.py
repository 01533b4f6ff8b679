"""``benchmarks/retention_bench.py`` runs (quick sizes, SQLite) and checks what it
measures: the trim removed exactly what the settings say (each table's old rows,
none of the young ones, no undelivered notification, the newest 100 pings of every
check kept), and evaluations ran while it did and without it."""

from __future__ import annotations

import pytest

from benchmarks import retention_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_the_quick_retention_benchmark_runs_on_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    results, skipped = retention_bench.run(quick=True)
    assert [r.name for r in results] == ["retention_sqlite"]
    assert "retention_postgresql" in skipped
    (result,) = results
    assert result.problems == [] and result.correct and result.pings_ok
    tables = {t.table: t for t in result.tables}
    assert set(tables) == {"alert_events", "alert_evaluations", "alert_outbox",
                           "alert_heartbeat_pings"}
    for t in tables.values():
        # positive control: each table had rows to remove and rows to keep
        assert t.old_before > 0 and t.young_before > 0, t
        assert t.removed == t.old_before and t.old_after == 0, t
        assert t.young_after == t.young_before, t
        assert t.batches >= 1 and t.longest_batch_ms > 0, t
    quick = retention_bench.SCALES["quick"]
    assert tables["alert_heartbeat_pings"].young_after == quick.checks * 100
    # 10 of the 45 days seeded are older than 35 days: 12 evaluations a day per rule
    assert tables["alert_evaluations"].removed == 10 * 12 * quick.rules
    assert result.removed == sum(t.removed for t in tables.values())
    assert result.batches == sum(t.batches for t in tables.values())
    assert result.during["n"] > 0 and result.baseline["n"] > 0
    assert result.longest_batch_ms >= result.mean_batch_ms > 0

    text = retention_bench.format_table(results, skipped)
    assert "alert_evaluations" in text and "p99 ratio" in text and "not blocked" in text
    assert "PROBLEM" not in text and "skipped retention_postgresql" in text
    assert result.as_json()["correct"] is True
