"""Generic JSON webhook receiver (httpx), speaking Alertmanager's webhook format v4.

Existing Alertmanager webhook consumers understand the body as is; alert-jobs adds
``notification_reason`` (as Alertmanager itself does since v0.27) and ``dedup_key``
so a consumer can drop the rare duplicate (a crash between send and mark re-sends).
"""

from __future__ import annotations

from typing import Any

import httpx

from alert_jobs.config import WebhookReceiverConfig
from alert_jobs.notify.base import Receiver, post_json
from alert_jobs.notify.contract import AlertMessage, GroupMessage
from alert_jobs.notify.render import render_group_text

ZERO_TIME = "0001-01-01T00:00:00Z"


def _alert(alert: AlertMessage) -> dict[str, Any]:
    annotations = {
        key: value
        for key, value in (
            ("summary", alert.get("summary", "")),
            ("description", alert.get("description", "")),
            ("why", alert.get("why", "")),
            ("first_steps", alert.get("first_steps", "")),
            ("audience_text", alert.get("audience_text", "")),
            ("runbook_url", alert.get("runbook_url", "")),
            ("dashboard_url", alert.get("dashboard_url", "")),
        )
        if value
    }
    if alert.get("drill"):
        annotations["drill"] = str(alert.get("drill"))  # a fire drill (docs/drills.md)
    for name, link in (alert.get("actions") or {}).items():
        if link:
            annotations[f"action_{name}"] = str(link)
    return {
        "status": alert.get("status", "firing"),
        "labels": {"alertname": alert.get("rule", ""), **alert.get("labels", {})},
        "annotations": annotations,
        "startsAt": alert.get("starts_at") or ZERO_TIME,
        "endsAt": alert.get("ends_at") or ZERO_TIME,
        "generatorURL": alert.get("run_url", ""),
        "fingerprint": alert.get("fingerprint", ""),
    }


def alertmanager_payload(group: GroupMessage, receiver: str, max_alerts: int = 0
                         ) -> dict[str, Any]:
    """Alertmanager webhook v4 body for one group (``max_alerts`` 0 = all)."""
    alerts = list(group.get("alerts", []))
    shown = alerts[:max_alerts] if max_alerts else alerts
    truncated = len(alerts) - len(shown) + int(group.get("truncated_alerts", 0))
    common = dict(group.get("common_labels", {}))
    common_annotations: dict[str, str] = {}
    if shown:
        rendered = [_alert(a)["annotations"] for a in shown]
        common_annotations = {k: v for k, v in rendered[0].items()
                              if all(r.get(k) == v for r in rendered[1:])}
    return {
        "version": "4",
        "groupKey": group.get("group_key", ""),
        "truncatedAlerts": truncated,
        "status": group.get("status", "firing"),
        "receiver": receiver,
        "groupLabels": dict(group.get("group_labels", {})),
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": group.get("dagster_url", ""),
        "alerts": [_alert(a) for a in shown],
        "notification_reason": group.get("notification_reason", ""),
        "dedup_key": group.get("dedup_key", ""),
        "test": bool(group.get("test", False)),
        "text": render_group_text(group),
    }


class WebhookReceiver(Receiver[WebhookReceiverConfig]):
    """POSTs the Alertmanager-v4 body to ``url``; ``url`` and ``headers`` are secrets."""

    def render(self, group: GroupMessage) -> dict[str, Any]:
        return alertmanager_payload(group, self.name, self.config.max_alerts)

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        headers = {k: self.secret(v) for k, v in self.config.headers.items()}
        await post_json(http, self.secret(self.config.url), self.render(group),
                        timeout=self.timeout_seconds, headers=headers)
