"""score_drift in a real Dagster instance: lineage, partitions, metadata, asset checks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.definitions import build_definitions as build_code_location
from alert_jobs.families.score_drift.definitions import (
    CHECK_NAME,
    build_definitions,
    build_score_drift_assets,
    drift_key,
    reference_key,
    source_key,
)
from alert_jobs.runtime.resources import AlertJobsResource
from tests.families.score_drift.drift_data import scenario, write_files, write_table

RULES = """
version: 1
defaults: {{receivers: [console], timezone: Europe/Berlin}}
receivers: [{{name: console, type: console}}]
checks:
  score_drift:
    - name: fraud_scores
      {source}
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      feature_columns: [amount]
      min_samples: 500
      high_score: {{threshold: 0.9, min_samples: 1000}}
      {extra}
"""


def shifted(rows: list[Any]) -> list[Any]:
    """The scenario's rows moved so that its current hour is the last hour before now."""
    from tests.families.score_drift.drift_data import NOW

    delta = datetime.now(UTC).replace(microsecond=0) - NOW
    for row in rows:
        row.at += delta
    return rows


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data_url = f"sqlite:///{tmp_path / 'scores.db'}"
    write_table(data_url, shifted(scenario(current={"fraud-v3": {"high": 0.5}})))

    def make(extra: str = "", source: str = f"database: '{data_url}'\n      table: scores"
             ) -> dict[str, Any]:
        rules_file = tmp_path / "alerts.yaml"
        rules_file.write_text(RULES.format(source=source, extra=extra))
        resource = AlertJobsResource(rules_file=str(rules_file),
                                     database_url=f"sqlite:///{tmp_path / 'alerts.db'}")
        return {"rules_file": rules_file, "resource": resource,
                "defs": build_code_location(str(rules_file))}

    with dg.instance_for_test() as instance:
        yield {"make": make, "instance": instance, "tmp": tmp_path}


def meta_of(event: Any) -> dict[str, Any]:
    return {k: v.value for k, v in event.metadata.items()}


def test_lineage_schedules_and_sensor_in_the_code_location(setup: dict[str, Any]) -> None:
    s = setup["make"]()
    defs = s["defs"]
    graph = defs.resolve_asset_graph()
    assert source_key("fraud_scores") in graph.get(reference_key("fraud_scores")).parent_keys
    assert reference_key("fraud_scores") in graph.get(drift_key("fraud_scores")).parent_keys
    ref_schedule = defs.resolve_schedule_def("fraud_scores_reference_schedule")
    drift_schedule = defs.resolve_schedule_def("fraud_scores_drift_schedule")
    assert ref_schedule.cron_schedule == "0 3 * * *"
    assert drift_schedule.cron_schedule == "0 * * * *"
    assert drift_schedule.execution_timezone == "Europe/Berlin"
    assert drift_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_sensor_def("fraud_scores_segments_sensor") is not None
    check_keys = {c.name for c in graph.get(drift_key("fraud_scores")).check_keys}
    assert check_keys == {CHECK_NAME}


def test_dynamic_partitions_discovered_then_reference_and_drift(setup: dict[str, Any]) -> None:
    s = setup["make"]()
    instance = setup["instance"]
    rules = s["resource"].load_rules()
    defs = build_definitions(rules)
    schedules, sensors = list(defs.schedules or []), list(defs.sensors or [])
    (sensor,) = sensors
    ctx = dg.build_sensor_context(instance=instance, resources={"alert_jobs": s["resource"]})
    result = sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.dynamic_partitions_requests
    assert sorted(request.partition_keys) == ["churn-v1", "fraud-v3"]
    assert {r.partition_key for r in result.run_requests} == {"churn-v1", "fraud-v3"}
    instance.add_dynamic_partitions("fraud_scores_segments", list(request.partition_keys))
    assert result.cursor is not None
    ctx = dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                  resources={"alert_jobs": s["resource"]})
    assert isinstance(sensor(ctx), dg.SkipReason)  # nothing new on the next tick

    drift_schedule = next(x for x in schedules if x.name == "fraud_scores_drift_schedule")
    run = drift_schedule(dg.build_schedule_context(instance=instance))
    assert run.tags["dagster/asset_partition_range_start"] == "churn-v1"
    assert run.tags["dagster/asset_partition_range_end"] == "fraud-v3"

    _, reference, drift = build_score_drift_assets(rules.checks.score_drift[0])
    resources = {"alert_jobs": s["resource"]}
    done = dg.materialize([reference], partition_key="fraud-v3", instance=instance,
                          resources=resources)
    assert done.success
    (mat,) = done.asset_materializations_for_node("fraud_scores__score_reference")
    meta = meta_of(mat)
    assert 6900 < meta["valid_scores"] <= 7000 and isinstance(meta["mean"], float)
    assert len(meta["psi_edges"].split(", ")) == 11

    done = dg.materialize([drift], partition_key="fraud-v3", instance=instance,
                          resources=resources)
    assert done.success
    (mat,) = done.asset_materializations_for_node("fraud_scores__score_drift")
    assert mat.partition == "fraud-v3"
    meta = meta_of(mat)
    for key in ("psi", "ks", "high_score_rate", "n_current", "n_reference", "null_rate_amount",
                "volume_ratio"):
        assert type(meta[key]) is float, key
    assert meta["psi"] > 0.25 and meta["reference_built_now"] == 0
    assert meta["state_distribution"] == "firing"
    assert "| bin | scores | reference | current |" in meta["bins"]
    (check,) = done.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "PSI of fraud-v3 scores in the last 1 h is" in check.description


