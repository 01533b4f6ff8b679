"""Signed, expiring action links: ack, snooze 1 h / 6 h, and outcomes, from the message itself.

A token is ``base64url(payload).base64url(HMAC-SHA256(secret, payload))`` where the
payload names the action, the alert fingerprint and an expiry time. The secret comes
from ``$ALERT_JOBS_LINK_SECRET`` and never leaves the server; a forged, altered or
expired token is refused and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alert_jobs.notify.contract import AlertLinks

SECRET_ENV = "ALERT_JOBS_LINK_SECRET"
ACTIONS = ("ack", "snooze_1h", "snooze_6h", "actionable", "false_positive", "noise",
           "duplicate")
MIN_SECRET_LENGTH = 16


class LinkError(ValueError):
    """The token is not valid: forged, altered, expired or malformed."""


@dataclass(frozen=True)
class LinkAction:
    action: str
    fingerprint: str
    expires: datetime


def link_secret() -> bytes | None:
    """The signing secret, or None when links are not configured (or too short to be safe)."""
    value = os.environ.get(SECRET_ENV, "")
    return value.encode() if len(value) >= MIN_SECRET_LENGTH else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(action: str, fingerprint: str, expires: datetime, secret: bytes) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    payload = json.dumps([action, fingerprint, int(expires.timestamp())],
                         separators=(",", ":")).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str, secret: bytes, now: datetime) -> LinkAction:
    try:
        payload_part, mac_part = token.split(".")
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError):
        raise LinkError("malformed link") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise LinkError("this link was not issued by this server, or it was altered")
    try:
        action, fingerprint, expires_ts = json.loads(payload)
        expires = datetime.fromtimestamp(int(expires_ts), UTC)
    except (ValueError, TypeError):
        raise LinkError("malformed link") from None
    if action not in ACTIONS:
        raise LinkError("unknown action")
    if now >= expires:
        raise LinkError(f"this link expired at {expires.isoformat(timespec='minutes')}")
    return LinkAction(str(action), str(fingerprint), expires)


def action_links(fingerprint: str, rule: str, *, base_url: str, now: datetime,
                 ttl: timedelta, rule_path: str = "alerts.yaml") -> AlertLinks:
    """Links for one alert: signed URLs when a base URL and secret are set, else CLI text."""
    secret = link_secret()
    short = fingerprint[:12]
    links: AlertLinks = {
        "silence": f"alert-jobs silence alertname={rule} --for 2h --comment WHY",
        "edit_rule": f"{rule_path}: rule {rule}",
    }
    if base_url and secret is not None:
        expires = now + ttl
        root = base_url.rstrip("/")
        for action in ("ack", "snooze_1h", "snooze_6h", "actionable", "false_positive", "noise",
                       "duplicate"):
            links[action] = f"{root}/a/{sign(action, fingerprint, expires, secret)}"
    else:
        links["ack"] = f"alert-jobs ack {short} --by YOU"
        links["snooze_1h"] = f"alert-jobs snooze {short} --for 1h"
        links["snooze_6h"] = f"alert-jobs snooze {short} --for 6h"
    return links
