"""End to end in a real Dagster instance: sql_metric asset → engine → webhook → timeline.

The sql_metric rules of one cron and timezone are one multi-asset (a batch): these tests
materialize one rule of it (what Materialize on one asset does in the UI) or all of it
(what the batch's schedule does)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from alert_jobs.assets.operator_jobs import ack_alert_job, silence_alerts_job, snooze_alert_job
from alert_jobs.config import load_rules
from alert_jobs.definitions import build_definitions
from alert_jobs.demo.data import seed_dead_letters
from alert_jobs.families.sql_metric.batches import batches_of
from alert_jobs.families.sql_metric.definitions import CHECK_NAME, asset_key, build_batch_asset
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.sensors.outbox import outbox_retry_sensor
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance

ROOT = Path(__file__).resolve().parents[1]

RULES = """
version: 1
defaults: {{receivers: [hook], timezone: Europe/Berlin, group_interval: 0s}}
receivers:
  - {{name: hook, type: webhook, url: {{env: TEST_HOOK_URL}}, timeout: 2s}}
checks:
  sql_metric:
    - name: dead_letters
      description: dead letters
      database: sqlite:///{data}
      query: "SELECT count(*) FROM dead_letters WHERE created_at >= :window_start"
      window: 30m
      expect: {{min: 0, max: {max}}}
      severity: critical
      schedule: "*/10 * * * *"
      labels: {{team: payments}}
      annotations: {{why: payments are not booked, runbook_url: https://runbooks.test/dl}}
    - name: broken_query
      database: sqlite:///{data}
      query: "SELECT count(*) FROM no_such_table"
      expect: {{max: 0}}
    - name: unreachable_db
      database: postgresql://monitor:hunter2pw@127.0.0.1:1/app
      query: "SELECT 1"
      query_timeout: 2s
      expect: {{max: 0}}
"""


def dead_letters_db(path: Path) -> Path:
    """The one table these rules read, as the demo seeds it (1,000 dead letters in the
    last five minutes), without the demo's other 250,000 rows."""
    with sqlite3.connect(path) as db:
        seed_dead_letters(db, datetime.now(UTC))
    db.close()
    return path


@pytest.fixture
def setup(tmp_path: Path, http_receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    data = dead_letters_db(tmp_path / "data.db")
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(data=data, max=0))
    monkeypatch.setenv("TEST_HOOK_URL", http_receiver.url)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    with in_memory_instance() as instance:
        yield {"rules": rules, "data": data, "db_url": db_url, "resource": resource,
               "instance": instance, "defs": build_definitions(str(rules)),
               "receiver": http_receiver}


def materialize(s: dict, *rules: str) -> dg.ExecuteInProcessResult:
    """Materialize these rules' assets (with their checks), as the UI's Materialize does."""
    assets = [build_batch_asset(b) for b in batches_of(load_rules(s["rules"]))]
    return dg.materialize(assets, selection=[asset_key(r) for r in rules],
                          instance=s["instance"], resources={"alert_jobs": s["resource"]})


def materialization(result: dg.ExecuteInProcessResult, rule: str) -> dict:
    (mat,) = [m for m in result.get_asset_materialization_events()
              if m.asset_key == asset_key(rule)]
    return {k: v.value for k, v in mat.materialization.metadata.items()}


def test_sql_metric_fires_notifies_and_records_run_id(setup: dict) -> None:
    result = materialize(setup, "dead_letters")
    assert result.success

    meta = materialization(result, "dead_letters")
    assert meta["value"] == 1000.0 and isinstance(meta["value"], float)
    assert meta["expected_max"] == 0.0 and meta["status"] == "alert"
    assert meta["alert_state"] == "firing" and meta["transition"] == "inactive → firing"

    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == CHECK_NAME and not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR

    (request,) = setup["receiver"].requests
    body = request.json()
    assert body["status"] == "firing"
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "dead_letters", "severity": "critical",
                               "team": "payments"}
    assert alert["annotations"]["summary"] == (
        "Expected dead letters to be 0 in the last 30 minutes, got 1,000")
    assert alert["annotations"]["runbook_url"] == "https://runbooks.test/dl"
    assert alert["generatorURL"].endswith(f"/runs/{result.run_id}")

    timeline = Timeline(setup["db_url"])
    kinds = {e["kind"]: e["run_id"] for e in timeline.events.list(rule="dead_letters")}
    assert kinds["firing"] == result.run_id
    assert kinds["notification_sent"] == result.run_id
    run_log = [entry.user_message for entry in setup["instance"].all_logs(result.run_id)]
    assert any("dead_letters [" in m and "inactive → firing" in m for m in run_log)
    assert any(m.startswith("timeline: firing: Expected dead letters") for m in run_log)

def test_threshold_edit_applies_on_next_run_without_redeploy(setup: dict) -> None:
    assert materialize(setup, "dead_letters").success
    setup["rules"].write_text(RULES.format(data=setup["data"], max=5000))
    result = materialize(setup, "dead_letters")  # same Definitions object: no reload
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    statuses = [r.json()["status"] for r in setup["receiver"].requests]
    assert statuses == ["firing", "resolved"]


def test_failing_query_is_an_error_alert_not_a_crash(setup: dict) -> None:
    result = materialize(setup, "broken_query")
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    timeline = Timeline(setup["db_url"])
    (error_event,) = timeline.events.list(rule="broken_query", kinds=["error"])
    assert "no such table: no_such_table" in error_event["reason"]
    (sent,) = setup["receiver"].requests
    assert "check failed" in sent.json()["alerts"][0]["annotations"]["summary"]


def test_unreachable_database_never_leaks_password(setup: dict) -> None:
    result = materialize(setup, "unreachable_db")
    assert result.success
    timeline = Timeline(setup["db_url"])
    (error_event,) = timeline.events.list(rule="unreachable_db", kinds=["error"])
    assert "127.0.0.1:1" in error_event["reason"]
    everything = (repr(timeline.events.list()) + repr(timeline.outbox.rows())
                  + repr([e.message for e in result.all_events])
                  + repr(setup["receiver"].requests[0].body))
    assert "hunter2pw" not in everything


def test_operator_jobs_ack_snooze_silence(setup: dict) -> None:
    materialize(setup, "dead_letters")
    resources = {"alert_jobs": setup["resource"]}
    ack = ack_alert_job.execute_in_process(
        run_config={"ops": {"ack_alert": {"config": {
            "target": "dead_letters", "by": "alice", "note": "looking", "outcome": "actionable"}}}},
        resources=resources, instance=setup["instance"])
    assert ack.success
    timeline = Timeline(setup["db_url"])
    (acked,) = timeline.events.list(kinds=["acked"])
    assert acked["actor"] == "alice" and acked["source"] == "dagster"
    assert acked["run_id"] == ack.run_id

    snooze = snooze_alert_job.execute_in_process(
        run_config={"ops": {"snooze_alert": {"config": {"target": "dead_letters",
                                                        "duration": "6h"}}}},
        resources=resources, instance=setup["instance"])
    assert snooze.success and len(timeline.events.list(kinds=["snoozed"])) == 1

    silence = silence_alerts_job.execute_in_process(
        run_config={"ops": {"silence_alerts": {"config": {
            "matchers": ["team=payments"], "duration": "2h", "by": "bob", "comment": "deploy"}}}},
        resources=resources, instance=setup["instance"])
    assert silence.success and len(timeline.silences.list()) == 1

    bad = ack_alert_job.execute_in_process(
        run_config={"ops": {"ack_alert": {"config": {"target": "nope", "by": "x"}}}},
        resources=resources, instance=setup["instance"], raise_on_error=False)
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no active alert matches 'nope'" in str(failure.event_specific_data)


def test_outbox_sensor_requests_delivery_only_when_due(setup: dict) -> None:
    resources = {"alert_jobs": setup["resource"]}
    ctx = dg.build_sensor_context(instance=setup["instance"], resources=resources)
    assert isinstance(outbox_retry_sensor(ctx), dg.SkipReason)
    setup["receiver"].default = 503
    materialize(setup, "dead_letters")
    assert Timeline(setup["db_url"]).outbox.rows(pending_only=True)
    ctx = dg.build_sensor_context(instance=setup["instance"], resources=resources)
    # The retry is scheduled ~15-30 s ahead: not due at once, then due once time passes.
    result = outbox_retry_sensor(ctx)
    assert isinstance(result, dg.SkipReason)


def test_schedules_follow_rules(setup: dict) -> None:
    defs = setup["defs"]
    schedule = defs.resolve_schedule_def("sql_metric_every_10m_europe_berlin_schedule")
    assert schedule.cron_schedule == "*/10 * * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert outbox_retry_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # The two rules on the default schedule share one: one run per tick, not per rule.
    shared = defs.resolve_schedule_def("sql_metric_every_5m_europe_berlin_schedule")
    assert shared.execution_timezone == "Europe/Berlin"
    job = defs.resolve_job_def(shared.job_name)
    assert job.tags["alert_jobs/batch"] == "sql_metric_every_5m_europe_berlin"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "sql_metric/broken_query", "sql_metric/unreachable_db"}
    names = [s.name for s in defs.schedules or []]
    assert not [n for n in names if n in ("dead_letters_schedule", "broken_query_schedule")]


