"""Routing, grouping, inhibition and escalation: pure routing plus the SQL pipeline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from alert_jobs.config import WebhookReceiverConfig, parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import AlertState, Observation, Severity, Status
from alert_jobs.core.routing import Router
from alert_jobs.notify.webhook import WebhookReceiver
from alert_jobs.runtime.actions import ack_alert, escalate_due
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import Timeline
from tests.conftest import make_receiver

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

RULES = """
receivers:
  - {name: console, type: console}
  - {name: team_slack, type: webhook, url: http://127.0.0.1:9/slack}
  - {name: pager, type: webhook, url: http://127.0.0.1:9/pager}
  - {name: audit, type: webhook, url: http://127.0.0.1:9/audit}
  - {name: manager, type: webhook, url: http://127.0.0.1:9/manager}
defaults: {group_wait: 0s, group_interval: 5m}
route:
  receiver: console
  group_by: [alertname]
  routes:
    - matchers: ["team=payments"]
      receiver: team_slack
      continue: true
      routes:
        - matchers: ["severity=critical"]
          receiver: pager
          group_by: [alertname, queue]
          escalation:
            - {after: 15m, receiver: manager}
    - matchers: ["team=~pay.*"]
      receiver: audit
inhibit_rules:
  - name: outage
    source_matchers: ["alertname=db_down"]
    target_matchers: ["team=payments"]
    equal: [cluster]
"""


@pytest.fixture
def rules():
    return parse_rules(RULES)


def receivers_of(router: Router, **labels: str) -> list[str]:
    return [t.receiver for t in router.targets(labels)]


@pytest.mark.parametrize(("labels", "expected"), [
    ({"alertname": "a", "team": "payments", "severity": "warning"}, ["team_slack", "audit"]),
    ({"alertname": "a", "team": "payments", "severity": "critical"}, ["pager", "audit"]),
    ({"alertname": "a", "team": "payroll", "severity": "critical"}, ["audit"]),
    ({"alertname": "a", "team": "pay", "severity": "critical"}, ["audit"]),
    ({"alertname": "a", "team": "shop"}, ["console"]),
    ({"alertname": "a"}, ["console"]),
], ids=["continue-to-sibling", "nested-child", "regex-sibling", "anchored", "fallthrough",
        "no-labels"])
def test_route_tree(rules, labels: dict[str, str], expected: list[str]) -> None:
    assert receivers_of(rules.router(), **labels) == expected


def test_inheritance_and_group_keys(rules) -> None:
    router = rules.router()
    pager = router.targets({"alertname": "dl", "team": "payments", "severity": "critical",
                            "queue": "q1"})[0]
    assert pager.group_by == ("alertname", "queue")
    assert pager.group_interval == timedelta(minutes=5)
    assert [(e.after, e.receiver) for e in pager.escalation] == [(timedelta(minutes=15),
                                                                  "manager")]
    assert pager.group_key({"alertname": "dl", "queue": "q1", "x": "y"}) == \
        'root.0.0:pager:{alertname="dl",queue="q1"}'
    direct = router.targets({"alertname": "dl"}, direct_receivers=["audit"])
    assert [t.receiver for t in direct] == ["audit"]


def test_inhibition_equal_labels_and_no_self_inhibition(rules) -> None:
    router = rules.router()
    target = {"alertname": "dead_letters", "team": "payments", "cluster": "eu"}
    source = {"alertname": "db_down", "cluster": "eu"}
    assert "inhibited outage by firing db_down" in str(router.inhibited_by(target, [source]))
    assert router.inhibited_by(target, [{**source, "cluster": "us"}]) is None
    assert router.inhibited_by({**target, "cluster": ""}, [{"alertname": "db_down"}]) \
        is not None, "a missing label equals an empty one"
    both = {"alertname": "db_down", "team": "payments", "cluster": "eu"}
    assert router.inhibited_by(both, [both]) is None, "an alert never inhibits itself"
    assert router.inhibited_by(both, [{**both, "instance": "2"}]) is None, \
        "two-sided matches do not inhibit each other"


def fire(timeline: Timeline, rules, rule: str, at: datetime, status: Status = Status.ALERT,
         severity: Severity = Severity.WARNING, **labels: str):
    obs = Observation(rule, status, labels, 1.0, summary=f"{rule} {labels}")
    policy = RulePolicy(rule=rule, severity=severity, receivers=(),
                        repeat_interval=timedelta(hours=4))
    return timeline.alerts.process_many([(obs, policy, {"summary": obs.summary})], now=at,
                                        router=rules.router())[0]


def groups_sent(timeline: Timeline, receiver: str) -> list[dict]:
    return [o["payload"] for o in timeline.outbox.rows() if o["receiver"] == receiver]


def test_thousand_alerts_one_message_per_group_per_interval(sqlite_url: str, rules) -> None:
    timeline = Timeline(sqlite_url)
    router = rules.router()
    policy = RulePolicy(rule="disk_full", receivers=())
    items = [(Observation("disk_full", Status.ALERT, {"host": f"h{i}"}, 1.0, summary="full"),
              policy, {"summary": "full"}) for i in range(1000)]
    timeline.alerts.process_many(items, now=T0, router=router)
    (message,) = groups_sent(timeline, "console")
    assert message["notification_reason"] == "first"
    assert len(message["alerts"]) == 100 and message["truncated_alerts"] == 900
    # More alerts of the same group within group_interval wait for the next flush.
    more = [(Observation("disk_full", Status.ALERT, {"host": f"x{i}"}, 1.0, summary="full"),
             policy, {"summary": "full"}) for i in range(50)]
    timeline.alerts.process_many(more, now=T0 + timedelta(minutes=1), router=router)
    assert len(groups_sent(timeline, "console")) == 1
    assert timeline.outbox.flush_due(router=router, now=T0 + timedelta(minutes=4)) == []
    assert len(timeline.outbox.flush_due(router=router, now=T0 + timedelta(minutes=5))) == 1
    second = groups_sent(timeline, "console")[1]
    assert second["notification_reason"] == "new_alerts" and len(second["alerts"]) == 50


def test_resolved_before_group_wait_is_never_sent(sqlite_url: str) -> None:
    rules = parse_rules("defaults: {group_wait: 30s}")
    timeline = Timeline(sqlite_url)
    fire(timeline, rules, "blip", T0)
    fire(timeline, rules, "blip", T0 + timedelta(seconds=10), status=Status.OK)
    assert timeline.outbox.flush_due(router=rules.router(), now=T0 + timedelta(seconds=31)) == []
    assert timeline.outbox.rows() == []


def test_routes_fan_out_and_groups_differ(sqlite_url: str, rules) -> None:
    timeline = Timeline(sqlite_url)
    fire(timeline, rules, "dead_letters", T0, severity=Severity.CRITICAL, team="payments",
         queue="q1")
    fire(timeline, rules, "dead_letters", T0, severity=Severity.CRITICAL, team="payments",
         queue="q2")
    assert len(groups_sent(timeline, "pager")) == 2, "pager groups by queue too"
    assert len(groups_sent(timeline, "audit")) == 1, "audit groups by alertname only"
    assert groups_sent(timeline, "team_slack") == []


def test_inhibited_alert_is_muted_with_reason(sqlite_url: str, rules) -> None:
    timeline = Timeline(sqlite_url)
    fire(timeline, rules, "db_down", T0, cluster="eu")
    result = fire(timeline, rules, "dead_letters", T0 + timedelta(minutes=1), team="payments",
                  cluster="eu")
    assert result.decision.record.state == AlertState.FIRING
    assert "inhibited outage by firing db_down" in str(result.decision.muted_by)
    assert result.outbox_ids == []
    (suppressed,) = timeline.events.list(rule="dead_letters", kinds=["suppressed"])
    assert "inhibited" in suppressed["reason"]


def test_escalation_steps_until_ack(sqlite_url: str, rules) -> None:
    timeline = Timeline(sqlite_url)
    first = fire(timeline, rules, "dead_letters", T0, severity=Severity.CRITICAL,
                 team="payments", queue="q1")
    fp = first.decision.record.fingerprint
    assert escalate_due(rules, timeline, now=T0 + timedelta(minutes=14)) == []
    done = escalate_due(rules, timeline, now=T0 + timedelta(minutes=15))
    assert done == [f"dead_letters [{fp[:8]}] → manager (step 1)"]
    assert escalate_due(rules, timeline, now=T0 + timedelta(minutes=16)) == [], "once only"
    timeline.outbox.flush_due(router=rules.router(), now=T0 + timedelta(minutes=15))
    (sent,) = groups_sent(timeline, "manager")
    assert sent["notification_reason"] == "escalation"
    (event,) = timeline.events.list(kinds=["escalated"])
    assert event["payload"] == {"step": 1, "receiver": "manager"}

    second = fire(timeline, rules, "dead_letters", T0, severity=Severity.CRITICAL,
                  team="payments", queue="q2")
    ack_alert(rules, timeline, second.decision.record.fingerprint, by="alice",
              now=T0 + timedelta(minutes=5))
    assert escalate_due(rules, timeline, now=T0 + timedelta(hours=1)) == [], "ack stops it"


def test_ack_tells_incident_tools(sqlite_url: str, rules) -> None:
    timeline = Timeline(sqlite_url)
    result = fire(timeline, rules, "dead_letters", T0, severity=Severity.CRITICAL,
                  team="payments", queue="q1")
    ack_alert(rules, timeline, result.decision.record.fingerprint, by="alice",
              now=T0 + timedelta(minutes=2))
    timeline.outbox.flush_due(router=rules.router(), now=T0 + timedelta(minutes=10))
    reasons = [g["notification_reason"] for g in groups_sent(timeline, "pager")]
    assert reasons == ["first", "acknowledged"]
    # Receivers that do not track incidents skip acknowledgements.
    assert not make_receiver("webhook", name="x", url="http://127.0.0.1:9").wants(
        groups_sent(timeline, "pager")[1])


def test_receiver_broken_alert_goes_to_fallback(sqlite_url: str, http_receiver) -> None:
    from alert_jobs.runtime.deliver import deliver

    http_receiver.default = 404
    rules = parse_rules(f"""
receivers:
  - {{name: console, type: console}}
  - {{name: hook, type: webhook, url: '{http_receiver.url}'}}
defaults: {{receivers: [hook]}}
""")
    timeline = Timeline(sqlite_url)
    fire(timeline, rules, "dead_letters", datetime.now(UTC), team="payments")
    report = deliver(rules, timeline)
    assert report.failed == 1 and "hook" in report.broken
    broken = [a for a in timeline.alerts.list() if a.rule == "receiver_broken"]
    assert [a.labels for a in broken] == [{"receiver": "hook"}]
    assert broken[0].severity == Severity.CRITICAL
    console_rows = [o for o in timeline.outbox.rows() if o["receiver"] == "console"]
    assert console_rows and console_rows[0]["delivered_at"] is not None
    summary = console_rows[0]["payload"]["alerts"][0]["summary"]
    assert "Expected receiver hook to accept notifications; it answered HTTP 404" in summary
    # Once the receiver works again, the alert resolves.
    http_receiver.default = 200
    fire(timeline, rules, "other", datetime.now(UTC), team="x")
    deliver(rules, timeline)
    assert [a for a in timeline.alerts.list() if a.rule == "receiver_broken"] == []


def test_deliver_due_sends_concurrently_and_bounded(sqlite_url: str) -> None:
    timeline = Timeline(sqlite_url)
    rules = parse_rules("defaults: {receivers: [console]}")
    for i in range(30):
        fire(timeline, rules, f"rule_{i}", T0, team="x")
    probe = _InFlightProbe(WebhookReceiverConfig(name="console", type="webhook",
                                                 url="http://unused"))
    report = deliver_due(timeline, {"console": probe}, now=lambda: T0, concurrency=8)
    assert report.sent == 30
    assert _InFlightProbe.peak == 8, "sends overlap, but never more than the pool allows"


class _InFlightProbe(WebhookReceiver):
    """Counts how many deliveries are in flight at once (no network)."""

    now: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    lock: ClassVar[threading.Lock] = threading.Lock()  # senders are threads

    async def deliver(self, group, http) -> None:  # type: ignore[override]
        import asyncio

        with type(self).lock:
            type(self).now += 1
            type(self).peak = max(type(self).peak, type(self).now)
        await asyncio.sleep(0.05)
        with type(self).lock:
            type(self).now -= 1
