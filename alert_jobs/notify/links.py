"""Signed, expiring action links bound to one alert episode: ack, snooze, outcomes,
disable the rule (and enable it again), "how did it go?", view.

A token is ``base64url(payload).base64url(HMAC-SHA256(secret, payload))``. The payload
names the action, the alert fingerprint, the *episode* the message was sent for (its
number and its ``fired_at``, so a number reused after the alert row was recreated does
not match) and an expiry time. The secret comes from ``$ALERT_JOBS_LINK_SECRET`` and
never leaves the server.

Why the episode: an alert fires, resolves and fires again under the same fingerprint.
A link in yesterday's message must not act on today's incident; the server compares
the token's episode with the alert's current one and answers 410 when they differ
(:mod:`alert_jobs.http.actions`). Links are minted when a notification is queued, inside
the engine's transaction (:func:`action_links` is called with the decided record), so
the episode is known, not guessed.

Why canonical bytes: base64 decoding ignores the unused low bits of the last character,
so several strings decode to the same bytes. :func:`verify` re-encodes what it decoded
and refuses a token that is not exactly that encoding: one token string per signed
payload, so the token's digest can stand for "this link" in ``alert_link_uses``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from alert_jobs.notify.contract import AlertLinks

if TYPE_CHECKING:
    from alert_jobs.config import RulesFile

SECRET_ENV = "ALERT_JOBS_LINK_SECRET"
#: What a message's links can do (each once). ``view`` is read-only: the current state
#: of an alert, offered by the server when an older link is refused.
ACTIONS = ("ack", "snooze_1h", "snooze_6h", "actionable", "false_positive", "noise",
           "duplicate")
VIEW = "view"
#: Disable the message's rule (every alert of it): firing messages. Once, like ACTIONS.
DISABLE = "disable"
#: Enable the rule again: offered on the page that disabled it. Once; bound to no
#: episode (the alert may fire again while its rule is disabled).
ENABLE = "enable"
#: "How did it go?": the resolved episode's incident record. Resolve messages; may be
#: used again and again while it lasts (each answer updates the record).
INCIDENT = "incident"
SIGNED = (*ACTIONS, DISABLE, ENABLE, INCIDENT, VIEW)
MIN_SECRET_LENGTH = 16
VIEW_TTL = timedelta(hours=1)


class LinkError(ValueError):
    """The token is not valid: forged, altered, expired or malformed."""


@dataclass(frozen=True)
class LinkAction:
    """A verified token: what it may do, on which alert episode, until when."""

    action: str
    fingerprint: str
    episode: int
    fired_at: int  # the episode's fired_at, whole seconds since the epoch (0: not bound)
    expires: datetime
    token_id: str  # sha256 of the signed payload: names this link in alert_link_uses


def link_secret() -> bytes | None:
    """The signing secret, or None when links are not configured (or too short to be safe)."""
    value = os.environ.get(SECRET_ENV, "")
    return value.encode() if len(value) >= MIN_SECRET_LENGTH else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Decode unpadded base64url, refusing any string that is not the canonical
    encoding of what it decodes to (other alphabets, padding, altered spare bits)."""
    try:
        data = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise LinkError("malformed link") from None
    if _b64(data) != text:
        raise LinkError("malformed link (not canonical base64)")
    return data


def epoch(when: datetime | None) -> int:
    """Whole seconds since the epoch (0 for None): how a token carries ``fired_at``."""
    return int(when.timestamp()) if when is not None else 0


def sign(action: str, fingerprint: str, expires: datetime, secret: bytes, *,
         episode: int = 0, fired_at: datetime | None = None) -> str:
    if action not in SIGNED:
        raise ValueError(f"unknown action {action!r}")
    payload = json.dumps([action, fingerprint, episode, epoch(fired_at),
                          int(expires.timestamp())], separators=(",", ":")).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str, secret: bytes, now: datetime) -> LinkAction:
    parts = token.split(".")
    if len(parts) != 2:
        raise LinkError("malformed link")
    payload, mac = _unb64(parts[0]), _unb64(parts[1])
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise LinkError("this link was not issued by this server, or it was altered")
    try:
        action, fingerprint, episode, fired_at, expires_ts = json.loads(payload)
        expires = datetime.fromtimestamp(int(expires_ts), UTC)
        episode, fired_at = int(episode), int(fired_at)
    except (ValueError, TypeError):
        raise LinkError("malformed link") from None
    if action not in SIGNED:
        raise LinkError("unknown action")
    if now >= expires:
        raise LinkError(f"this link expired at {expires.isoformat(timespec='minutes')}")
    return LinkAction(str(action), str(fingerprint), episode, fired_at, expires,
                      hashlib.sha256(payload).hexdigest())


