"""Generic JSON webhook receiver (httpx), speaking Alertmanager's webhook format v4.

Existing Alertmanager webhook consumers understand the body as is; alert-jobs adds
``notification_reason`` and ``dedup_key`` so a consumer can drop the rare duplicate
(a crash between send and mark re-sends once).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from alert_jobs.notify.base import DeliveryError
from alert_jobs.notify.render import render_text

PERMANENT_STATUSES = {400, 401, 403, 404, 405, 410, 413, 422}


def alertmanager_payload(message: dict[str, Any], receiver: str) -> dict[str, Any]:
    """Alertmanager webhook v4 body for one alert."""
    status = message.get("status", "firing")
    labels = {"alertname": message.get("rule", ""), **message.get("labels", {})}
    annotations = {
        key: value
        for key, value in (
            ("summary", message.get("summary", "")),
            ("description", message.get("description", "")),
            ("why", message.get("why", "")),
            ("first_steps", message.get("first_steps", "")),
            ("runbook_url", message.get("runbook_url", "")),
            ("dashboard_url", message.get("dashboard_url", "")),
        )
        if value
    }
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": message.get("starts_at") or "0001-01-01T00:00:00Z",
        "endsAt": message.get("ends_at") or "0001-01-01T00:00:00Z",
        "generatorURL": message.get("run_url", ""),
        "fingerprint": message.get("fingerprint", ""),
    }
    group_labels = {"alertname": labels.get("alertname", "")}
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={labels.get('alertname', '')!r}}}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": message.get("dagster_url", ""),
        "alerts": [alert],
        "notification_reason": message.get("notification_reason", ""),
        "dedup_key": message.get("dedup_key", ""),
        "text": render_text(message),
    }


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass
class WebhookReceiver:
    """POSTs the Alertmanager-v4 body to ``url``. ``url``/``headers`` are resolved secrets."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    send_resolved: bool = True
    client: httpx.Client | None = None

    def send(self, message: dict[str, Any]) -> None:
        body = alertmanager_payload(message, self.name)
        client = self.client or httpx.Client(timeout=self.timeout)
        try:
            response = client.post(self.url, json=body, headers=self.headers,
                                   timeout=self.timeout)
        except httpx.TimeoutException:
            raise DeliveryError(f"timed out after {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            # The exception text can include the URL (a secret); name the class only.
            raise DeliveryError(f"cannot connect ({type(exc).__name__})") from None
        finally:
            if self.client is None:
                client.close()
        if response.is_success:
            return
        code = response.status_code
        if code == 429 or code == 408 or code >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise DeliveryError(f"HTTP {code}", retry_after=retry_after)
        if code in PERMANENT_STATUSES or 400 <= code < 500:
            raise DeliveryError(f"HTTP {code} (receiver rejects the request; fix its config)",
                                permanent=True)
        raise DeliveryError(f"HTTP {code}")
