"""Forward alerts to a Prometheus Alertmanager through its ingestion API (``POST /api/v2/alerts``).

Teams that already route, silence and inhibit in Alertmanager keep doing so: alert-jobs
becomes one more alert source, like Prometheus. Alertmanager identifies an alert by its
labels and learns that it resolved from an ``endsAt`` in the past, so resolved alerts
must be sent (``send_resolved`` stays true). Firing alerts carry no ``endsAt``:
Alertmanager then resolves them itself after its ``resolve_timeout`` (5 min by default)
unless they are sent again, so route to this receiver with a ``repeat_interval`` shorter
than that ``resolve_timeout``.
"""

from __future__ import annotations

from typing import Any

import httpx

from alert_jobs.config import AlertmanagerReceiverConfig
from alert_jobs.notify.base import DeliveryError, Receiver, post_json
from alert_jobs.notify.contract import AlertMessage, GroupMessage

#: Annotations sent, in this order, when not empty.
_ANNOTATIONS = ("summary", "description", "why", "first_steps", "runbook_url", "dashboard_url")


class AlertmanagerReceiver(Receiver[AlertmanagerReceiverConfig]):
    """Posts the group's alerts to ``{url}/api/v2/alerts``.

    ``url`` (the Alertmanager base URL, e.g. ``http://am:9093``) and ``headers`` (e.g.
    an ``Authorization`` for a proxy in front of it) are treated as secrets: out of
    ``repr`` and out of errors.
    """

    def render(self, group: GroupMessage) -> list[dict[str, Any]]:
        """The ``postableAlerts`` body: one entry per alert, empty fields left out."""
        return [_postable(alert) for alert in group.get("alerts", [])]

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        """POST the alerts; Alertmanager answers 200, or 400 with why it refused them."""
        body = self.render(group)
        if not body:
            return
        try:
            url = self.secret(self.config.url).rstrip("/")
            headers = {k: self.secret(v) for k, v in self.config.headers.items()}
            await post_json(http, f"{url}/api/v2/alerts", body, timeout=self.timeout_seconds,
                            headers=headers)
        except DeliveryError as exc:
            raise DeliveryError(f"Alertmanager: {exc.message}", permanent=exc.permanent,
                                retry_after=exc.retry_after, status=exc.status) from None


def _postable(alert: AlertMessage) -> dict[str, Any]:
    labels = {str(k): str(v) for k, v in alert.get("labels", {}).items()}
    labels.setdefault("alertname", alert.get("rule", "") or "alert-jobs")
    if alert.get("severity"):
        labels.setdefault("severity", alert["severity"])
    annotations: dict[str, str] = {}
    for key in _ANNOTATIONS:
        value = alert.get(key)
        if value:
            annotations[key] = str(value)
    entry: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if alert.get("starts_at"):
        entry["startsAt"] = alert["starts_at"]
    if alert.get("status") == "resolved":
        # An endsAt in the past is how Alertmanager learns of a resolution; without a
        # recorded end, the start is a valid past end (Alertmanager allows end == start).
        ends_at = alert.get("ends_at") or alert.get("starts_at")
        if ends_at:
            entry["endsAt"] = ends_at
    if alert.get("run_url"):
        entry["generatorURL"] = alert["run_url"]
    return entry
