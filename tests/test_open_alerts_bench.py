"""``benchmarks/open_alerts_bench.py`` runs (small sizes, SQLite) and measures what it
says: both lookups find the same alerts and ``resolve_vanished`` resolves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import open_alerts_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_the_open_alerts_benchmark_runs_on_sqlite(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    out = tmp_path / "open.json"
    assert open_alerts_bench.main(["--open", "300", "--targets", "10", "--reps", "1",
                                   "--output", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    assert result["backend"] == "sqlite" and result["open_alerts"] == 310
    assert result["seconds"] > 0 and result["baseline"]["seconds"] > 0
