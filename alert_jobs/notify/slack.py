"""Slack incoming-webhook receiver: the message standard as Block Kit, limits enforced.

Slack rejects a message it finds too big (``invalid_blocks``, ``msg_blocks_too_long``)
instead of shortening it, and a rejected alert is a lost alert. So :meth:`render`
budgets before sending: at most 50 blocks, section text ≤ 3,000, header ≤ 150, all
block text ≤ 12,000 (Slack fails near 13.2k, below its documented limits, so we keep
headroom) and the ``text`` fallback ≤ 4,000. Alerts that do not fit are counted in a
closing "… and N more alerts" line, together with those the router already left out.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from alert_jobs.config import SlackReceiverConfig
from alert_jobs.notify.base import Receiver, post_json
from alert_jobs.notify.contract import (
    CAP_SUMMARY,
    LINK_ACTIONS,
    AlertMessage,
    GroupMessage,
    chat_body_lines,
    format_time,
    group_title,
    more_alerts,
    other_labels,
)

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_CONTEXT_ELEMENT = 3000
MAX_TOTAL_BLOCK_TEXT = 12_000
MAX_FALLBACK_TEXT = 4000

# Per-part caps keep one absurd field from crowding out the rest of its alert, and
# make sure the first alert always fits the message budget:
# 150 (header) + 1,000 (group context) + 3,000 (section) + 1,300 (context) ≪ 12,000.
CAP_GROUP_CONTEXT = 1000
CAP_IDENTITY = 500
CAP_SILENCE = 500
CAP_EDIT_RULE = 300
FOOTER_RESERVE = 60  # room kept for the "… and N more alerts" line



class SlackReceiver(Receiver[SlackReceiverConfig]):
    """Posts one Block Kit message per group to a Slack incoming webhook."""

    def render(self, group: GroupMessage) -> dict[str, Any]:
        """The webhook body: ``blocks`` within Slack's limits plus a plain ``text`` fallback."""
        alerts = group.get("alerts", [])
        hidden = max(0, group.get("truncated_alerts", 0))
        blocks: list[dict[str, Any]] = [{
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(group_title(group), MAX_HEADER),
                     "emoji": True},
        }]
        intro = _group_context(group)
        if intro:
            blocks.append(_context([intro]))
        used = sum(_block_chars(b) for b in blocks)
        shown = 0
        for i, alert in enumerate(alerts):
            more_follow = i < len(alerts) - 1 or hidden > 0
            alert_blocks = _alert_blocks(alert, group.get("common_labels", {}))
            size = sum(_block_chars(b) for b in alert_blocks)
            reserve_blocks, reserve_chars = (1, FOOTER_RESERVE) if more_follow else (0, 0)
            if (len(blocks) + len(alert_blocks) + reserve_blocks > MAX_BLOCKS
                    or used + size + reserve_chars > MAX_TOTAL_BLOCK_TEXT):
                break
            blocks.extend(alert_blocks)
            used += size
            shown += 1
        left_out = len(alerts) - shown + hidden
        if left_out:
            blocks.append(_context([more_alerts(left_out)]))
        return {
            "text": _fallback_text(group),
            "blocks": blocks,
            "unfurl_links": False,  # runbook/dashboard previews would bury the alert
            "unfurl_media": False,
        }

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        """Send; a non-2xx answer raises ``DeliveryError`` (never naming the URL)."""
        await post_json(http, self.secret(self.config.webhook_url), self.render(group),
                        timeout=self.timeout_seconds)


# ----- one alert ---------------------------------------------------------------------


