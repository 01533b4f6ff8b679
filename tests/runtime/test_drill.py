"""Fire drills through the real path: engine, routing, outbox, two real webhook receivers
on 127.0.0.1, the timeline (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from alert_jobs.config import RulesError, RulesFile, parse_rules
from alert_jobs.core.model import AlertState, Observation, Status
from alert_jobs.notify.registry import build_receivers
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.runtime.drill import (
    DRILL_FINISHED,
    DRILL_STARTED,
    FAILED_RULE,
    DrillError,
    last_drills,
    run_drill,
)
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.runtime.sla import delivery_budget, evaluation_interval, notify_sla
from alert_jobs.store import Timeline
from tests.conftest import HttpReceiver, serving_receiver


@pytest.fixture
def team_receiver() -> Iterator[HttpReceiver]:
    """A second real webhook receiver (the first is conftest's ``http_receiver``)."""
    with serving_receiver("/team") as receiver:
        yield receiver


def rules_text(oncall: str, team: str, *, extra_rule: str = "", drills: str = "") -> str:
    """``dead_letters`` (team=payments) routes to two webhooks, oncall and team; the
    default group_wait is 30 s, which a drill must not wait for."""
    return f"""
receivers:
  - {{name: console, type: console}}
  - {{name: oncall, type: webhook, url: '{oncall}', timeout: 5s}}
  - {{name: team, type: webhook, url: '{team}', timeout: 5s}}
defaults: {{receivers: [console], group_wait: 30s, fallback_receiver: console}}
route:
  receiver: console
  routes:
    - {{matchers: [team=payments], receiver: oncall, continue: true}}
    - {{matchers: [team=payments], receiver: team}}
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///unused.db
      query: SELECT 1
      expect: {{min: 0, max: 0}}
      labels: {{team: payments}}
      for: 10m
{extra_rule}
{drills}
"""


@pytest.fixture
def rules(http_receiver: HttpReceiver, team_receiver: HttpReceiver) -> RulesFile:
    return parse_rules(rules_text(http_receiver.url, team_receiver.url))


def _alerts(receiver: HttpReceiver) -> list[dict[str, Any]]:
    return [a for r in receiver.requests for a in r.json()["alerts"]]


def test_drill_pages_every_routed_receiver_marked_timed_and_resolved(
        db_url: str, rules: RulesFile, http_receiver: HttpReceiver,
        team_receiver: HttpReceiver) -> None:
    timeline = Timeline(db_url)
    result = run_drill(rules, timeline, "dead_letters", by="alice")

    assert result.passed, result.lines()
    assert [r.receiver for r in result.receivers] == ["oncall", "team"]
    budget = delivery_budget(rules, rules.rule("dead_letters")).total_seconds()
    assert budget == 30 + 60  # group_wait + 1 minute: the part of the SLA after firing
    for r in result.receivers:
        assert r.seconds is not None and 0 <= r.seconds < budget and r.resolved
    for receiver in (http_receiver, team_receiver):
        firing, resolved = (r.json() for r in receiver.requests)
        assert firing["status"] == "firing" and resolved["status"] == "resolved"
        (alert,) = firing["alerts"]
        assert alert["labels"]["drill"] == result.drill_id
        assert alert["labels"]["alertname"] == "dead_letters"
        assert alert["annotations"]["drill"] == result.drill_id
        assert alert["annotations"]["summary"].startswith("[DRILL]")
        assert resolved["alerts"][0]["labels"]["drill"] == result.drill_id

    # The drill alert is resolved; its fingerprint is not the real alert's.
    drill_alert = timeline.alerts.get(result.fingerprint)
    assert drill_alert is not None and drill_alert.state == AlertState.RESOLVED
    real = Observation("dead_letters", Status.ALERT, {"team": "payments"}, 1.0)
    assert real.fingerprint != result.fingerprint

    started, finished = timeline.events.list(kinds=[DRILL_STARTED, DRILL_FINISHED])
    assert started["kind"] == DRILL_STARTED and started["actor"] == "alice"
    assert started["payload"]["receivers"] == ["oncall", "team"]
    assert finished["actor"] == "alice" and finished["payload"]["passed"] is True
    assert {r["receiver"]: r["seconds"] is not None
            for r in finished["payload"]["receivers"]} == {"oncall": True, "team": True}
    sent = timeline.events.list(kinds=["notification_sent"], fingerprint=None)
    assert len(sent) == 4  # firing and resolve, to each receiver


def test_drill_never_touches_or_joins_a_real_alert(
        sqlite_url: str, rules: RulesFile, http_receiver: HttpReceiver) -> None:
    """A real dead_letters alert is pending (``for: 10m``) and another is queued in its
    group (group_wait 30 s, not due yet): the drill neither fires nor sends them, and no
    message mixes drill and real alerts."""
    timeline = Timeline(sqlite_url)
    rule = rules.rule("dead_letters")
    now = datetime.now(UTC)
    real = Observation("dead_letters", Status.ALERT, {"team": "payments"}, 3.0, summary="3")
    process_observations(rules, rule, timeline, [(real, "")], now=now, run_id=None)
    assert timeline.alerts.get(real.fingerprint).state == AlertState.PENDING

    result = run_drill(rules, timeline, "dead_letters", by="alice")

    assert result.passed
    assert timeline.alerts.get(real.fingerprint).state == AlertState.PENDING
    for request in http_receiver.requests:
        labels = [a["labels"] for a in request.json()["alerts"]]
        assert all(lab.get("drill") == result.drill_id for lab in labels)
    # Positive control: the real alert, once past `for`, is queued and sent as usual,
    # in its own message without the drill label.
    later = now + timedelta(minutes=11)
    process_observations(rules, rule, timeline, [(real, "")], now=later, run_id=None)
    deliver_due(timeline, build_receivers(rules.receivers), now=lambda: later)
    timeline.outbox.flush_due(router=rules.router(), now=later + timedelta(seconds=31))
    report = deliver_due(timeline, build_receivers(rules.receivers),
                         now=lambda: later + timedelta(seconds=31))
    assert report.sent >= 1
    real_alerts = [a for a in _alerts(http_receiver) if "drill" not in a["labels"]]
    assert real_alerts and real_alerts[0]["status"] == "firing"


def test_a_failing_receiver_fails_the_drill_and_is_retried(
        db_url: str, rules: RulesFile, http_receiver: HttpReceiver,
        team_receiver: HttpReceiver) -> None:
    timeline = Timeline(db_url)
    team_receiver.default = 500
    result = run_drill(rules, timeline, "dead_letters", by="alice")

    assert not result.passed
    oncall, team = result.receivers
    assert oncall.seconds is not None and oncall.error is None
    assert team.seconds is None and "500" in (team.error or "")
    assert "the outbox retries it" in (team.error or "")
    assert any(p.startswith("team did not get the page") for p in result.problems)
    (finished,) = timeline.events.list(kinds=[DRILL_FINISHED])
    assert finished["payload"]["passed"] is False

    # Not lost: the row waits for its retry, and is delivered once the receiver is back.
    pending = [r for r in timeline.outbox.rows(pending_only=True) if r["receiver"] == "team"]
    assert pending and all(r["failed_at"] is None and r["attempts"] == 1 for r in pending)
    team_receiver.default = 200
    later = datetime.now(UTC) + timedelta(hours=1)
    report = deliver_due(timeline, build_receivers(rules.receivers), now=lambda: later)
    assert report.sent == len(pending)
    statuses = [a["status"] for a in _alerts(team_receiver) if a["labels"].get("drill")]
    assert "firing" in statuses and "resolved" in statuses


def test_unknown_rule_is_a_clear_error(sqlite_url: str, rules: RulesFile) -> None:
    with pytest.raises(DrillError, match=r"unknown rule 'nope'.*dead_letters"):
        run_drill(rules, Timeline(sqlite_url), "nope", by="alice")


def test_a_silenced_rule_fails_its_drill(sqlite_url: str, rules: RulesFile,
                                         http_receiver: HttpReceiver) -> None:
    """A silence that would mute the real page mutes the drill too, and the drill says so."""
    from alert_jobs.core.model import Matcher

    timeline = Timeline(sqlite_url)
    timeline.silences.add([Matcher.parse("alertname=dead_letters")],
                          ends_at=datetime.now(UTC) + timedelta(hours=1), created_by="bob",
                          comment="maintenance")
    result = run_drill(rules, timeline, "dead_letters", by="alice")
    assert not result.passed and result.muted_by
    assert http_receiver.requests == []
    assert all(r.error and r.error.startswith("not queued") for r in result.receivers)


# ----- SLA --------------------------------------------------------------------------


def test_notify_sla_default_and_explicit(http_receiver: HttpReceiver,
                                         team_receiver: HttpReceiver) -> None:
    extra = """    - name: fast
      database: sqlite:///unused.db
      query: SELECT 1
      expect: {min: 0, max: 0}
      schedule: "0 * * * *"
      sla: 90s
"""
    rules = parse_rules(rules_text(http_receiver.url, team_receiver.url, extra_rule=extra))
    dead = rules.rule("dead_letters")
    assert evaluation_interval(rules, dead) == timedelta(minutes=5)  # defaults.schedule
    # for 10m + every 5 min + group_wait 30s + 1 minute
    assert notify_sla(rules, dead) == timedelta(minutes=16, seconds=30)
    fast = rules.rule("fast")
    assert notify_sla(rules, fast) == timedelta(seconds=90)
    # hourly evaluation: an sla of 90 s cannot be met by a condition that starts after a run
    assert delivery_budget(rules, fast) == timedelta(0)


# ----- scheduled drills: the fire_drill_failed alert --------------------------------


class SlowHandler(BaseHTTPRequestHandler):
    """Answers 200, after ``delay`` seconds."""

    delay = 1.3
    bodies: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).bodies.append(json.loads(body))
        time.sleep(type(self).delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def slow_url() -> Iterator[str]:
    SlowHandler.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow"
    server.shutdown()
    server.server_close()


def _failed_alert(timeline: Timeline) -> Any:
    found = [a for a in timeline.alerts.list(include_inactive=True) if a.rule == FAILED_RULE]
    return found[0] if found else None


def test_failed_drill_alerts_and_the_next_passing_drill_resolves_it(
        sqlite_url: str, rules: RulesFile, team_receiver: HttpReceiver) -> None:
    timeline = Timeline(sqlite_url)
    team_receiver.default = 500
    failed = run_drill(rules, timeline, "dead_letters", by="schedule", alert_on_failure=True)
    assert not failed.passed
    alert = _failed_alert(timeline)
    assert alert is not None and alert.state == AlertState.FIRING
    assert alert.labels == {"rule": "dead_letters"} and "team" in alert.last_summary

    team_receiver.default = 200
    passed = run_drill(rules, timeline, "dead_letters", by="schedule", alert_on_failure=True)
    assert passed.passed
    assert _failed_alert(timeline).state == AlertState.RESOLVED
    kinds = [e["kind"] for e in timeline.events.list(rule=FAILED_RULE)]
    assert "firing" in kinds and "resolved" in kinds


def test_too_slow_drill_alerts(sqlite_url: str, slow_url: str) -> None:
    """A receiver that accepts but takes 1.3 s, against a budget of 1 s (sla 61 s − an
    evaluation every minute): the page arrived, too late; fire_drill_failed fires."""
    rules = parse_rules(f"""
receivers:
  - {{name: console, type: console}}
  - {{name: slow, type: webhook, url: '{slow_url}', timeout: 5s}}
defaults: {{receivers: [slow], fallback_receiver: console}}
checks:
  sql_metric:
    - name: orders
      database: sqlite:///unused.db
      query: SELECT 1
      expect: {{min: 0, max: 0}}
      schedule: "* * * * *"
      sla: 61s
""")
    timeline = Timeline(sqlite_url)
    result = run_drill(rules, timeline, "orders", by="schedule", alert_on_failure=True)
    (slow,) = result.receivers
    assert slow.seconds is not None and slow.seconds >= 1.3
    assert not result.passed and "over the budget of 1.0 s" in result.problems[0]
    assert _failed_alert(timeline).state == AlertState.FIRING
    assert SlowHandler.bodies[0]["alerts"][0]["labels"]["drill"] == result.drill_id
    assert last_drills(timeline)["orders"].passed is False


def test_passing_drill_raises_no_failure_alert(sqlite_url: str, rules: RulesFile) -> None:
    """A rule that never failed a drill gets no fire_drill_failed row at all (the failing
    case beside it is test_failed_drill_alerts_and_the_next_passing_drill_resolves_it)."""
    timeline = Timeline(sqlite_url)
    assert run_drill(rules, timeline, "dead_letters", by="schedule", alert_on_failure=True).passed
    assert _failed_alert(timeline) is None


def test_last_drills_reads_the_latest(sqlite_url: str, rules: RulesFile,
                                      team_receiver: HttpReceiver) -> None:
    timeline = Timeline(sqlite_url)
    assert last_drills(timeline) == {}
    team_receiver.default = 500
    run_drill(rules, timeline, "dead_letters", by="alice")
    assert last_drills(timeline)["dead_letters"].passed is False
    team_receiver.default = 200
    run_drill(rules, timeline, "dead_letters", by="alice")
    last = last_drills(timeline)["dead_letters"]
    now = last.at + timedelta(days=3)
    assert last.passed and last.text(now).startswith("last drill 3 days ago, paged in ")


def test_drills_section_is_validated(http_receiver: HttpReceiver,
                                     team_receiver: HttpReceiver) -> None:
    ok = parse_rules(rules_text(http_receiver.url, team_receiver.url, drills="""
drills:
  enabled: true
  timezone: Europe/Berlin
  rules: [dead_letters]
"""))
    from alert_jobs.config.drills import DrillsConfig

    assert ok.section(DrillsConfig).rules == ["dead_letters"]
    with pytest.raises(RulesError, match="unknown rule 'nope'"):
        parse_rules(rules_text(http_receiver.url, team_receiver.url,
                               drills="drills: {rules: [nope]}"))
    with pytest.raises(RulesError, match=r"enabled but drills\.rules lists no rule"):
        parse_rules(rules_text(http_receiver.url, team_receiver.url,
                               drills="drills: {enabled: true}"))


def test_drill_rule_name_is_reserved(http_receiver: HttpReceiver,
                                     team_receiver: HttpReceiver) -> None:
    extra = """    - name: fire_drill_failed
      database: sqlite:///unused.db
      query: SELECT 1
      expect: {min: 0, max: 0}
"""
    with pytest.raises(RulesError, match="fire_drill_failed"):
        parse_rules(rules_text(http_receiver.url, team_receiver.url, extra_rule=extra))


def test_drill_helpers_do_not_need_a_path(tmp_path: Path) -> None:
    """``DrillRouter`` keeps the rules file's receivers but its own group per drill."""
    from alert_jobs.runtime.drill import DrillRouter

    rules = parse_rules("""
receivers: [{name: console, type: console}]
defaults: {receivers: [console], group_wait: 1m, group_by: [alertname]}
""")
    base = rules.router()
    drill = DrillRouter(base)
    labels = {"alertname": "x", "drill": "abc"}
    (real,), (drilled,) = base.targets(labels), drill.targets(labels)
    assert real.receiver == drilled.receiver == "console"
    assert drilled.group_wait == timedelta(0) and real.group_wait == timedelta(minutes=1)
    assert drilled.group_key(labels) != real.group_key(labels)
    assert drilled.group_key(labels) != drilled.group_key({**labels, "drill": "other"})


def test_a_rule_cannot_set_the_drill_label_itself() -> None:
    """Drill alerts are told apart by their ``drill`` label (they never count in alert
    quality), so a rule may not set it: its real alerts would vanish from the review."""
    from alert_jobs.config import RulesError, parse_rules

    rule = "{name: x, database: 'sqlite://', query: 'select 1', expect: {max: 0}%s}"
    parse_rules("checks:\n  sql_metric:\n    - " + rule % ", labels: {team: a}")  # control
    with pytest.raises(RulesError, match="label 'drill' is set by alert-jobs itself"):
        parse_rules("checks:\n  sql_metric:\n    - " + rule % ", labels: {drill: a}")
