"""The pure part: postableAlerts validated as Alertmanager does, its merge and endsAt
rules, and one alert instance settled from its Alertmanager alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.core.model import Severity, Status, fingerprint
from alert_jobs.families.external.check import (
    InvalidAlerts,
    parse_alerts,
    settle,
    stored,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def test_what_prometheus_sends_is_read_as_alertmanager_reads_it() -> None:
    (a,) = parse_alerts([{
        "labels": {"alertname": "Up", "severity": "critical", "job": "api", "empty": ""},
        "annotations": {"summary": "down"},
        "startsAt": "2026-03-01T11:59:30.123456789Z",  # Go's nanoseconds
        "endsAt": "0001-01-01T00:00:00Z",  # Go's zero time: unset
        "generatorURL": "http://p:9090/graph"}])
    assert a.rule == "Up" and a.labels == {"job": "api"} and a.severity_label == "critical"
    assert a.starts_at == datetime(2026, 3, 1, 11, 59, 30, 123456, tzinfo=UTC)
    assert a.ends_at is None
    assert a.fingerprint == fingerprint("Up", {"job": "api"})
    other = parse_alerts([{"labels": {"alertname": "Up", "severity": "warning",
                                      "job": "api"}}])[0]
    assert other.fingerprint == a.fingerprint and other.key != a.key  # one instance, two AM alerts
    assert parse_alerts([{"labels": {"alertname": "Up"}, "startsAt":
                          "2026-03-01T13:00:00+01:00"}])[0].starts_at == NOW


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(InvalidAlerts) as caught:
        parse_alerts([{"labels": {"job": "x"}}, {"labels": {"alertname": "A"}},
                      {"labels": {"alertname": "B", "0": "x"}, "endsAt": "soon"}])
    text = str(caught.value)
    assert "alert 0.labels: alertname missing" in text
    assert "alert 2.labels: invalid name '0'" in text and "alert 2.endsAt" in text
    assert "alert 1" not in text  # positive control: the good one is not blamed


def test_endsat_defaults_and_the_merge() -> None:
    (a,) = parse_alerts([{"labels": {"alertname": "A"}}])
    first = stored(a, now=NOW, resolve_timeout=FIVE, severity=Severity.WARNING, pushed_by="p")
    assert first.timeout and first.ends_at == NOW + FIVE and first.starts_at == NOW

    # An explicit end that is later wins over a timeout end, and stays over one.
    (b,) = parse_alerts([{"labels": {"alertname": "A"}, "startsAt": "2026-03-01T11:00:00Z",
                          "endsAt": "2026-03-01T12:30:00Z"}])
    second = stored(b, now=NOW, resolve_timeout=FIVE, severity=Severity.WARNING,
                    pushed_by="p", prior=first)
    assert not second.timeout and second.starts_at == NOW - timedelta(hours=1)
    third = stored(a, now=NOW + timedelta(minutes=1), resolve_timeout=FIVE,
                   severity=Severity.WARNING, pushed_by="p", prior=second)
    assert third.ends_at == second.ends_at and not third.timeout
    assert third.starts_at == second.starts_at  # the earliest start is kept

    # A resolve (an end in the past) is taken as sent.
    (r,) = parse_alerts([{"labels": {"alertname": "A"}, "endsAt": "2026-03-01T11:59:00Z"}])
    resolved = stored(r, now=NOW, resolve_timeout=FIVE, severity=Severity.WARNING,
                      pushed_by="p", prior=third)
    assert resolved.ends_at == NOW - timedelta(minutes=1) and not resolved.firing(NOW)


def test_an_instance_fires_while_any_of_its_alerts_does_at_the_highest_severity() -> None:
    warn, crit = parse_alerts([
        {"labels": {"alertname": "Disk", "severity": "warning"},
         "annotations": {"summary": "80 %"}},
        {"labels": {"alertname": "Disk", "severity": "critical"},
         "annotations": {"summary": "95 %", "description": "almost full", "team": "infra"}}])
    w = stored(warn, now=NOW, resolve_timeout=FIVE, severity=Severity.WARNING, pushed_by="p")
    c = stored(crit, now=NOW, resolve_timeout=FIVE, severity=Severity.CRITICAL, pushed_by="p")
    obs, ended = settle([w, c], NOW)
    assert obs.status == Status.ALERT and obs.severity == Severity.CRITICAL
    assert obs.summary == "95 %" and ended == []
    assert obs.details["first_steps"] == "almost full\nteam: infra"

    obs, ended = settle([w, c], NOW + timedelta(minutes=6))  # both passed endsAt unsent
    assert obs.status == Status.OK and sorted(ended) == sorted([w.key, c.key])
    assert "not sent again before its end" in obs.summary
