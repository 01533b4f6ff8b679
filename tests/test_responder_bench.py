"""``benchmarks/responder_bench.py`` runs (quick sizes) and checks what it times: every
page lists the alerts it must, and the CLI table loses none."""

from __future__ import annotations

import pytest

from benchmarks import responder_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_the_quick_responder_benchmark_runs_on_sqlite(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    results, skipped = responder_bench.run(quick=True)
    assert [r.name for r in results] == ["alerts_page_sqlite", "alerts_page_sqlite_all_rows",
                                         "alerts_page_sqlite_filtered"]
    assert "alerts_page_postgresql" in skipped
    assert all(r.alerts == 600 and r.page_ms > 0 and r.table_ms > 0 for r in results)
    assert results[1].page_bytes > results[0].page_bytes > results[2].page_bytes
    text = responder_bench.format_table(results, skipped)
    assert "page/table" in text and "skipped alerts_page_postgresql" in text
