"""The cost benchmark finds a tick's runs in the real code location, whatever the batching.

The benchmark must keep working when sql_metric rules are batched (issue #12), so it
reads the tick from ``build_definitions`` instead of assuming one run per rule; these
tests pin what it reads from today's code location and the command it would run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import cost_bench


def _rules(tmp_path: Path, text: str) -> str:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return str(path)


def test_every_sql_metric_schedule_on_the_cron_is_one_run_of_the_tick(tmp_path: Path) -> None:
    rules = _rules(tmp_path, cost_bench.sql_metric_rules(3, f"sqlite:///{tmp_path / 's.db'}"))
    tick = cost_bench._discover("sql_metric", rules, str(tmp_path / "instance"))
    assert tick["cron"] == cost_bench.CRON and tick["timezone"] == "UTC"
    runs = [cost_bench.PlannedRun(**r) for r in tick["runs"]]
    assert len(runs) == len(tick["schedules"]) >= 1
    # today one schedule and run per rule; batched, fewer runs covering the same rules
    assert len(runs) in (1, 3)
    argv = runs[0].argv()
    assert argv[1:7] == ["job", "execute", "-m", "alert_jobs.definitions", "-j", runs[0].job]
    assert json.loads(argv[-1]) == runs[0].tags


def test_a_partitioned_family_is_one_run_over_the_partition_range(tmp_path: Path) -> None:
    rules = _rules(tmp_path, cost_bench.redis_rules(3, "redis://127.0.0.1:6379/0"))
    tick = cost_bench._discover("redis_quota", rules, str(tmp_path / "instance"))
    (run,) = tick["runs"]
    assert run["job"] == "redis_quota_job"
    assert run["tags"] == {"dagster/asset_partition_range_start": "t000",
                           "dagster/asset_partition_range_end": "t002"}


def test_score_drift_references_are_not_the_tick(tmp_path: Path) -> None:
    rules = _rules(tmp_path, cost_bench.drift_rules(2, f"sqlite:///{tmp_path / 's.db'}"))
    tick = cost_bench._discover("score_drift", rules, str(tmp_path / "instance"))
    assert tick["schedules"] == ["cost_scores_drift_schedule"]  # not the daily reference one
    (run,) = tick["runs"]
    assert run["tags"]["dagster/asset_partition_range_end"] == "s001"


def test_a_family_without_schedules_is_reported(tmp_path: Path) -> None:
    rules = _rules(tmp_path, cost_bench.sql_metric_rules(2, "sqlite://"))
    assert "error" in cost_bench._discover("redis_quota", rules, str(tmp_path / "instance"))


def test_a_sample_spreads_over_the_runs() -> None:
    runs = [cost_bench.PlannedRun(f"s{i}", f"j{i}", {}) for i in range(1000)]
    picked = cost_bench.sample(runs, 5)
    assert [r.job for r in picked] == ["j0", "j200", "j400", "j600", "j800"]
    assert cost_bench.sample(runs[:3], 5) == runs[:3]


def test_dagster_alone_has_the_tick_shape_and_materializes_every_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor the benchmark compares the tick with: as many asset specs and checks as
    rules, in multi-assets of the part size, one job; its run yields one number and a
    passed check per rule."""
    import runpy

    import dagster as dg

    monkeypatch.setenv("FLOOR_RULES", "5")
    monkeypatch.setenv("FLOOR_PART", "2")
    module = tmp_path / "cost_floor.py"
    module.write_text(cost_bench.FLOOR_MODULE)
    defs = runpy.run_path(str(module), run_name="cost_floor")["defs"]
    job = defs.resolve_job_def("floor_job")
    assert {node.name for node in job.graph.nodes} == {"floor_part_1", "floor_part_2",
                                                       "floor_part_3"}
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert sorted(m.asset_key.path[-1] for m in result.get_asset_materialization_events()) == [
        f"r{i:04d}" for i in range(5)]
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True] * 5

