"""The ``external_sweep`` sensor resolves pushed alerts whose sender stopped sending them
(no push comes to sweep), and its delivery run sends exactly the resolve it raised.

Real Dagster (a test instance, the sensor ticked with ``build_sensor_context``, the
delivery job executed in process), a real SQLite timeline and a real webhook receiver.
"""

# No `from __future__ import annotations` here: Dagster reads the annotations.

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import added_family
from alert_jobs.core.model import AlertState
from alert_jobs.families.external import FAMILY
from alert_jobs.families.external.check import parse_alerts
from alert_jobs.families.external.definitions import SENSOR_NAME, build_definitions
from alert_jobs.families.external.run import receive
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.delivery_job import RAISED_BY_TAG, deliver_outbox_job
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow
from tests.conftest import HttpReceiver, in_memory_instance
from tests.families.external.support import alert, messages, parse, rules_text


@pytest.fixture
def env(tmp_path: Path, http_receiver: HttpReceiver) -> Iterator[dict[str, Any]]:
    text = rules_text(http_receiver, "external: {sweep_interval_seconds: 10}")
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(db_url)
    timeline.upgrade()
    with added_family(FAMILY), in_memory_instance() as instance:
        yield {"resource": AlertJobsResource(rules_file=str(path), database_url=db_url),
               "instance": instance, "timeline": timeline, "rules": parse(text)}
    timeline.dispose()


def test_the_sensor_resolves_an_alert_past_endsat_and_delivers_it(
        env: dict[str, Any], http_receiver: HttpReceiver) -> None:
    rules, timeline = env["rules"], env["timeline"]
    (sensor,) = list(build_definitions(rules).sensors or [])
    assert isinstance(sensor, dg.SensorDefinition)
    assert sensor.name == SENSOR_NAME and sensor.minimum_interval_seconds == 10
    resources = {"alert_jobs": env["resource"]}

    now = utcnow()
    receive(rules, timeline, parse_alerts([
        alert("Gone", ends=now - timedelta(seconds=1) + timedelta(milliseconds=1)),
        alert("Stays", ends=now + timedelta(hours=1))]), now=now - timedelta(seconds=1),
        caller="prometheus")
    deliver(rules, timeline)
    assert sorted(m["alerts"][0]["labels"]["alertname"] for m in messages(http_receiver)) \
        == ["Gone", "Stays"]

    result = sensor(dg.build_sensor_context(instance=env["instance"], resources=resources))
    assert isinstance(result, dg.SensorResult) and result.run_requests
    (request,) = result.run_requests
    assert request.tags[RAISED_BY_TAG] == SENSOR_NAME
    run = deliver_outbox_job.execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=env["instance"],
        resources=resources)
    assert run.success
    last = messages(http_receiver)[-1]
    assert last["status"] == "resolved"
    assert last["alerts"][0]["labels"]["alertname"] == "Gone"
    states = {a.rule: a.state for a in timeline.alerts.list(include_inactive=True)}
    assert states == {"Gone": AlertState.RESOLVED, "Stays": AlertState.FIRING}

    # Nothing more has ended: the next tick skips (and sends nothing).
    again = sensor(dg.build_sensor_context(instance=env["instance"], resources=resources))
    assert isinstance(again, dg.SensorResult)
    assert not again.run_requests and again.skip_reason is not None
    assert "0 pushed alert(s) resolved" in str(again.skip_reason.skip_message)
    assert len(messages(http_receiver)) == 3
