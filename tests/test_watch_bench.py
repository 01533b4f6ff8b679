"""``benchmarks/watch_bench.py`` runs (quick size, SQLite) and checks what it measures:
every scheduled check has a materialization and a freshness record, the stale path
names every rule when they are all stale (and none when fresh), the hung-run watch
finds the two hung jobs, the location watch asks the webserver stub once, and the
baseline tick never asks it."""

from __future__ import annotations

import pytest

from alert_jobs.families.heartbeat import instance_watch
from benchmarks import watch_bench

#: About 20 s on an idle 2-core machine (a batch run of 20 checks, two new processes).
pytestmark = [pytest.mark.long_running, pytest.mark.benchmark]


def test_the_quick_watch_benchmark_runs_on_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    runs, skipped = watch_bench.run(quick=True)
    assert "postgresql" in skipped  # quick: SQLite only, whatever the environment says
    (run,) = runs
    quick = watch_bench.SIZES["quick"]
    assert run.backend == "sqlite" and run.checks == quick.checks == 20
    assert run.problems == []
    assert run.made["assets"] == run.made["freshness_records"] == quick.checks
    assert run.all_stale_rules == quick.checks  # every rule, once all are stale …
    results = {(r.mode, r.case): r for r in run.results}
    assert set(results) == {("warm", c) for c in watch_bench.WARM_CASES} | {
        ("cold", c) for c in quick.cold_cases}
    assert results["warm", "stale_checks"].observations == 0  # … and none while fresh
    assert results["warm", "stale_checks_all_stale"].observations == 1  # one schedule
    assert results["warm", "hung_runs"].observations == watch_bench.HUNG
    assert results["warm", "location_errors"].observations == 3  # the stub's locations
    assert results["warm", "location_errors"].graphql_requests == 1
    # The baseline never asks the webserver; the full watch does once a tick when the
    # sensor runs the location watch (and then the hung-run watch too).
    wired = hasattr(instance_watch, "location_statuses")
    for mode in ("warm", "cold"):
        assert results[mode, watch_bench.BASELINE].graphql_requests == 0
        assert results[mode, "watch_on"].graphql_requests == (1 if wired else 0)
    assert run.off_tick == {"graphql_requests": 0}
    assert run.on_tick == {"graphql_requests": 1 if wired else 0,
                           "hung_alerts_open": watch_bench.HUNG if wired else 0}
    for r in run.results:
        assert r.wall_ms > 0 and r.cpu_ms >= 0 and r.ratio > 0, r
        assert r.reps == (quick.reps if r.mode == "warm" else quick.cold_reps)
        assert r.per_check_us == pytest.approx(r.wall_ms * 1000 / quick.checks)
        assert r.core_share == pytest.approx(r.cpu_ms / 1000 / 30)
    assert results["warm", watch_bench.BASELINE].ratio == 1.0
    cold = results["cold", "watch_on"]
    assert set(cold.startup) == {"import_s", "definitions_s", "instance_s"}
    assert all(v > 0 for v in cold.startup.values())

    text = watch_bench.format_table(runs, skipped)
    assert "ratio to watch_off" in text and "core share @30s" in text
    assert "sqlite: at 20 checks and one tick every 30 s the watch takes" in text
    assert "PROBLEM" not in text and "skipped postgresql: quick size" in text
    assert run.as_json()["results"][0]["name"] == "watch_warm_watch_on_sqlite"
