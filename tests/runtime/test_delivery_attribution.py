"""A notification is delivered by, and its event names, the run that raised it (issue #12, 3).

Real Dagster (a test instance, sensors ticked with ``build_sensor_context``, jobs
executed in process against that instance), a real SQLite timeline and a real webhook
receiver on 127.0.0.1. The heartbeat sensor evaluates inside its tick (no run) and
requests a delivery run; a rule run that delivers with ``raised_by=<its run>`` in the
meantime must leave the heartbeat alert to that run.
"""

# No `from __future__ import annotations` here: Dagster reads the ops' annotations.

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import RuleBase, load_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.instance_watch import build_instance_watch_sensor
from alert_jobs.families.heartbeat.sensor import build_heartbeat_sensor
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.delivery_job import RAISED_BY_TAG, deliver_outbox_job
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.sensors.outbox import outbox_retry_sensor
from alert_jobs.store import Timeline, utcnow
from tests.conftest import HttpReceiver

SQL_RULE = "orders_backlog"


def _rules(receiver: HttpReceiver) -> str:
    return f"""
receivers:
  - {{name: hook, type: webhook, url: '{receiver.url}', timeout: 5s}}
defaults: {{receivers: [hook], group_wait: 0s}}
checks:
  heartbeat:
    - name: etl
      slug: etl-hourly
      period: 1h
      grace: 5m
self_monitoring:
  receivers: [hook]
"""


@pytest.fixture
def env(tmp_path: Path, http_receiver: HttpReceiver) -> Iterator[dict[str, Any]]:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(_rules(http_receiver))
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    timeline = Timeline(db_url)
    timeline.upgrade()
    with dg.instance_for_test() as instance:
        yield {"resource": resource, "instance": instance, "timeline": timeline,
               "receiver": http_receiver, "rules": rules}
    timeline.dispose()


def _sql_metric_job(raised_by_own_run: bool) -> dg.JobDefinition:
    """A rule run as the families' assets do it: evaluate, then deliver."""

    @dg.op
    def evaluate_and_deliver(context: dg.OpExecutionContext,
                             alert_jobs: AlertJobsResource) -> None:
        rules, timeline = alert_jobs.load_rules(), alert_jobs.timeline()
        rule = RuleBase(name=SQL_RULE, receivers=["hook"])
        obs = Observation(SQL_RULE, Status.ALERT, {"queue": "orders"}, 42.0,
                          summary="Expected the orders backlog below 10, got 42")
        process_observations(rules, rule, timeline, [(obs, "orders wait")], now=utcnow(),
                             run_id=context.run_id)
        report = deliver(rules, timeline, run_id=context.run_id,
                         raised_by=context.run_id if raised_by_own_run else None)
        context.log.info(f"delivery: {report}")

    @dg.job(name="sql_metric_batch")
    def sql_metric_batch() -> None:
        evaluate_and_deliver()

    return sql_metric_batch


def _alertnames(receiver: HttpReceiver) -> list[str]:
    return sorted(a["labels"]["alertname"] for r in receiver.requests
                  for a in r.json()["alerts"])


def _sent_by(timeline: Timeline) -> dict[str, str]:
    """alertname → run_id of the ``notification_sent`` event of its message."""
    rows = {r["dedup_key"]: r for r in timeline.outbox.rows()}
    out = {}
    for event in timeline.events.list(kinds=["notification_sent"], limit=50):
        payload = rows[event["payload"]["dedup_key"]]["payload"]
        for alert in payload["alerts"]:
            out[alert["labels"]["alertname"]] = event["run_id"]
    return out


def _heartbeat_down(env: dict[str, Any]) -> dg.RunRequest:
    """A heartbeat sensor tick that raises ``etl`` (overdue) and requests its run."""
    sensor = build_heartbeat_sensor()
    resources = {"alert_jobs": env["resource"]}
    cursor = sensor(dg.build_sensor_context(instance=env["instance"],
                                            resources=resources)).cursor
    HeartbeatStore(env["timeline"]).ping("etl-hourly", Signal.SUCCESS,
                                         utcnow() - timedelta(hours=2))
    result = sensor(dg.build_sensor_context(instance=env["instance"], cursor=cursor,
                                            resources=resources))
    (request,) = result.run_requests
    return request


