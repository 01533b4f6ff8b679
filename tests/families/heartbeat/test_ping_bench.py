"""The ping load benchmark runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import pytest

from benchmarks import ping_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_ping_bench_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)  # SQLite only: keep it short
    report = ping_bench.run(quick=True)
    (result,) = report["results"]
    for case in result["cases"].values():
        assert case["non_2xx"] == 0 and case["all_2xx_stored"]
        assert case["stored"] == case["ok_2xx"] > 0
    assert "ping benchmark" in ping_bench.format_table(report)
