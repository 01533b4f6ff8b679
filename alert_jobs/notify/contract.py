"""What every receiver shares to render a group notification the same way.

The message types themselves (:class:`GroupMessage`, :class:`AlertMessage`) are in
:mod:`alert_jobs.core.messages` and re-exported here; this module adds the headline,
the order of links and actions, label and time formatting, the chat body of one
alert, and a realistic sample group for golden tests and ``notify test``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alert_jobs.core.messages import (
    AlertLinks,
    AlertMessage,
    Attachment,
    GroupMessage,
    Status,
)

__all__ = ["AlertLinks", "AlertMessage", "Attachment", "GroupMessage", "Status",
           "chat_body_lines", "format_time", "group_title", "more_alerts", "other_labels",
           "sample_group"]


def group_title(group: GroupMessage) -> str:
    """``[FIRING:3 · critical] dead_letters`` — the same headline on every receiver."""
    alerts = group.get("alerts", [])
    firing = [a for a in alerts if a.get("status") == "firing"]
    status = group.get("status", "firing").upper()
    count = len(firing) if group.get("status") == "firing" else len(alerts)
    worst = _worst_severity(firing or alerts)
    rules = sorted({a.get("rule", "") for a in alerts}) or [""]
    name = rules[0] if len(rules) == 1 else f"{rules[0]} and {len(rules) - 1} more rules"
    prefix = "[TEST] " if group.get("test") else ""
    if any(a.get("drill") for a in alerts):  # a fire drill: nothing is wrong, say so first
        prefix += "[DRILL] "
    counted = f":{count}" if count > 1 else ""
    return f"{prefix}[{status}{counted} · {worst}] {name}"


#: (key in ``alert["actions"]``, label): the order of the message standard.
LINK_ACTIONS = (
    ("ack", "Ack"),
    ("snooze_1h", "Snooze 1 h"),
    ("snooze_6h", "Snooze 6 h"),
    ("actionable", "Actionable"),
    ("false_positive", "False positive"),
    ("noise", "Noise"),
    ("duplicate", "Duplicate"),
    ("disable", "Disable rule"),
)
#: A resolve message's question: its episode's incident record (alert_jobs.http.actions).
HOW_DID_IT_GO = "How did it go?"
LINKS = (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"), ("run_url", "Dagster run"))

#: Labels every message already shows in its headline.
HIDDEN_LABELS = frozenset({"alertname", "severity"})


def other_labels(labels: dict[str, str]) -> str:
    """``queue=q1, team=payments``: the labels the headline does not already show."""
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in HIDDEN_LABELS)


def more_alerts(n: int) -> str:
    return f"… and {n} more alert{'' if n == 1 else 's'}"


def format_time(value: str | None) -> str:
    """ISO 8601 → ``2026-03-01 13:00 UTC``; anything unparseable is shown as given."""
    if not value:
        return "an unknown time"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _worst_severity(alerts: list[AlertMessage]) -> str:
    order = {"info": 0, "warning": 1, "critical": 2}
    return max((a.get("severity", "warning") for a in alerts), key=lambda s: order.get(s, 1),
               default="warning")


def sample_group(status: Status = "firing", n_alerts: int = 1, **overrides: Any) -> GroupMessage:
    """A realistic group for tests, golden files and `notify test`."""
    alerts: list[AlertMessage] = []
    for i in range(n_alerts):
        alerts.append({
            "status": status,
            "rule": "dead_letters",
            "fingerprint": f"e9ad46c199ac{i:04d}",
            "severity": "critical",
            "labels": {"alertname": "dead_letters", "severity": "critical", "team": "payments",
                       "queue": f"q{i}"},
            "summary": "Expected dead letters to be 0 in the last 30 minutes, got 1,000",
            "expected": "to be 0",
            "seen": "1,000",
            "window": "30 minutes",
            "value": 1000.0,
            "description": "dead letters",
            "why": "Each dead letter is a payment that was not booked.",
            "first_steps": "",
            "audience": "engineering",
            "audience_text": "",
            "runbook_url": "https://runbooks.example.com/dead-letters",
            "dashboard_url": "https://grafana.example.com/d/queues",
            "run_url": "http://127.0.0.1:3000/runs/193523d9-7d55-4a29-bbc1-d420fbecd942",
            "starts_at": "2026-03-01T12:00:00+00:00",
            "ends_at": "2026-03-01T13:00:00+00:00" if status == "resolved" else None,
            "notification_reason": "first" if status == "firing" else "resolved",
            "actions": {
                "ack": "http://127.0.0.1:8787/a/ack-token",
                "snooze_1h": "http://127.0.0.1:8787/a/snooze1h-token",
                "snooze_6h": "http://127.0.0.1:8787/a/snooze6h-token",
                "actionable": "http://127.0.0.1:8787/a/actionable-token",
                "false_positive": "http://127.0.0.1:8787/a/fp-token",
                "silence": "alert-jobs silence alertname=dead_letters --for 2h --comment WHY",
                "edit_rule": "alerts.yaml: checks.sql_metric dead_letters",
            },
        })
    group: GroupMessage = {
        "receiver": "test-receiver",
        "group_key": "{}:{alertname=\"dead_letters\"}",
        "group_labels": {"alertname": "dead_letters"},
        "common_labels": {"alertname": "dead_letters", "severity": "critical",
                          "team": "payments"},
        "status": status,
        "notification_reason": "first" if status == "firing" else "resolved",
        "dedup_key": "hook:ab12cd34:1",
        "alerts": alerts,
        "truncated_alerts": 0,
        "dagster_url": "http://127.0.0.1:3000",
        "test": False,
    }
    group.update(overrides)  # type: ignore[typeddict-item]
    return group


CAP_SUMMARY = 1200  # characters of an alert's summary in a chat message
CAP_PROSE = 500  # of why, first steps and audience text


def chat_body_lines(alert: AlertMessage, *, bold: Callable[[str], str],
                    cut: Callable[[str, int], str], link: Callable[[str, str], str],
                    resolved_icon: str) -> list[str]:
    """One alert's body for a chat receiver, in the standard's order: summary (or the
    resolve line), why, first steps, audience text, then the links line (a resolve's with
    "How did it go?"). The receiver
    supplies its markup (``bold``), its escaping cut and its link syntax."""
    firing = alert.get("status", "firing") != "resolved"
    lines: list[str] = []
    summary = cut(alert.get("summary", ""), CAP_SUMMARY)
    if firing:
        lines.append(bold(summary) if summary else "")
    else:
        lines.append(f"{resolved_icon} {bold('Resolved')} at {format_time(alert.get('ends_at'))}.")
        lines.append(summary)
    if alert.get("why"):
        lines.append(f"{bold('Why it matters:')} {cut(alert.get('why', ''), CAP_PROSE)}")
    if firing and alert.get("first_steps"):
        lines.append(f"{bold('First steps:')} {cut(alert.get('first_steps', ''), CAP_PROSE)}")
    if alert.get("audience_text"):
        lines.append(cut(alert.get("audience_text", ""), CAP_PROSE))
    links = [link(str(alert.get(key, "")), label) for key, label in LINKS if alert.get(key)]
    incident = (alert.get("actions") or {}).get("incident", "")
    if not firing and incident.startswith(("http://", "https://")):
        links.append(link(incident, HOW_DID_IT_GO))
    if links:
        lines.append(" · ".join(links))
    return lines
