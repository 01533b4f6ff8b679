"""The message standard (DESIGN.md §5), as one receiver-neutral dict.

What the engine queues in the outbox is this dict, not a receiver's wire format:
it holds no secrets, so it can be stored in the timeline, and each receiver renders
it its own way at send time. Order of content, on every receiver: severity and
rule; expected vs seen with the time frame; why it matters; runbook, dashboard and
Dagster-run links; the actions.
"""

from __future__ import annotations

from typing import Any

from alert_jobs.core.model import Observation, Severity
from alert_jobs.notify.contract import AlertLinks, GroupMessage, group_title


def run_link(dagster_url: str, run_id: str | None) -> str:
    """The Dagster UI's page of a run, or ``""`` without a run (or a UI)."""
    return f"{dagster_url.rstrip('/')}/runs/{run_id}" if dagster_url and run_id else ""


def build_message(
    obs: Observation,
    *,
    severity: Severity,
    description: str = "",
    why: str = "",
    runbook_url: str = "",
    dashboard_url: str = "",
    dagster_url: str = "",
    run_id: str | None = None,
    audience: str = "engineering",
    audience_text: str = "",
    audiences: dict[str, dict[str, str]] | None = None,
    actions: AlertLinks | None = None,
) -> dict[str, Any]:
    """One alert in the message standard's order (an :class:`AlertMessage` minus status).

    ``audience``/``audience_text``: what receivers without an audience show; ``audiences``:
    every audience's view (:func:`alert_jobs.notify.audience.audience_views`)."""
    run_url = run_link(dagster_url, run_id)
    fp = obs.fingerprint
    return {
        "rule": obs.rule,
        "fingerprint": fp,
        "labels": {**obs.labels, "alertname": obs.rule, "severity": str(severity)},
        "severity": str(severity),
        "check_status": str(obs.status),
        "description": description,
        "summary": obs.summary,
        "expected": obs.expected,
        "seen": obs.seen,
        "window": obs.window,
        "value": obs.value,
        "why": why,
        "first_steps": str(obs.details.get("first_steps", "")),
        "audience": audience,
        "audience_text": audience_text,
        **({"audiences": audiences} if audiences else {}),
        "runbook_url": runbook_url,
        "dashboard_url": dashboard_url,
        "run_url": run_url,
        "run_id": run_id,
        "dagster_url": dagster_url,
        "actions": dict(actions or {}),
    }


def headline(message: dict[str, Any]) -> str:
    """``[FIRING · critical] dead_letters`` — severity and rule first, always."""
    status = str(message.get("status", "firing")).upper()
    return f"[{status} · {message.get('severity', '')}] {message.get('rule', '')}"


def render_text(message: dict[str, Any]) -> str:
    """Plain-text rendering used by the console receiver and as a fallback body."""
    lines = [headline(message)]
    if message.get("status") == "resolved":
        lines.append(f"Resolved. Last check: {message.get('summary', '')}")
    else:
        lines.append(message.get("summary", ""))
    if message.get("why"):
        lines.append(f"Why it matters: {message['why']}")
    if message.get("first_steps") and message.get("status") != "resolved":
        lines.append(message["first_steps"])
    links = [
        f"{name}: {message[key]}"
        for name, key in (("Runbook", "runbook_url"), ("Dashboard", "dashboard_url"),
                          ("Dagster run", "run_url"))
        if message.get(key)
    ]
    if links:
        lines.append(" | ".join(links))
    actions = message.get("actions") or {}
    if message.get("status") != "resolved" and actions:
        lines.append("  ·  ".join(f"{label}: {actions[key]}" for label, key in (
            ("Ack", "ack"), ("Snooze 1h", "snooze_1h"), ("Snooze 6h", "snooze_6h"),
            ("Actionable", "actionable"), ("False positive", "false_positive"),
            ("Noise", "noise"), ("Duplicate", "duplicate"), ("Disable rule", "disable"),
            ("Silence", "silence"), ("Edit rule", "edit_rule")) if actions.get(key)))
    elif actions.get("incident"):
        lines.append(f"How did it go? {actions['incident']}")
    labels = {k: v for k, v in message.get("labels", {}).items()
              if k not in ("alertname", "severity")}
    if labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    if message.get("notification_reason"):
        reason, fp = message["notification_reason"], message.get("fingerprint")
        lines.append(f"({reason}, fingerprint {fp})")
    return "\n".join(line for line in lines if line)


def render_group_text(group: GroupMessage) -> str:
    """Plain text for a whole group: the shared headline, then each alert."""
    parts = [group_title(group)]
    alerts = group.get("alerts", [])
    for alert in alerts:
        text = render_text({**alert, "notification_reason": ""})
        # One alert: the group headline already names it. Several: each keeps its own.
        parts.append(text.split("\n", 1)[-1] if len(alerts) == 1 else text)
    if group.get("truncated_alerts"):
        parts.append(f"… and {group['truncated_alerts']} more alerts")
    parts.append(f"({group.get('notification_reason', '')}, group {group.get('group_key', '')})")
    return "\n\n".join(parts)
