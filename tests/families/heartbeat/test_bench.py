"""The heartbeat benchmark runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import pytest

from benchmarks import heartbeat_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_heartbeat_bench_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)  # SQLite only: keep it short
    report = heartbeat_bench.run(quick=True)
    (pings,) = report["pings"]
    assert pings["errors"] == 0 and pings["ping_per_s_median"] > 0
    (tick,) = report["ticks"]
    assert tick["decisions"] == [10, 10]  # every overdue check went down, once
    assert "heartbeat benchmark" in heartbeat_bench.format_table(report)
