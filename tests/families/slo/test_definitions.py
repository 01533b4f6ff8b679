"""SLOs in a real Dagster instance: the batch asset gives each SLO's plottable metadata and
its ``burn_rate_ok`` check (WARN for a ticket, ERROR for a page or a broken source), the
backfill writes its progress to the run log, and the code location loads with SLOs
(an every-minute schedule, explicit timezone, running)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import load_rules
from alert_jobs.definitions import build_definitions
from alert_jobs.families.slo.batches import batches_of
from alert_jobs.families.slo.definitions import CHECK_NAME, asset_key, build_batch_asset
from alert_jobs.runtime.resources import AlertJobsResource
from tests.conftest import HttpReceiver, in_memory_instance
from tests.families.slo.slo_env import MIN, Traffic, rules_file, slo_yaml

NOW = datetime.now(UTC)
PAGE = "{long: 1h, short: 5m, factor: 14.4, severity: page}"
TICKET = "{long: 6h, short: 30m, factor: 1, severity: ticket}"


@pytest.fixture
def setup(tmp_path: Path, http_receiver: HttpReceiver) -> Iterator[dict[str, Any]]:
    """Three SLOs on one traffic table: ``burning`` (5 % errors for the last 20 min: a
    page), ``ticketed`` (a slower SLO over the same traffic: only its ticket pair),
    ``broken`` (its query names a table that does not exist)."""
    global NOW
    # The asset runs at the real time: start early in a minute, so that the run sees the
    # same minute as the numbers below.
    if datetime.now(UTC).second > 45:
        time.sleep(61 - datetime.now(UTC).second)
    NOW = datetime.now(UTC).replace(second=0, microsecond=0)
    traffic = Traffic(f"sqlite:///{tmp_path / 'app.db'}")
    traffic.add(NOW - timedelta(days=1, hours=1), NOW - 20 * MIN, ok=1000, failed=0)
    traffic.add(NOW - 20 * MIN, NOW + 5 * MIN, ok=950, failed=50)
    rules = tmp_path / "alerts.yaml"
    rules.write_text(rules_file(
        slo_yaml(traffic.url, name="burning", pairs=(PAGE, TICKET)),
        slo_yaml(traffic.url, name="ticketed", pairs=(TICKET,),
                 more="schedule: '*/5 * * * *'\ntimezone: Europe/Berlin"),
        slo_yaml(traffic.url, name="broken", query="SELECT good, total FROM nowhere"),
        receivers=f"[{{name: hook, type: webhook, url: '{http_receiver.url}', "
                  "timeout: 5s}]",
        defaults="{receivers: [hook], group_wait: 0s}"))
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    with in_memory_instance() as instance:
        yield {"rules": rules, "resource": resource, "instance": instance,
               "receiver": http_receiver}


def materialize(s: dict[str, Any], *names: str) -> dg.ExecuteInProcessResult:
    assets = [build_batch_asset(b) for b in batches_of(load_rules(s["rules"]))]
    return dg.materialize(assets, selection=[asset_key(n) for n in names],
                          instance=s["instance"], resources={"alert_jobs": s["resource"]})


def metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    (mat,) = [m for m in result.get_asset_materialization_events()
              if m.asset_key == asset_key(name)]
    return {k: v.value for k, v in mat.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {c.asset_key.path[-1]: c for c in result.get_asset_check_evaluations()}


def test_the_batch_asset_reports_numbers_and_check_severities(setup: dict[str, Any]) -> None:
    result = materialize(setup, "burning", "broken")
    assert result.success  # a broken source is an error alert, not a failed run

    meta = metadata(result, "burning")
    assert meta["status"] == "alert" and meta["alert_state"] == "firing"
    assert meta["firing_pair"] == "page 1h/5m"
    assert meta["burn_5m"] == pytest.approx(50.0) and meta["burn_1h"] == pytest.approx(
        50 / 3)  # 20 of its 60 minutes at 50×
    for key in ("burn_1h", "burn_5m", "burn_6h", "burn_30m", "sli_percent",
                "error_budget_remaining_percent", "events_total_period",
                "backfilled_buckets", "objective_percent"):
        assert isinstance(meta[key], float | int) and not isinstance(meta[key], bool), key
    assert meta["events_total_period"] == pytest.approx(1000 * 24 * 60)
    assert meta["sli_percent"] == pytest.approx(100 - 100 * 1000 / (1000 * 1440))
    assert meta["error_budget_remaining_percent"] == pytest.approx(
        100 * (1 - 1000 / (0.001 * 1440 * 1000)))
    assert meta["backfilled_buckets"] > 360 and meta["objective_percent"] == 99.9
    assert "is burning its error budget 16.7× too fast over the last 1 h" in meta["summary"]

    got = checks(result)
    assert got["burning"].check_name == CHECK_NAME and not got["burning"].passed
    assert got["burning"].severity == dg.AssetCheckSeverity.ERROR  # a page
    assert got["broken"].severity == dg.AssetCheckSeverity.ERROR  # its source failed
    assert metadata(result, "broken")["status"] == "error"
    assert "no such table: nowhere" in metadata(result, "broken")["summary"]

    # The page reached the receiver, raised and delivered by this run.
    (request,) = [r for r in setup["receiver"].requests
                  if r.json()["alerts"][0]["labels"]["alertname"] == "burning"]
    assert request.json()["alerts"][0]["labels"]["severity"] == "critical"
    log = [e.user_message for e in setup["instance"].all_logs(result.run_id)]
    assert any(m.startswith("backfill burning: ") and m.endswith(" buckets") for m in log)
    assert any(m.startswith("burning: ") and "new bucket(s)" in m for m in log)


def test_a_ticket_is_a_warn_check(setup: dict[str, Any]) -> None:
    result = materialize(setup, "ticketed")
    check = checks(result)["ticketed"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = metadata(result, "ticketed")
    assert meta["firing_pair"] == "ticket 6h/30m" and meta["status"] == "alert"


def test_the_code_location_loads_with_slos(setup: dict[str, Any]) -> None:
    defs = build_definitions(str(setup["rules"]))
    minute = defs.resolve_schedule_def("slo_every_minute_schedule")
    assert minute.cron_schedule == "* * * * *" and minute.execution_timezone == "UTC"
    assert minute.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(minute.job_name)
    assert job.tags["alert_jobs/batch"] == "slo_every_minute"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "slo/burning", "slo/broken"}
    berlin = defs.resolve_schedule_def("slo_every_5m_europe_berlin_schedule")
    assert berlin.execution_timezone == "Europe/Berlin"
    graph = defs.resolve_asset_graph()
    assert graph.get(asset_key("burning")).group_name == "slo"
    # The timeline asset is downstream of the SLOs (they write it).
    timeline = graph.get(dg.AssetKey("alert_timeline"))
    assert asset_key("burning") in timeline.parent_keys
    # The budget report reads the timeline: downstream of it, never counted as a writer.
    report = dg.AssetKey("slo_budget_report")
    assert report not in timeline.parent_keys
    assert graph.get(report).parent_keys == {dg.AssetKey("alert_timeline")}


def test_a_batch_larger_than_a_part_is_one_job_of_several_steps(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two SLOs in parts of one (100 in production): two multi-assets, one job that
    runs both steps; a batch that fits in a part stays one multi-asset."""
    import alert_jobs.runtime.batching as batching

    monkeypatch.setattr(batching, "PART_SIZE", 1)
    defs = build_definitions(str(setup["rules"]))
    job = defs.resolve_job_def(defs.resolve_schedule_def("slo_every_minute_schedule").job_name)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "slo/burning", "slo/broken"}
    assert {node.name for node in job.graph.nodes} == {"slo_every_minute_part_1",
                                                       "slo_every_minute_part_2"}
    monkeypatch.setattr(batching, "PART_SIZE", 100)
    whole = build_definitions(str(setup["rules"]))
    job = whole.resolve_job_def(whole.resolve_schedule_def("slo_every_minute_schedule").job_name)
    assert {node.name for node in job.graph.nodes} == {"slo_every_minute"}


def test_defaults_schedule_applies_only_when_the_file_sets_it(tmp_path: Path) -> None:
    from alert_jobs.config import parse_rules

    slo = slo_yaml("sqlite://")
    assert [b.cron for b in batches_of(parse_rules(rules_file(slo)))] == ["* * * * *"]
    set_ = parse_rules(rules_file(slo, defaults="{receivers: [console], schedule: '*/2 * * * *'}"))
    assert [b.name for b in batches_of(set_)] == ["slo_every_2m"]