def _run_delivery(env: dict[str, Any], request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return deliver_outbox_job.execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=env["instance"],
        resources={"alert_jobs": env["resource"]})


def test_heartbeat_alert_is_delivered_by_its_sensors_run_not_by_a_rule_run(
        env: dict[str, Any]) -> None:
    request = _heartbeat_down(env)
    ids = request.run_config["ops"]["deliver_outbox"]["config"]["outbox_ids"]
    assert len(ids) == 1 and request.tags[RAISED_BY_TAG] == "heartbeat_sensor"
    assert env["receiver"].requests == []  # the tick only queued it

    # A rule run delivering with raised_by=<its run> meanwhile sends only its own alert
    # (positive control: it did send, so it would have seen the heartbeat row).
    sql = _sql_metric_job(raised_by_own_run=True).execute_in_process(
        instance=env["instance"], resources={"alert_jobs": env["resource"]})
    assert sql.success
    assert _alertnames(env["receiver"]) == [SQL_RULE]
    # The retry sensor leaves the fresh heartbeat row to the run its tick requested.
    retry = outbox_retry_sensor(dg.build_sensor_context(
        instance=env["instance"], resources={"alert_jobs": env["resource"]}))
    assert isinstance(retry, dg.SkipReason)

    run = _run_delivery(env, request)
    assert run.success
    assert _alertnames(env["receiver"]) == sorted(["etl", SQL_RULE])
    assert _sent_by(env["timeline"]) == {"etl": run.run_id, SQL_RULE: sql.run_id}
    assert env["instance"].get_run_by_id(run.run_id).tags[RAISED_BY_TAG] == "heartbeat_sensor"


def test_without_raised_by_a_rule_run_takes_everything_due(env: dict[str, Any]) -> None:
    """The control that makes the tests above mean something: today's unscoped deliver()
    in a rule run sends the heartbeat's alert too, and the heartbeat's run finds nothing."""
    request = _heartbeat_down(env)
    sql = _sql_metric_job(raised_by_own_run=False).execute_in_process(
        instance=env["instance"], resources={"alert_jobs": env["resource"]})
    assert _alertnames(env["receiver"]) == sorted(["etl", SQL_RULE])
    assert _sent_by(env["timeline"]) == {"etl": sql.run_id, SQL_RULE: sql.run_id}
    assert _run_delivery(env, request).success
    assert len(env["receiver"].requests) == 2  # nothing twice


def test_instance_watch_alert_is_delivered_by_its_sensors_run(env: dict[str, Any]) -> None:
    @dg.op
    def explode() -> None:
        raise RuntimeError("boom")

    @dg.job
    def nightly_export() -> None:
        explode()

    failed = nightly_export.execute_in_process(instance=env["instance"], raise_on_error=False)
    assert not failed.success
    sensor = build_instance_watch_sensor(own_assets=[])
    result = sensor(dg.build_sensor_context(instance=env["instance"],
                                            resources={"alert_jobs": env["resource"]}))
    (request,) = result.run_requests
    assert request.tags[RAISED_BY_TAG] == "instance_watch_sensor"
    assert env["receiver"].requests == []
    run = _run_delivery(env, request)
    assert run.success
    assert _alertnames(env["receiver"]) == ["dagster_run_failed"]
    assert _sent_by(env["timeline"]) == {"dagster_run_failed": run.run_id}


def test_a_group_flushed_by_a_run_belongs_to_that_run(env: dict[str, Any]) -> None:
    """A group held back by group_wait is delivered by the run that flushes it."""
    rules = load_rules(env["rules"])
    timeline = env["timeline"]
    rule = RuleBase(name=SQL_RULE, receivers=["hook"])
    obs = Observation(SQL_RULE, Status.ALERT, {"queue": "orders"}, 42.0, summary="42")
    t0 = utcnow() - timedelta(minutes=3)
    rules_waiting = rules.model_copy(update={"defaults": rules.defaults.model_copy(
        update={"group_wait": timedelta(minutes=1)})})
    process_observations(rules_waiting, rule, timeline, [(obs, "")], now=t0, run_id="raiser")
    assert deliver(rules, timeline, run_id="raiser", raised_by="raiser", now=t0).sent == 0
    later = deliver(rules, timeline, run_id="flusher", raised_by="flusher")
    assert later.sent == 1 and _sent_by(timeline) == {SQL_RULE: "flusher"}
