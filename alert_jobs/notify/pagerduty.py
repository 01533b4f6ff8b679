"""PagerDuty Events API v2 receiver: one event per group, like Alertmanager's integration.

The ``dedup_key`` is a hash of the receiver name and the group key, not the per-flush
``group["dedup_key"]``: PagerDuty applies later events with the same key to the open
alert, so trigger → acknowledge → resolve of one group must share it. Limits enforced
before sending: ``dedup_key`` ≤ 255, ``payload.summary`` ≤ 1,024, whole event < 512 KB.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from alert_jobs.config import PagerDutyReceiverConfig
from alert_jobs.notify.base import DeliveryError, Receiver, post_json, truncate
from alert_jobs.notify.contract import AlertMessage, GroupMessage, group_title

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024
#: PagerDuty's documented limit is 512 KB; stay under it whichever "KB" it means.
EVENT_BYTES_LIMIT = 512 * 1000
#: An Events API v2 integration key's length: the body budget counts it, though
#: rendering (which must stay pure and secret-free) never sees the key itself.
ROUTING_KEY_LENGTH = 32
#: Room for the routing key (added at send time) and the closing of the event.
_RESERVE_BYTES = 2048
TEXT_LIMIT = 2000
LABEL_VALUE_LIMIT = 1024
FIELD_LIMIT = 255
URL_LIMIT = 2048
MAX_LINKS = 10

SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}
_PD_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
_SOURCE_LABELS = ("instance", "host", "service", "job")


class PagerDutyReceiver(Receiver[PagerDutyReceiverConfig]):
    """Pages through a PagerDuty service's Events API v2 integration.

    ``routing_key`` is the 32-character integration key — a secret: it is left out of
    :meth:`render` (so previews and golden files never hold it), out of ``repr`` and out
    of every error, and only added to the body in :meth:`deliver`.
    """

    def dedup_key(self, group: GroupMessage) -> str:
        """Stable per (receiver, group): trigger, acknowledge and resolve hit one PD alert.

        Test notifications get their own key so they never touch a real incident.
        """
        parts = [self.name, group.get("group_key", "")]
        if group.get("test"):
            parts.append("test")
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()

    def render(self, group: GroupMessage) -> list[dict[str, Any]]:
        """The Events API v2 bodies for one group, without ``routing_key``."""
        alerts = group.get("alerts", [])
        firing = [a for a in alerts if a.get("status") == "firing"]
        first = alerts[0] if alerts else {}
        payload: dict[str, Any] = {
            "summary": _summary(group, first),
            "source": _source(group),
            "severity": _severity(firing or alerts),
        }
        timestamp = _timestamp(group, first)
        if timestamp:
            payload["timestamp"] = timestamp
        rules = sorted({a.get("rule", "") for a in alerts if a.get("rule")})
        if rules:
            payload["component"] = truncate(", ".join(rules), FIELD_LIMIT)
        team = group.get("common_labels", {}).get("team")
        if team:
            payload["group"] = truncate(team, FIELD_LIMIT)
        if payload["severity"] == "error":
            payload["class"] = "check_error"
        event: dict[str, Any] = {
            "event_action": _event_action(group),
            "dedup_key": self.dedup_key(group),
            "payload": payload,
            "links": _links(alerts),
            "client": "alert-jobs",
        }
        if group.get("dagster_url"):
            event["client_url"] = group["dagster_url"]
        payload["custom_details"] = _custom_details(group, event, ROUTING_KEY_LENGTH)
        return [event]

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        """POST each event; 202 means accepted, 429/5xx retry, other 4xx are permanent."""
        routing_key = self.secret(self.config.routing_key)
        for event in self.render(group):
            body = {"routing_key": routing_key, **event}
            try:
                await post_json(http, self.config.events_url, body, timeout=self.timeout_seconds)
            except DeliveryError as exc:
                # post_json never echoes the body, so the routing key cannot leak here.
                hint = ""
                if exc.status == 400:
                    hint = " (check that routing_key is an Events API v2 integration key)"
                raise DeliveryError(f"PagerDuty: {exc.message}{hint}", permanent=exc.permanent,
                                    retry_after=exc.retry_after, status=exc.status) from None


def _event_action(group: GroupMessage) -> str:
    """Resolved wins (PagerDuty drops acks on resolved alerts); then ack; else trigger."""
    if group.get("status") == "resolved":
        return "resolve"
    if group.get("notification_reason") == "acknowledged":
        return "acknowledge"
    return "trigger"


def _summary(group: GroupMessage, first: AlertMessage) -> str:
    title = group_title(group)
    summary = first.get("summary", "")
    text = f"{title}: {summary}" if summary else title
    return truncate(" ".join(text.split()), SUMMARY_LIMIT)


def is_check_error(alert: AlertMessage) -> bool:
    """A check that could not run: ``error_observation`` says so in the summary."""
    labels = alert.get("labels", {})
    return (alert.get("summary", "").lower().startswith("check failed:")
            or labels.get("check_status") == "error"
            or any(str(v).lower().startswith("check failed:") for v in labels.values()))


def _alert_severity(alert: AlertMessage) -> str:
    if is_check_error(alert):
        return "error"
    return SEVERITIES.get(alert.get("severity", "warning"), "warning")


def _severity(alerts: list[AlertMessage]) -> str:
    """The loudest alert wins, in PagerDuty's order critical > error > warning > info."""
    return max((_alert_severity(a) for a in alerts), key=_PD_RANK.__getitem__,
               default="warning")