def view_token(fingerprint: str, secret: bytes, now: datetime) -> str:
    """A short-lived, read-only token for the current state of one alert."""
    return sign(VIEW, fingerprint, now + VIEW_TTL, secret)


def edit_link(template: str, file: str, line: int | None, rule: str) -> str:
    """Where to edit ``rule``: ``template`` filled in (``defaults.edit_url``), else the
    text ``alerts.yaml line 42: rule X`` (``alerts.yaml: rule X`` when the line is unknown)."""
    if template:
        return template.format(file=quote(file, safe="/"), line=line or 1,
                               rule=quote(rule, safe=""))
    return f"{file} line {line}: rule {rule}" if line else f"{file}: rule {rule}"


def action_links(fingerprint: str, rule: str, *, base_url: str, now: datetime,
                 ttl: timedelta, episode: int = 0, fired_at: datetime | None = None,
                 rule_path: str = "alerts.yaml", rule_line: int | None = None,
                 edit_url: str = "", resolved: bool = False,
                 incident_ttl: timedelta = timedelta(days=14)) -> AlertLinks:
    """Links for one episode of one alert: signed URLs when a base URL and secret are
    set, else CLI text. Pass the episode the message is sent for (the decided record's
    ``episode`` and ``fired_at``); a link bound to any other episode is refused.

    A firing message also gets ``disable`` (the rule); a resolve message gets
    ``incident`` ("how did it go?", valid ``incident_ttl``) instead."""
    secret = link_secret()
    short = fingerprint[:12]
    links: AlertLinks = {
        "silence": f"alert-jobs silence alertname={rule} --for 2h --comment WHY",
        "edit_rule": edit_link(edit_url, rule_path, rule_line, rule),
    }
    if base_url and secret is not None:
        expires = now + ttl
        root = base_url.rstrip("/")
        for action in ACTIONS:
            token = sign(action, fingerprint, expires, secret, episode=episode,
                         fired_at=fired_at)
            links[action] = f"{root}/a/{token}"  # type: ignore[literal-required]
        if resolved:
            links["incident"] = f"{root}/a/" + sign(
                INCIDENT, fingerprint, now + incident_ttl, secret, episode=episode,
                fired_at=fired_at)
        else:
            links["disable"] = f"{root}/a/" + sign(DISABLE, fingerprint, expires, secret,
                                                   episode=episode, fired_at=fired_at)
    else:
        links["ack"] = f"alert-jobs ack {short} --by YOU"
        links["snooze_1h"] = f"alert-jobs snooze {short} --for 1h"
        links["snooze_6h"] = f"alert-jobs snooze {short} --for 6h"
        if not resolved:
            links["disable"] = f"alert-jobs disable {rule} --for 1d --note WHY"
    return links


def enable_link(base_url: str, fingerprint: str, *, now: datetime, ttl: timedelta) -> str:
    """A signed link that enables the rule of ``fingerprint`` again (the page that
    disabled it offers it), or ``""`` without a base URL and secret."""
    secret = link_secret()
    if not base_url or secret is None:
        return ""
    return f"{base_url.rstrip('/')}/a/{sign(ENABLE, fingerprint, now + ttl, secret)}"


@dataclass(frozen=True)
class RuleLinks:
    """What the alert's page offers about its rule: disable it, edit it."""

    disable: str  # a signed URL, or "" when links are not configured
    edit: str  # an editor URL (``defaults.edit_url``) or "alerts.yaml line 42: rule X"


def rule_links(rules: RulesFile, rule: str, fingerprint: str, *, episode: int,
               fired_at: datetime | None, now: datetime) -> RuleLinks:
    """The disable and edit links of one alert episode, for its page: the same as a
    firing message of that episode carries."""
    file, line = rules.rule_location(rule)
    secret = link_secret()
    base = rules.defaults.action_base_url
    disable = ""
    if base and secret is not None:
        disable = f"{base.rstrip('/')}/a/" + sign(
            DISABLE, fingerprint, now + rules.defaults.action_link_ttl, secret,
            episode=episode, fired_at=fired_at)
    return RuleLinks(disable, edit_link(rules.defaults.edit_url, file, line, rule))
