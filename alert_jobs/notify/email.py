"""Email receiver (SMTP): one multipart text + HTML mail per group.

Same layout as every other receiver (DESIGN.md §5): the headline, then per alert the
summary, why it matters, first steps, the audience's text, the links and the actions.
``send_resolved`` defaults to false, as in Alertmanager: a mail per resolution is noise
for most teams. smtplib blocks, so it runs in a worker thread.

The HTML part's markup is the jinja2 template ``templates/email.html``; the template
engine escapes every text in it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx
from jinja2 import Environment, PackageLoader, StrictUndefined

from alert_jobs.config import EmailReceiverConfig
from alert_jobs.notify.base import DeliveryError, Receiver, truncate
from alert_jobs.notify.contract import AlertMessage, GroupMessage, group_title
from alert_jobs.notify.html import escape

#: Alerts rendered in one mail; the rest are counted, not listed.
MAX_ALERTS = 100
_SERVER_TEXT_LIMIT = 200
_HIDDEN_LABELS = ("alertname", "severity")
_COLORS = {"critical": "#b91c1c", "warning": "#b45309", "info": "#1d4ed8", "resolved": "#15803d"}


class EmailReceiver(Receiver[EmailReceiverConfig]):
    """Sends mail through an SMTP server.

    ``security``: ``starttls`` (port 587), ``ssl`` (implicit TLS, port 465) or ``plain``
    (no TLS, for a local relay only). ``username``/``password`` are secrets: out of
    ``repr`` and of every error. ``verify_tls`` false accepts any certificate — for
    tests and self-signed relays only.
    """

    default_send_resolved = False

    def render(self, group: GroupMessage) -> EmailMessage:
        """The mail without ``Date``/``Message-ID`` (added at send time, so this stays pure)."""
        msg = EmailMessage()
        msg["Subject"] = _one_line(group_title(group))
        msg["From"] = self.config.from_address
        msg["To"] = ", ".join(self.config.to)
        # Phantom threading (Alertmanager's): every mail of a group refers to one
        # made-up message id, so mail clients thread firing and resolved together.
        thread = hashlib.sha256(f"{self.name}\x00{group.get('group_key', '')}".encode())
        msg["References"] = f"<{thread.hexdigest()[:32]}@alert-jobs>"
        msg["In-Reply-To"] = msg["References"]
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
        msg.set_content(render_text(group))
        msg.add_alternative(render_html(group), subtype="html")
        for attachment in group.get("attachments", []):
            maintype, _, subtype = attachment["content_type"].partition("/")
            if maintype == "text":
                msg.add_attachment(attachment["content"], subtype=subtype or "plain",
                                   filename=attachment["filename"])
        return msg

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        """Send over SMTP in a worker thread; ``http`` is unused (the interface is shared)."""
        msg = self.render(group)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.config.from_address.rpartition("@")[2] or None)
        c = self.config
        username = self.secret(c.username) if c.username is not None else None
        password = self.secret(c.password) if c.password is not None else None
        await asyncio.to_thread(self._send, msg, username, password)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _send(self, msg: EmailMessage, username: str | None, password: str | None) -> None:
        """Blocking send; every failure becomes a :class:`DeliveryError` without secrets."""
        where = f"{self.config.host}:{self.config.port}"
        try:
            smtp: smtplib.SMTP
            c = self.config
            if c.security == "ssl":
                smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout_seconds,
                                        context=self._tls_context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=self.timeout_seconds)
            with smtp:
                if c.security == "starttls":
                    smtp.starttls(context=self._tls_context())
                if username:
                    smtp.login(username, password or "")
                refused = smtp.send_message(msg, from_addr=c.from_address, to_addrs=c.to)
        except smtplib.SMTPAuthenticationError as exc:
            # The server's text is left out: a server may echo the credentials back.
            raise DeliveryError(f"email: authentication failed at {where} (SMTP "
                                f"{exc.smtp_code}); check username and password",
                                permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {rcpt: code for rcpt, (code, _) in exc.recipients.items()}
            raise DeliveryError(f"email: all recipients refused: {_refusals(codes)}",
                                permanent=all(c >= 500 for c in codes.values())) from None
        except smtplib.SMTPSenderRefused as exc:
            reply = f"SMTP {exc.smtp_code} {_scrub(exc.smtp_error, username, password)}"
            if exc.smtp_code == 530:  # "authentication required" / "STARTTLS first"
                raise DeliveryError(f"email: {where} requires authentication or TLS ({reply}); "
                                    "set username/password or security", permanent=True) from None
            raise DeliveryError(f"email: sender {self.config.from_address} refused ({reply}); "
                                "check from_address", permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(f"email: {where} does not support STARTTLS or AUTH; check "
                                "security (ssl for port 465) and credentials",
                                permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"email: {where} answered SMTP {exc.smtp_code} "
                                f"{_scrub(exc.smtp_error, username, password)}") from None
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib turns a read timeout into "Connection unexpectedly closed".
            if isinstance(exc.__context__, TimeoutError):
                raise DeliveryError(f"email: {where} timed out after "
                                    f"{self.timeout_seconds:g} s") from None
            raise DeliveryError(f"email: {where} closed the connection") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"email: SMTP error at {where} ({type(exc).__name__})") from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"email: TLS certificate of {where} not trusted "
                                f"({exc.verify_message}); fix the server certificate or, for "
                                "a self-signed relay, set verify_tls false",
                                permanent=True) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"email: TLS handshake with {where} failed ({exc.reason}); "
                                "check security (ssl on 465, starttls on 587)") from None
        except TimeoutError:
            raise DeliveryError(f"email: {where} timed out after "
                                f"{self.timeout_seconds:g} s") from None
        except ConnectionRefusedError:
            raise DeliveryError(f"email: connection refused by {where}") from None
        except OSError as exc:
            raise DeliveryError(f"email: cannot connect to {where} "
                                f"({type(exc).__name__})") from None
        if refused:
            # Some recipients got it: a retry would send them a duplicate.
            codes = {rcpt: code for rcpt, (code, _) in refused.items()}
            raise DeliveryError(f"email: sent to {len(self.config.to) - len(refused)} of "
                                f"{len(self.config.to)} recipients; refused: {_refusals(codes)}",
                                permanent=True)



def _scrub(reply: bytes | str, username: str | None, password: str | None) -> str:
    """A server reply, short, with the password (plain or AUTH-encoded) masked."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    if password:
        forms = [password, base64.b64encode(password.encode()).decode()]
        if username:
            plain = f"\0{username}\0{password}".encode()
            forms.append(base64.b64encode(plain).decode())
        for form in forms:
            text = text.replace(form, "***")
    return truncate(_one_line(text), _SERVER_TEXT_LIMIT)