def _alert_blocks(alert: AlertMessage, common: dict[str, str]) -> list[dict[str, Any]]:
    """Divider, the alert's section (the standard's order), then its small-print context."""
    firing = alert.get("status", "firing") != "resolved"
    lines = chat_body_lines(alert, bold=lambda text: f"*{text}*", cut=_esc_cut, link=_link,
                            resolved_icon=":white_check_mark:")
    actions = alert.get("actions") or {}
    if firing:
        buttons = [_link(str(actions.get(key, "")), label)
                   for key, label in LINK_ACTIONS if actions.get(key)]
        if buttons:
            lines.append(" · ".join(buttons))
    section = {"type": "section",
               "text": {"type": "mrkdwn", "text": _cut("\n".join(x for x in lines if x),
                                                       MAX_SECTION)}}
    small = [_esc_cut(_identity(alert, common), CAP_IDENTITY)]
    if firing and actions.get("silence"):
        small.append(f"Silence: `{_esc_cut(actions.get('silence', ''), CAP_SILENCE)}`")
    edit = str(actions.get("edit_rule", ""))
    if firing and edit.startswith(("http://", "https://")):
        small.append(_link(edit, "Edit rule"))
    elif firing and edit:
        small.append(f"Edit rule: `{_esc_cut(edit, CAP_EDIT_RULE)}`")
    return [{"type": "divider"}, section, _context(small)]


def _identity(alert: AlertMessage, common: dict[str, str]) -> str:
    """``dead_letters · critical · queue=q0 · since … · fingerprint``: tells alerts apart.

    Labels the whole group shares are shown once, in the group's context line.
    """
    parts = [alert.get("rule", ""), alert.get("severity", "")]
    own = {k: v for k, v in alert.get("labels", {}).items() if common.get(k) != v}
    parts.append(other_labels(own))
    if alert.get("starts_at"):
        parts.append(f"since {format_time(alert.get('starts_at'))}")
    if alert.get("fingerprint"):
        parts.append(alert.get("fingerprint", ""))
    return " · ".join(p for p in parts if p)


# ----- the group -----------------------------------------------------------------------


def _group_context(group: GroupMessage) -> str:
    parts = []
    if group.get("test"):
        parts.append("*Test message* from `alert-jobs notify test`: nothing is wrong.")
    labels = other_labels(group.get("common_labels", {}))
    if labels:
        parts.append(_esc(labels))
    return _cut(" · ".join(parts), CAP_GROUP_CONTEXT)


def _fallback_text(group: GroupMessage) -> str:
    """What notifications and old clients show: headline, then one line per alert."""
    alerts = group.get("alerts", [])
    hidden = max(0, group.get("truncated_alerts", 0))
    text = _esc_cut(group_title(group), MAX_HEADER)
    shown = 0
    for alert in alerts:
        prefix = "" if alert.get("status", "firing") != "resolved" else "Resolved: "
        line = "\n• " + prefix + _esc_cut(alert.get("summary", ""), CAP_SUMMARY)
        if len(text) + len(line) + FOOTER_RESERVE > MAX_FALLBACK_TEXT:
            break
        text += line
        shown += 1
    if len(alerts) - shown + hidden:
        text += "\n" + more_alerts(len(alerts) - shown + hidden)
    return _cut(text, MAX_FALLBACK_TEXT)


# ----- small helpers -----------------------------------------------------------------


def _context(texts: list[str]) -> dict[str, Any]:
    return {"type": "context",
            "elements": [{"type": "mrkdwn", "text": _cut(t, MAX_CONTEXT_ELEMENT)}
                         for t in texts[:10] if t]}


def _block_chars(block: dict[str, Any]) -> int:
    """Characters of text in a block: what Slack's size checks count."""
    total = len(block.get("text", {}).get("text", ""))
    return total + sum(len(e.get("text", "")) for e in block.get("elements", []))






def _link(url: str, label: str) -> str:
    """A mrkdwn link; a value that is not a URL (e.g. a CLI command) is shown as code."""
    if not url.startswith(("https://", "http://")):
        return f"{label}: `{_esc(url)}`"
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    return f"<{safe}|{label}>"


def _esc(text: str) -> str:
    """Slack's mrkdwn escaping: user text must not become links or @channel mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_cut(text: str, limit: int) -> str:
    return _cut(_esc(text), limit)


def _cut(text: str, limit: int) -> str:
    """Cut to ``limit`` characters, marked with "…", never leaving half an ``&amp;``."""
    if len(text) <= limit:
        return text
    head = re.sub(r"&[a-z]{0,3}$", "", text[: limit - 1])
    return head + "…"