def _source(group: GroupMessage) -> str:
    """Where the problem is: an instance-like common label if any, else this product."""
    labels = group.get("common_labels", {})
    for key in _SOURCE_LABELS:
        if labels.get(key):
            return truncate(labels[key], FIELD_LIMIT)
    return "alert-jobs"


def _timestamp(group: GroupMessage, first: AlertMessage) -> str | None:
    if group.get("status") == "resolved" and first.get("ends_at"):
        return first.get("ends_at")
    return first.get("starts_at")


def _links(alerts: list[AlertMessage]) -> list[dict[str, str]]:
    """Runbook, dashboard, Dagster run and ack links, deduplicated, http(s) only, capped."""
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for alert in alerts:
        rule = alert.get("rule", "")
        candidates = [
            (alert.get("runbook_url", ""), f"Runbook: {rule}"),
            (alert.get("dashboard_url", ""), f"Dashboard: {rule}"),
            (alert.get("run_url", ""), "Dagster run"),
        ]
        if alert.get("status") == "firing":
            ack = alert.get("actions", {}).get("ack", "")
            candidates.append((ack, f"Acknowledge {rule} ({alert.get('fingerprint', '')[:12]})"))
        for href, text in candidates:
            if (href and href not in seen and len(href) <= URL_LIMIT
                    and href.startswith(("https://", "http://"))):
                seen.add(href)
                links.append({"href": href, "text": truncate(text, FIELD_LIMIT)})
            if len(links) >= MAX_LINKS:
                return links
    return links


def _clip_labels(labels: dict[str, str]) -> dict[str, str]:
    return {truncate(str(k), FIELD_LIMIT): truncate(str(v), LABEL_VALUE_LIMIT)
            for k, v in labels.items()}


def _alert_details(alert: AlertMessage) -> dict[str, Any]:
    """What a responder needs about one alert; empty fields left out to save room."""
    actions = alert.get("actions", {})
    firing = alert.get("status") == "firing"
    details: dict[str, Any] = {
        "status": alert.get("status", ""),
        "rule": alert.get("rule", ""),
        "severity": alert.get("severity", ""),
        "summary": truncate(alert.get("summary", ""), SUMMARY_LIMIT),
        "why": truncate(alert.get("why", ""), TEXT_LIMIT),
        "first_steps": truncate(alert.get("first_steps", ""), TEXT_LIMIT),
        "audience_text": truncate(alert.get("audience_text", ""), TEXT_LIMIT),
        "labels": _clip_labels(alert.get("labels", {})),
        "starts_at": alert.get("starts_at") or "",
        "ends_at": alert.get("ends_at") or "",
        "fingerprint": alert.get("fingerprint", ""),
        "runbook_url": truncate(alert.get("runbook_url", ""), URL_LIMIT),
        "dashboard_url": truncate(alert.get("dashboard_url", ""), URL_LIMIT),
        "run_url": truncate(alert.get("run_url", ""), URL_LIMIT),
        "ack_url": truncate(actions.get("ack", ""), URL_LIMIT) if firing else "",
        "silence": truncate(actions.get("silence", ""), TEXT_LIMIT) if firing else "",
        "edit_rule": truncate(actions.get("edit_rule", ""), TEXT_LIMIT),
    }
    return {k: v for k, v in details.items() if v}


def _size(value: Any) -> int:
    """Serialized size, an upper bound for any JSON encoder (escaped non-ASCII, spaces)."""
    return len(json.dumps(value).encode())


def _custom_details(group: GroupMessage, event: dict[str, Any],
                    key_length: int) -> dict[str, Any]:
    """Group context plus as many alerts as fit, so the whole event stays < 512 KB.

    Alerts that do not fit are counted in ``truncated_alerts`` (with the router's own).
    """
    alerts = group.get("alerts", [])
    details: dict[str, Any] = {
        "notification_reason": group.get("notification_reason", ""),
        "firing": sum(1 for a in alerts if a.get("status") == "firing"),
        "resolved": sum(1 for a in alerts if a.get("status") == "resolved"),
        "truncated_alerts": group.get("truncated_alerts", 0),
        "group_labels": _clip_labels(group.get("group_labels", {})),
        "common_labels": _clip_labels(group.get("common_labels", {})),
        "alerts": [],
    }
    budget = (EVENT_BYTES_LIMIT - _RESERVE_BYTES - key_length
              - _size({**event, "payload": {**event["payload"], "custom_details": details}}))
    kept: list[dict[str, Any]] = []
    for alert in alerts:
        entry = _alert_details(alert)
        cost = _size(entry) + 2  # ", " between list items
        if cost > budget:
            break
        budget -= cost
        kept.append(entry)
    details["alerts"] = kept
    details["truncated_alerts"] = group.get("truncated_alerts", 0) + len(alerts) - len(kept)
    return details