def _refusals(codes: dict[str, int]) -> str:
    return ", ".join(f"{rcpt} ({code})" for rcpt, code in sorted(codes.items()))


def _one_line(text: str) -> str:
    """Headers may not hold line breaks; collapse all whitespace runs."""
    return " ".join(text.split())


# ----- rendering -----------------------------------------------------------------------



_TEMPLATES = Environment(loader=PackageLoader("alert_jobs.notify", "templates"), autoescape=True,
                         undefined=StrictUndefined, finalize=escape, trim_blocks=True,
                         lstrip_blocks=True, keep_trailing_newline=True)


def _label_text(alert: AlertMessage, group: GroupMessage) -> str:
    """The labels that tell this alert apart from the rest of the group."""
    common = group.get("common_labels", {})
    labels = alert.get("labels", {})
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                     if k not in _HIDDEN_LABELS and common.get(k) != v)


def _heading(alert: AlertMessage, group: GroupMessage) -> str:
    status = alert.get("status", "firing").upper()
    parts = [status, alert.get("severity", "warning"), alert.get("rule", "")]
    distinct = _label_text(alert, group)
    if distinct:
        parts.append(distinct)
    text = " · ".join(p for p in parts if p)
    if alert.get("status") == "resolved" and alert.get("ends_at"):
        text += f" (resolved at {alert['ends_at']})"
    return text


def _audience(alert: AlertMessage) -> str:
    text = alert.get("audience_text", "")
    if not text:
        return ""
    audience = alert.get("audience", "").replace("_", " ")
    return f"For {audience}: {text}" if audience else text


def _links(alert: AlertMessage) -> list[tuple[str, str]]:
    links = [("Runbook", alert.get("runbook_url", "")),
             ("Dashboard", alert.get("dashboard_url", "")),
             ("Dagster run", alert.get("run_url", ""))]
    return [(name, url) for name, url in links if url]


