"""The message standard (DESIGN.md §5), as one receiver-neutral dict.

What the engine queues in the outbox is this dict, not a receiver's wire format:
it holds no secrets, so it can be stored in the timeline, and each receiver renders
it its own way at send time. Order of content, on every receiver: severity and
rule; expected vs seen with the time frame; why it matters; runbook, dashboard and
Dagster-run links; the actions.
"""

from __future__ import annotations

from typing import Any

from alert_jobs.model import Observation, Severity


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
) -> dict[str, Any]:
    """Everything a receiver needs to say what happened and what to do about it."""
    run_url = f"{dagster_url.rstrip('/')}/runs/{run_id}" if dagster_url and run_id else ""
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
        "runbook_url": runbook_url,
        "dashboard_url": dashboard_url,
        "run_url": run_url,
        "run_id": run_id,
        "dagster_url": dagster_url,
        "actions": {
            "ack": f"alert-jobs ack {fp[:12]} --by YOU",
            "snooze_1h": f"alert-jobs snooze {fp[:12]} --for 1h",
            "snooze_6h": f"alert-jobs snooze {fp[:12]} --for 6h",
            "silence": f"alert-jobs silence alertname={obs.rule} --for 2h --comment WHY",
            "edit_rule": f"alerts.yaml: rule {obs.rule}",
        },
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
        lines.append(f"Ack: {actions['ack']}  ·  Snooze: {actions['snooze_1h']}  ·  "
                     f"Silence: {actions['silence']}")
    labels = {k: v for k, v in message.get("labels", {}).items()
              if k not in ("alertname", "severity")}
    if labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    if message.get("notification_reason"):
        reason, fp = message["notification_reason"], message.get("fingerprint")
        lines.append(f"({reason}, fingerprint {fp})")
    return "\n".join(line for line in lines if line)
