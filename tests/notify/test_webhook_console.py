"""Golden renderings of the webhook (Alertmanager v4) and console receivers, and the
escalation sensor in a real Dagster instance."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.notify.console import ConsoleReceiver
from alert_jobs.notify.contract import sample_group
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.sensors.escalation import escalation_sensor
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance, make_receiver

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} changed; UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_webhook_golden(status: str) -> None:
    body = make_receiver("webhook", name="hook", url="http://unused").render(sample_group(status))
    check_golden(f"webhook_{status}.json", json.dumps(body, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_console_golden(status: str) -> None:
    check_golden(f"console_{status}.txt", ConsoleReceiver().render(sample_group(status)) + "\n")


def test_webhook_v4_fields_existing_consumers_read() -> None:
    body = make_receiver("webhook", name="hook", url="http://unused").render(
        sample_group("firing", n_alerts=3))
    assert {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
            "commonLabels", "commonAnnotations", "externalURL", "alerts"} <= set(body)
    for alert in body["alerts"]:
        assert {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                "fingerprint"} <= set(alert)
    assert body["notification_reason"] == "first"


def test_escalation_sensor_in_dagster(tmp_path: Path) -> None:
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text("""
receivers:
  - {name: console, type: console}
  - {name: manager, type: console}
route:
  receiver: console
  escalation: [{after: 1m, receiver: manager}]
""")
    rules = parse_rules(rules_file.read_text())
    db = f"sqlite:///{tmp_path / 't.db'}"
    timeline = Timeline(db)
    fired_at = datetime.now(UTC) - timedelta(minutes=5)
    timeline.alerts.process_many(
        [(Observation("dead_letters", Status.ALERT, {}, 1.0, summary="bad"),
          RulePolicy(rule="dead_letters", severity=Severity.CRITICAL, receivers=()), {})],
        now=fired_at, router=rules.router())
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(rules_file), database_url=db)}
    with in_memory_instance() as instance:
        first = escalation_sensor(dg.build_sensor_context(instance=instance,
                                                          resources=resources))
        assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1
        again = escalation_sensor(dg.build_sensor_context(instance=instance,
                                                          resources=resources))
        assert isinstance(again, dg.SkipReason), "each step runs once"
    (event,) = timeline.events.list(kinds=["escalated"])
    assert event["payload"] == {"step": 1, "receiver": "manager"}