def _actions(alert: AlertMessage) -> list[tuple[str, str]]:
    """Ack/snooze/disable/silence only while firing; the outcome vote also after
    resolution, with "how did it go?" first."""
    a = alert.get("actions", {})
    outcome = [("Was it actionable? Yes", a.get("actionable", "")),
               ("No, false positive", a.get("false_positive", "")),
               ("Noise", a.get("noise", "")), ("Duplicate", a.get("duplicate", ""))]
    if alert.get("status") == "resolved":
        actions = [("How did it go?", a.get("incident", "")), *outcome]
    else:
        actions = [("Acknowledge", a.get("ack", "")), ("Snooze 1 h", a.get("snooze_1h", "")),
                   ("Snooze 6 h", a.get("snooze_6h", "")), *outcome,
                   ("Disable rule", a.get("disable", "")), ("Silence", a.get("silence", ""))]
    actions.append(("Edit rule", a.get("edit_rule", "")))
    return [(name, value) for name, value in actions if value]


def _sections(group: GroupMessage) -> list[tuple[str, list[AlertMessage]]]:
    alerts = group.get("alerts", [])[:MAX_ALERTS]
    firing = [a for a in alerts if a.get("status") != "resolved"]
    resolved = [a for a in alerts if a.get("status") == "resolved"]
    sections = [(f"Firing ({len(firing)})", firing), (f"Resolved ({len(resolved)})", resolved)]
    return [(title, items) for title, items in sections if items]


def _not_shown(group: GroupMessage) -> int:
    alerts = group.get("alerts", [])
    return max(0, len(alerts) - MAX_ALERTS) + group.get("truncated_alerts", 0)


def _footer(group: GroupMessage) -> list[str]:
    lines = []
    labels = group.get("group_labels", {})
    if labels:
        lines.append("Group: " + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    sent = f"Sent by alert-jobs to {group.get('receiver', '')}"
    if group.get("notification_reason"):
        sent += f" ({group['notification_reason']})"
    lines.append(sent)
    if group.get("dagster_url"):
        lines.append(f"Dagster: {group['dagster_url']}")
    return lines


def render_text(group: GroupMessage) -> str:
    """The text/plain part: what a terminal mail reader or a pager gateway shows."""
    lines = [group_title(group), ""]
    if group.get("test"):
        lines += ["This is a test notification from alert-jobs; no action needed.", ""]
    for title, alerts in _sections(group):
        lines += [f"== {title} ==", ""]
        for alert in alerts:
            block = [
                _heading(alert, group),
                alert.get("summary", ""),
                f"Why it matters: {alert['why']}" if alert.get("why") else "",
                f"First steps: {alert['first_steps']}" if alert.get("first_steps") else "",
                _audience(alert),
                *(f"{name}: {url}" for name, url in _links(alert)),
                *(f"{name}: {value}" for name, value in _actions(alert)),
            ]
            lines += [line for line in block if line] + [""]
    more = _not_shown(group)
    if more:
        lines += [f"… and {more} more alerts not shown.", ""]
    lines += ["-- ", *_footer(group)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Link:
    """A link when ``value`` is an http(s) URL; otherwise code to copy (the silence command)."""

    name: str
    value: str

    @property
    def is_url(self) -> bool:
        return self.value.startswith(("https://", "http://"))


@dataclass(frozen=True)
class _HtmlAlert:
    """What ``email.html`` shows of one alert; the template decides only the markup."""

    color: str
    heading: str
    summary: str
    why: str
    first_steps: str
    audience: str
    links: list[_Link]
    actions: list[_Link]


def _html_alert(alert: AlertMessage, group: GroupMessage) -> _HtmlAlert:
    """The texts :func:`render_text` shows of one alert, and the colour of its status."""
    key = "resolved" if alert.get("status") == "resolved" else alert.get("severity", "")
    return _HtmlAlert(color=_COLORS.get(key, _COLORS["warning"]),
                      heading=_heading(alert, group), summary=alert.get("summary", ""),
                      why=alert.get("why") or "", first_steps=alert.get("first_steps") or "",
                      audience=_audience(alert),
                      links=[_Link(name, url) for name, url in _links(alert)],
                      actions=[_Link(name, value) for name, value in _actions(alert)])


def render_html(group: GroupMessage) -> str:
    """The text/html part (``templates/email.html``): the same content, every text escaped."""
    footer = _footer(group)
    dagster = None
    if group.get("dagster_url"):  # the last footer line, shown as a link
        footer, dagster = footer[:-1], _Link("Dagster", group["dagster_url"])
    sections = [(title, [_html_alert(alert, group) for alert in alerts])
                for title, alerts in _sections(group)]
    return _TEMPLATES.get_template("email.html").render(
        title=group_title(group), test=group.get("test"), sections=sections,
        more=_not_shown(group), footer=footer, dagster=dagster)
