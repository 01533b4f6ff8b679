"""``POST /api/v2/alerts`` against the served app: pushed alerts go through the engine to
a real webhook receiver, once per change; bad pushes are refused whole."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.core.model import AlertState, Severity
from alert_jobs.families.external.store import ExternalStore
from alert_jobs.store import Timeline, utcnow
from tests.conftest import HttpReceiver
from tests.families.external.support import (
    CALLER,
    alert,
    messages,
    parse,
    rules_text,
    serve,
    wait_for,
)


def _events(timeline: Timeline, kinds: tuple[str, ...] = ("pushed", "firing", "resolved")
            ) -> list[dict[str, Any]]:
    return [e for e in timeline.events.list(limit=1000) if e["kind"] in kinds]


def test_a_pushed_alert_fires_once_and_resolves_once(tmp_path: Path, db_url: str,
                                                     http_receiver: HttpReceiver) -> None:
    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules, db_url=db_url) as served:
        now = utcnow()
        firing = alert(starts=now - timedelta(minutes=2), ends=now + timedelta(minutes=4),
                       instance="api-1")
        answer = served.push([firing])
        assert answer.status_code == 200, answer.text

        first = wait_for(lambda: messages(http_receiver), what="the firing message")
        assert len(first) == 1
        body = first[0]
        assert body["status"] == "firing"
        sent = body["alerts"][0]
        assert sent["labels"] == {"alertname": "HighErrorRate", "severity": "critical",
                                  "job": "api", "instance": "api-1"}
        assert sent["annotations"]["summary"] == "HighErrorRate: 5% of requests fail"
        assert sent["annotations"]["description"] == "The API answers 5xx to 5% of requests."
        assert sent["annotations"]["runbook_url"] == "https://runbooks.example.com/errors"
        assert sent["annotations"]["dashboard_url"] == \
            "http://prometheus.example:9090/graph?g0.expr=errors"
        assert "The API answers 5xx" in body["text"]

        (record,) = served.timeline.alerts.list()
        assert record.rule == "HighErrorRate" and record.state == AlertState.FIRING
        assert record.labels == {"job": "api", "instance": "api-1"}
        assert record.severity == Severity.CRITICAL
        pushed = [e for e in _events(served.timeline) if e["kind"] == "pushed"]
        assert [(e["actor"], e["source"], e["payload"]["status"]) for e in pushed] == [
            (CALLER, "api", "firing")]

        # Prometheus sends it again every resend delay: no new message, no new event.
        for _ in range(3):
            assert served.push([firing]).status_code == 200
        resolve = {**firing, "endsAt": (now - timedelta(seconds=1)).isoformat()}
        time.sleep(0.3)
        assert len(messages(http_receiver)) == 1
        assert len(_events(served.timeline, ("firing",))) == 1

        # The resolve (endsAt in the past) is sent once, however often it is re-sent.
        assert served.push([resolve]).status_code == 200
        both = wait_for(lambda: len(messages(http_receiver)) >= 2 and messages(http_receiver),
                        what="the resolve")
        assert both[1]["status"] == "resolved"
        assert both[1]["alerts"][0]["labels"]["instance"] == "api-1"
        for _ in range(2):
            assert served.push([resolve]).status_code == 200
        time.sleep(0.3)
        assert len(messages(http_receiver)) == 2  # positive control: the 2 above arrived
        after = served.timeline.alerts.get(record.fingerprint)
        assert after is not None and after.state == AlertState.RESOLVED
        assert ExternalStore(served.timeline).all() == []  # forgotten once resolved
        assert [(e["kind"], e["source"]) for e in _events(served.timeline)] == [
            ("firing", "engine"), ("pushed", "api"), ("resolved", "engine"), ("pushed", "api")]


def test_an_alert_not_sent_again_before_endsat_is_resolved_by_the_sweep(
        tmp_path: Path, http_receiver: HttpReceiver) -> None:
    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules) as served:
        now = utcnow()
        short = alert("DiskFull", ends=now + timedelta(seconds=1), device="sda")
        kept = alert("Kept", ends=now + timedelta(minutes=10))
        assert served.push([short, kept]).status_code == 200
        wait_for(lambda: len(messages(http_receiver)) >= 2, what="two firing messages")
        assert {a.rule: a.state for a in served.timeline.alerts.list()} == {
            "DiskFull": AlertState.FIRING, "Kept": AlertState.FIRING}

        time.sleep(1.2)  # DiskFull's endsAt passes unsent; the next push sweeps first
        assert served.push([kept]).status_code == 200
        three = wait_for(lambda: len(messages(http_receiver)) >= 3 and messages(http_receiver),
                         what="the swept resolve")
        resolved = three[2]
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["labels"]["alertname"] == "DiskFull"
        assert "not sent again before its end" in resolved["alerts"][0]["annotations"]["summary"]
        states = {a.rule: a.state for a in served.timeline.alerts.list(include_inactive=True)}
        assert states == {"DiskFull": AlertState.RESOLVED, "Kept": AlertState.FIRING}


def test_the_sweep_resolves_without_a_push_and_a_timeout_end_uses_resolve_timeout(
        tmp_path: Path, http_receiver: HttpReceiver) -> None:
    from alert_jobs.families.external.check import parse_alerts
    from alert_jobs.families.external.run import receive, sweep

    rules = parse(rules_text(http_receiver, "external: {resolve_timeout: 2m}"))
    with serve(tmp_path, rules) as served:
        now = utcnow()
        report = receive(rules, served.timeline, parse_alerts([alert(severity="page")]),
                         now=now, caller="bot")
        assert report.firing == 1 and len(report.outbox_ids) == 1
        (kept,) = ExternalStore(served.timeline).all()
        assert kept.timeout and kept.ends_at == now + timedelta(minutes=2)
        assert kept.severity == Severity.WARNING and kept.severity_label == "page"

        assert sweep(rules, served.timeline, now=now + timedelta(minutes=1, seconds=59)) == []
        (outcome,) = sweep(rules, served.timeline, now=now + timedelta(minutes=2))
        assert outcome.state == AlertState.RESOLVED
        assert outcome.result.decision.notifications[0].kind == "resolved"
        assert ExternalStore(served.timeline).all() == []
        # A resolved alert re-sent by Prometheus afterwards changes nothing.
        late = receive(rules, served.timeline, parse_alerts(
            [alert(severity="page", ends=now + timedelta(minutes=1))]),
            now=now + timedelta(minutes=3), caller="bot")
        assert late.ignored == 1 and late.outcomes == []


def test_severity_comes_from_the_label_and_a_mapping(tmp_path: Path,
                                                     http_receiver: HttpReceiver) -> None:
    from alert_jobs.families.external.check import parse_alerts
    from alert_jobs.families.external.run import receive

    rules = parse(rules_text(http_receiver, "external: {severity: info, severities: "
                                            "{page: critical}}"))
    with serve(tmp_path, rules) as served:
        now = utcnow()
        receive(rules, served.timeline, parse_alerts([
            alert("A", severity="page"), alert("B", severity="Warning"),
            alert("C", severity=None), alert("D", severity="whatever")]), now=now, caller="x")
        assert {a.rule: a.severity for a in served.timeline.alerts.list()} == {
            "A": Severity.CRITICAL, "B": Severity.WARNING, "C": Severity.INFO,
            "D": Severity.INFO}


def test_a_warning_and_a_critical_of_one_target_are_one_alert_raised(
        tmp_path: Path, db_url: str, http_receiver: HttpReceiver) -> None:
    """Prometheus rules often fire a warning and a critical of one alertname for one
    target; they are one alert instance here, at the highest severity while both fire,
    and resolving the critical alone leaves it firing."""
    from alert_jobs.families.external.check import parse_alerts
    from alert_jobs.families.external.run import receive

    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules, db_url=db_url) as served:
        now = utcnow()
        later = now + timedelta(minutes=5)
        receive(rules, served.timeline, parse_alerts([
            alert(severity="warning", ends=later), alert(severity="critical", ends=later)]),
            now=now, caller="p")
        (record,) = served.timeline.alerts.list()
        assert record.severity == Severity.CRITICAL and record.state == AlertState.FIRING
        report = receive(rules, served.timeline, parse_alerts([
            alert(severity="warning", ends=later),
            alert(severity="critical", ends=now + timedelta(seconds=5))]),
            now=now + timedelta(seconds=10), caller="p")
        (record,) = served.timeline.alerts.list()
        assert record.state == AlertState.FIRING and record.severity == Severity.WARNING
        assert report.resolved == 1 and report.firing == 1
        assert len(ExternalStore(served.timeline).all()) == 1  # the critical is forgotten


@pytest.mark.parametrize(("body", "reason"), [
    ({"labels": {"alertname": "X"}}, "expected a JSON array"),
    ([{"annotations": {}}], "labels missing"),
    ([{"labels": {}}], "alertname missing"),
    ([{"labels": {"job": "api"}}], "alertname missing"),
    ([{"labels": {"alertname": "X", "bad-name": "1"}}], "invalid name 'bad-name'"),
    ([{"labels": {"alertname": "X", "n": 1}}], "expected a string"),
    ([{"labels": {"alertname": "X"}, "annotations": {"1x": "y"}}], "annotations: invalid"),
    ([{"labels": {"alertname": "X"}, "startsAt": "yesterday"}], "not an RFC 3339 time"),
    ([{"labels": {"alertname": "X"}, "endsAt": "2026-03-01"}], "not an RFC 3339 time"),
    ([{"labels": {"alertname": "X"}, "startsAt": "2026-03-01T12:00:00Z",
       "endsAt": "2026-03-01T11:00:00Z"}], "endsAt is before startsAt"),
    ([{"labels": {"alertname": "X" * 129}}], "longer than 128"),
    (["X"], "expected an object"),
])
def test_a_bad_push_is_refused_whole_with_the_reason(tmp_path: Path,
                                                     http_receiver: HttpReceiver,
                                                     body: object, reason: str) -> None:
    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules) as served:
        good = alert("Good")
        refused = served.push([good, *body] if isinstance(body, list) else body)
        assert refused.status_code == 400
        assert isinstance(refused.json(), str) and reason in refused.json()
        assert served.timeline.alerts.list() == []  # the good alert of the batch too
        assert ExternalStore(served.timeline).all() == []
        # Positive control: the good alert alone is taken.
        assert served.push([good]).status_code == 200
        assert [a.rule for a in served.timeline.alerts.list()] == ["Good"]


def test_not_json_oversized_and_unauthenticated_pushes(tmp_path: Path,
                                                       http_receiver: HttpReceiver) -> None:
    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules) as served, served.client() as client:
        broken = client.post("/api/v2/alerts", content=b"[{",
                             headers={"content-type": "application/json"})
        assert broken.status_code == 400 and "not valid JSON" in broken.json()
        huge = client.post("/api/v2/alerts", content=b"[" + b" " * (5 * 1024 * 1024) + b"]")
        assert huge.status_code == 413
        assert served.push([alert()], token=None).status_code == 401
        wrong = served.push([alert()], token="not-the-token-0123456789abcdef")
        assert wrong.status_code == 401
        assert served.timeline.alerts.list() == []
        assert served.push([alert()]).status_code == 200  # positive control
        assert len(served.timeline.alerts.list()) == 1


def test_two_prometheus_servers_pushing_at_once_page_once(tmp_path: Path, db_url: str,
                                                          http_receiver: HttpReceiver) -> None:
    """An HA pair of Prometheus servers sends the same alerts at the same moment."""
    import threading

    from alert_jobs.families.external.check import parse_alerts
    from alert_jobs.families.external.run import receive
    from alert_jobs.runtime.deliver import deliver

    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules, db_url=db_url) as served:
        now = utcnow()
        batch = [alert(f"A{i}", ends=now + timedelta(minutes=4)) for i in range(20)]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def push(caller: str) -> None:
            try:
                start.wait()
                receive(rules, served.timeline, parse_alerts(batch), now=utcnow(),
                        caller=caller)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(name,)) for name in ("p1", "p2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        deliver(rules, served.timeline)
        sent = sorted(a["labels"]["alertname"] for m in messages(http_receiver)
                      for a in m["alerts"])
        assert sent == sorted(f"A{i}" for i in range(20))  # each once
        assert len(ExternalStore(served.timeline).all()) == 20


def test_a_silence_on_the_prometheus_labels_mutes_a_pushed_alert(
        tmp_path: Path, http_receiver: HttpReceiver) -> None:
    from alert_jobs.core.model import Matcher

    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules) as served:
        now = utcnow()
        served.timeline.silences.add(
            [Matcher.parse('alertname="HighErrorRate"'), Matcher.parse('instance=~"api-.*"')],
            ends_at=now + timedelta(hours=1), created_by="alice", comment="deploy")
        muted = alert(instance="api-1", ends=now + timedelta(minutes=4))
        heard = alert(instance="web-1", ends=now + timedelta(minutes=4))
        assert served.push([muted, heard]).status_code == 200
        (message,) = wait_for(lambda: messages(http_receiver), what="the unmuted alert")
        assert [a["labels"]["instance"] for a in message["alerts"]] == ["web-1"]
        time.sleep(0.3)
        assert len(messages(http_receiver)) == 1
        assert {a.labels["instance"]: a.state for a in served.timeline.alerts.list()} == {
            "api-1": AlertState.FIRING, "web-1": AlertState.FIRING}  # muted, still firing


def test_a_firing_and_a_resolve_pushed_at_once_never_leave_a_stale_firing(
        tmp_path: Path, db_url: str, http_receiver: HttpReceiver) -> None:
    """One of an HA pair re-sends the alert firing while the other sends its resolve:
    pushes take turns whole (merge, decision, forgetting), so the alert's state always
    follows what is kept — never firing with nothing left for the sweep to resolve."""
    import threading

    from alert_jobs.core.model import AlertState
    from alert_jobs.families.external.check import parse_alerts
    from alert_jobs.families.external.run import receive

    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules, db_url=db_url) as served:
        for _ in range(8):
            now = utcnow()
            firing = parse_alerts([alert(ends=now + timedelta(minutes=4))])
            receive(rules, served.timeline, firing, now=now, caller="p0")
            start = threading.Barrier(2)

            def push(ends: datetime, caller: str, start: threading.Barrier) -> None:
                start.wait()
                receive(rules, served.timeline, parse_alerts([alert(ends=ends)]),
                        now=utcnow(), caller=caller)

            threads = [threading.Thread(target=push, args=(ends, caller, start))
                       for ends, caller in ((now + timedelta(minutes=4), "p1"),
                                            (now - timedelta(seconds=1), "p2"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            [record] = served.timeline.alerts.list(include_inactive=True)
            kept = ExternalStore(served.timeline).all()
            if not kept:  # the resolve came last: nothing kept, so not firing
                assert record.state != AlertState.FIRING
            else:  # the firing came last: kept and firing, the sweep can end it later
                assert record.state == AlertState.FIRING
            receive(rules, served.timeline,  # resolve for the next round
                    parse_alerts([alert(ends=utcnow() - timedelta(seconds=1))]),
                    now=utcnow(), caller="p0")