def test_dagster_asset_materialize_cli(tmp_path: Path, http_receiver) -> None:
    """The by-hand path a user types: `dagster asset materialize --select ...`."""
    data = dead_letters_db(tmp_path / "data.db")
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(data=data, max=0))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ALERT_JOBS_RULES": str(rules),
           "TEST_HOOK_URL": http_receiver.url,
           "ALERT_JOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'alerts.db'}"}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "asset", "materialize", "-m", "alert_jobs.definitions",
         "--select", "sql_metric/dead_letters"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout
    # A run launched by hand executes in process too: no second process for the step.
    assert "Executing steps in process" in proc.stderr + proc.stdout
    assert "multiprocess" not in proc.stderr + proc.stdout
    assert [r.json()["status"] for r in http_receiver.requests] == ["firing"]
    events = Timeline(env["ALERT_JOBS_DATABASE_URL"]).events.list(kinds=["firing"])
    assert events and events[0]["run_id"]


def test_changed_labels_resolve_the_old_instance(setup: dict) -> None:
    assert materialize(setup, "dead_letters").success
    edited = RULES.format(data=setup["data"], max=0).replace("labels: {team: payments}",
                                                             "labels: {team: billing}")
    setup["rules"].write_text(edited)
    assert materialize(setup, "dead_letters").success
    timeline = Timeline(setup["db_url"])
    states = {a.labels["team"]: str(a.state) for a in timeline.alerts.list(include_inactive=True)
              if a.rule == "dead_letters"}
    assert states == {"payments": "resolved", "billing": "firing"}
    # The new instance's firing and the old one's resolve are decided in one write and
    # may share a message of their group (alertname): look at every alert sent.
    statuses = [(a["status"], a["labels"]["team"])
                for r in setup["receiver"].requests for a in r.json()["alerts"]]
    assert ("resolved", "payments") in statuses and ("firing", "billing") in statuses