def test_sensor_skips_with_the_reason_when_the_database_secret_is_not_set(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORES_DB_URL_UNSET", raising=False)
    s = setup["make"](source="database: {env: SCORES_DB_URL_UNSET}\n      table: scores")
    (sensor,) = build_definitions(s["resource"].load_rules()).sensors or []
    ctx = dg.build_sensor_context(instance=setup["instance"],
                                  resources={"alert_jobs": s["resource"]})
    result = sensor(ctx)
    assert isinstance(result, dg.SkipReason)
    assert "SCORES_DB_URL_UNSET" in (result.skip_message or "")


def test_static_partitions_one_run_for_all(setup: dict[str, Any]) -> None:
    s = setup["make"](extra="segments: [fraud-v3, churn-v1]")
    rules = s["resource"].load_rules()
    _, reference, drift = build_score_drift_assets(rules.checks.score_drift[0])
    assert isinstance(drift.partitions_def, dg.StaticPartitionsDefinition)
    done = dg.materialize(
        [reference, drift], instance=setup["instance"], resources={"alert_jobs": s["resource"]},
        tags={"dagster/asset_partition_range_start": "fraud-v3",
              "dagster/asset_partition_range_end": "churn-v1"})
    assert done.success
    mats = done.asset_materializations_for_node("fraud_scores__score_drift")
    assert {m.partition for m in mats} == {"fraud-v3", "churn-v1"}
    churn = next(meta_of(m) for m in mats if m.partition == "churn-v1")
    assert churn["status"] == "ok"
    (check,) = done.get_asset_check_evaluations()
    assert check.metadata["segments_checked"].value == 2
    assert check.metadata["segments_failing"].value == 1


def test_unsegmented_files_rule_and_a_missing_file(setup: dict[str, Any]) -> None:
    files = write_files(setup["tmp"] / "files", shifted(scenario(models=("only",))))
    s = setup["make"](source=f"files: '{files['csv']}'")
    text = s["rules_file"].read_text().replace("segment_columns: [model]", "")
    s["rules_file"].write_text(text)
    rules = s["resource"].load_rules()
    _, reference, drift = build_score_drift_assets(rules.checks.score_drift[0])
    assert drift.partitions_def is None
    done = dg.materialize([reference, drift], instance=setup["instance"],
                          resources={"alert_jobs": s["resource"]})
    assert done.success
    (check,) = done.get_asset_check_evaluations()
    assert check.passed
    files["csv"].unlink()
    done = dg.materialize([drift], instance=setup["instance"],
                          resources={"alert_jobs": s["resource"]})
    assert done.success  # a missing source is an alert, not a crashed run
    (check,) = done.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "no score files match" in check.description
    failed = dg.materialize([reference], instance=setup["instance"],
                            resources={"alert_jobs": s["resource"]}, raise_on_error=False)
    assert not failed.success


def test_reference_window_moves_with_time(setup: dict[str, Any]) -> None:
    from alert_jobs.families.score_drift.run import reference_window

    s = setup["make"]()
    rule = s["resource"].load_rules().checks.score_drift[0]
    now = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)
    assert reference_window(rule, now) == (datetime(2026, 2, 22, 2, tzinfo=UTC),
                                           datetime(2026, 3, 1, 2, tzinfo=UTC))
    assert reference_window(rule, now + timedelta(days=1))[1] == datetime(2026, 3, 2, 2,
                                                                          tzinfo=UTC)
