"""The SLO benchmark's code path, tiny (3 SLOs × 2 days): both paths run on the real store
and agree on every window's counts, and the ratio and table come out. Correctness, not
speed: there is no timing assert."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from alert_jobs.families.slo import check
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.store import Timeline
from benchmarks import slo_bench

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark


def test_a_tiny_run_agrees_between_the_two_paths(tmp_path: Path) -> None:
    results, skipped = slo_bench.run(3, 2, reps=2, cold=False, postgres=False,
                                     workdir=tmp_path)
    (r,) = results
    assert r.backend == "sqlite" and r.slos == 3 and r.buckets == 3 * 2 * 24 * 60
    assert r.mismatches == 0
    assert r.buckets_ms > 0 and r.naive_ms > 0 and r.ratio == pytest.approx(r.ratio)
    assert r.ratio > 0
    assert "slo evaluation postgresql" in skipped
    table = slo_bench.format_table(results, skipped)
    assert "sqlite" in table and "COUNTS DIFFER" not in table
    out = tmp_path / "slo.json"
    slo_bench.write_results(results, skipped, out)
    (row,) = json.loads(out.read_text())["results"]
    assert row["name"] == "slo evaluation (sqlite)" and row["mismatches"] == 0


def test_the_paths_see_the_burst_the_data_holds(tmp_path: Path) -> None:
    """SLO 0 has a 3 % burst in its last 40 minutes: both paths count the same errors
    (the positive control for "agree": the counts are not all zero)."""
    url = f"sqlite:///{tmp_path / 'slo.db'}"
    slo_bench.load(url, 2, 2)
    rules = slo_bench.slo_rules(2, 2)
    timeline = Timeline(url)
    bucket = slo_bench.evaluate_buckets(SloBucketStore(timeline), rules[0])
    naive = slo_bench.evaluate_naive(timeline.engine, rules[0])
    hour = timedelta(hours=1)
    assert bucket[hour].bad == naive[hour].bad > 100  # 40 minutes at 3 % of 100–160
    assert bucket[hour].total == naive[hour].total
    assert slo_bench.agree(bucket, naive) == []
    assert check.evaluate(rules[0], bucket).firing is not None  # 3 % burns 30× a 0.1 %
    broken = dict(naive)
    broken[hour] = check.Counts(hour, naive[hour].good + 1, naive[hour].total, hour)
    assert slo_bench.agree(bucket, broken)  # a difference is seen
    timeline.dispose()
