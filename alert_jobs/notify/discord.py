"""Discord webhook receiver: the message standard as one embed per alert, limits enforced.

Discord answers 400 to a body over its limits, so :meth:`render` budgets first:
``content`` ≤ 2,000, ≤ 10 embeds, title ≤ 256, description ≤ 4,096, ≤ 25 fields of
256/1,024, and ≤ 6,000 characters summed over every embed. Alerts that do not fit are
counted in ``content`` ("… and N more alerts"), which is outside the 6,000 budget and is
what push notifications show.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from alert_jobs.config import DiscordReceiverConfig
from alert_jobs.notify.base import Receiver, post_json, truncate
from alert_jobs.notify.contract import (
    LINK_ACTIONS,
    AlertMessage,
    GroupMessage,
    chat_body_lines,
    format_time,
    group_title,
    other_labels,
)

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL_EMBED_TEXT = 6000

# Per-part caps keep one absurd field from crowding out the rest of its alert, and
# make sure the first alert always fits: 256 + 3,500 + 3 × (~20 + 500) + 200 < 6,000.
CAP_DESCRIPTION = 3500
CAP_FIELD = 500
CAP_FOOTER = 200
CAP_CONTENT_TITLE = 300
CAP_CONTENT_LABELS = 500

#: Discord embed colours (0xRRGGBB): green when resolved, else by severity.
COLOURS = {"resolved": 0x2EB67D, "critical": 0xE01E5A, "warning": 0xECB22E, "info": 0x36C5F0}



class DiscordReceiver(Receiver[DiscordReceiverConfig]):
    """Posts one message per group to a Discord channel webhook."""

    def render(self, group: GroupMessage) -> dict[str, Any]:
        """The execute-webhook body: ``content`` plus up to 10 embeds, within every limit."""
        alerts = group.get("alerts", [])
        common = group.get("common_labels", {})
        embeds: list[dict[str, Any]] = []
        used = 0
        for alert in alerts[:MAX_EMBEDS]:
            embed = _embed(alert, common)
            size = embed_chars(embed)
            if used + size > MAX_TOTAL_EMBED_TEXT:
                break
            embeds.append(embed)
            used += size
        left_out = len(alerts) - len(embeds) + max(0, group.get("truncated_alerts", 0))
        return {
            "content": _content(group, left_out),
            "embeds": embeds,
            # Alert text is not ours: never let it ping @everyone or a role.
            "allowed_mentions": {"parse": []},
        }

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        """Send; a non-2xx answer raises ``DeliveryError`` (never naming the URL).

        A 429's wait comes from ``Retry-After`` or, failing that, the JSON body's
        ``retry_after`` (``post_json`` reads both).
        """
        await post_json(http, self.secret(self.config.webhook_url), self.render(group),
                        timeout=self.timeout_seconds)


def embed_chars(embed: dict[str, Any]) -> int:
    """The characters Discord counts toward its 6,000-per-message embed limit."""
    total = len(embed.get("title", "")) + len(embed.get("description", ""))
    total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    total += len(embed.get("footer", {}).get("text", ""))
    return total + len(embed.get("author", {}).get("name", ""))


def _content(group: GroupMessage, left_out: int) -> str:
    # The headline's brackets are ours, not markup: leave them readable in raw JSON too.
    lines = [f"**{_md_cut(group_title(group), CAP_CONTENT_TITLE, brackets=False)}**"]
    if group.get("test"):
        lines.append("Test message from `alert-jobs notify test`: nothing is wrong.")
    labels = other_labels(group.get("common_labels", {}))
    if labels:
        lines.append(_md_cut(labels, CAP_CONTENT_LABELS))
    if left_out:
        lines.append(f"… and {left_out} more alert{'' if left_out == 1 else 's'}")
    return truncate("\n".join(lines), MAX_CONTENT)


def _embed(alert: AlertMessage, common: dict[str, str]) -> dict[str, Any]:
    """One alert in the standard's order: summary, why, first steps, audience, links, actions."""
    firing = alert.get("status", "firing") != "resolved"
    lines = chat_body_lines(alert, bold=lambda text: f"**{text}**", cut=_md_cut, link=_link,
                            resolved_icon="✅")
    actions = alert.get("actions") or {}
    fields: list[dict[str, Any]] = []
    if firing:
        buttons = [_link(str(actions.get(key, "")), label)
                   for key, label in LINK_ACTIONS if actions.get(key)]
        if buttons:
            lines.append(" · ".join(buttons))
        for key, name in (("silence", "Silence"), ("edit_rule", "Edit rule")):
            value = str(actions.get(key, ""))
            if value.startswith(("http://", "https://")):
                fields.append(_field(name, _link(value, name)))
            elif value:
                fields.append(_field(name, _code(value)))
    own = {k: v for k, v in alert.get("labels", {}).items() if common.get(k) != v}
    if other_labels(own):
        fields.append(_field("Labels", _md_cut(other_labels(own), CAP_FIELD), inline=True))
    severity = alert.get("severity", "warning")
    title = " · ".join(x for x in (alert.get("rule", ""), severity) if x)
    description = "\n".join(x for x in lines if x)
    embed: dict[str, Any] = {
        "color": COLOURS["resolved"] if not firing else COLOURS.get(severity, COLOURS["warning"]),
    }
    if title:  # Discord rejects empty strings; absent keys are fine
        embed["title"] = truncate(title, MAX_TITLE)
    if description:
        embed["description"] = truncate(description, CAP_DESCRIPTION)
    if fields:
        embed["fields"] = fields[:MAX_FIELDS]
    footer = " · ".join(x for x in (
        f"since {format_time(alert.get('starts_at'))}" if alert.get("starts_at") else "",
        alert.get("fingerprint", ""),
    ) if x)
    if footer:
        embed["footer"] = {"text": truncate(footer, min(CAP_FOOTER, MAX_FOOTER))}
    return embed


def _field(name: str, value: str, inline: bool = False) -> dict[str, Any]:
    return {"name": truncate(name, MAX_FIELD_NAME), "value": truncate(value, MAX_FIELD_VALUE),
            "inline": inline}





def _link(url: str, label: str) -> str:
    """A markdown link; a value that is not a URL (e.g. a CLI command) is shown as code."""
    if not url.startswith(("https://", "http://")):
        return f"{label}: {_code(url)}"
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label}]({safe})"


def _code(text: str) -> str:
    """Inline code; a backtick inside would end it early, so it becomes a look-alike."""
    return f"`{truncate(text.replace('`', 'ʼ'), CAP_FIELD)}`"


_MARKDOWN = re.compile(r"([\\*_~`|>#\[\]])")
_MARKDOWN_NO_BRACKETS = re.compile(r"([\\*_~`|>#])")


def _md(text: str, brackets: bool = True) -> str:
    """Escape Discord markdown so alert text is shown as written, not formatted.

    Brackets are escaped in alert text so it cannot smuggle in a masked link.
    """
    return (_MARKDOWN if brackets else _MARKDOWN_NO_BRACKETS).sub(r"\\\1", text)


def _md_cut(text: str, limit: int, brackets: bool = True) -> str:
    """Escape, then cut, without leaving a lone escaping backslash at the end."""
    escaped = _md(text, brackets)
    if len(escaped) <= limit:
        return escaped
    head = escaped[: limit - 1]
    if (len(head) - len(head.rstrip("\\"))) % 2:
        head = head[:-1]
    return head + "…"

