"""PagerDuty, email and Alertmanager receivers: golden renders, limits, and real delivery.

Delivery goes to real local servers: the ``http_receiver`` fixture for PagerDuty and
Alertmanager, an aiosmtpd SMTP server (plain, AUTH, STARTTLS, implicit TLS with a
certificate made by the ``openssl`` CLI) for email. Regenerate the golden files with
``UPDATE_GOLDEN=1 pytest tests/notify/test_pagerduty_email_alertmanager.py`` and review the diff.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.notify.alertmanager import AlertmanagerReceiver
from alert_jobs.notify.base import DeliveryError
from alert_jobs.notify.contract import GroupMessage, group_title, sample_group
from alert_jobs.notify.email import EmailReceiver
from alert_jobs.notify.pagerduty import EVENT_BYTES_LIMIT, PagerDutyReceiver
from tests.conftest import HttpReceiver, free_port, make_receiver

# The AUTH tests run without TLS on purpose (auth_require_tls=False); aiosmtpd warns.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

GOLDEN = Path(__file__).parent / "golden"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY99"
PASSWORD = "hunter2-s3cret-pw"


def check_golden(name: str, actual: str) -> None:
    """Compare with tests/notify/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 and review the diff"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, run with "
        "UPDATE_GOLDEN=1 and review the diff")


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def deliver(receiver: Any, group: GroupMessage) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as http:
            await receiver.deliver(group, http)

    asyncio.run(run())


def delivery_error(receiver: Any, group: GroupMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        deliver(receiver, group)
    return info.value


def pagerduty(url: str = "http://127.0.0.1:9/unused", **kw: Any) -> PagerDutyReceiver:
    receiver = make_receiver("pagerduty", name="pd_payments", routing_key=ROUTING_KEY,
                             events_url=url, **kw)
    # The golden files' dedup_key hashes this receiver name (from before names were
    # checked against the rules file's pattern): keep it, so they stay byte-identical.
    receiver.config = receiver.config.model_copy(update={"name": "pd-payments"})
    return receiver


def alertmanager(url: str = "http://127.0.0.1:9", **kw: Any) -> AlertmanagerReceiver:
    return make_receiver("alertmanager", name="am", url=url, **kw)


def mailer(port: int, **kw: Any) -> EmailReceiver:
    kw.setdefault("security", "plain")
    kw.setdefault("to", ["oncall@example.com", "lead@example.com"])
    return make_receiver("email", name="mail_oncall", host="127.0.0.1", port=port,
                         from_address="alerts@example.com", **kw)


# ----- golden renders ------------------------------------------------------------------


def test_golden_pagerduty_firing() -> None:
    check_golden("pagerduty_firing.json", as_json(pagerduty().render(sample_group(n_alerts=2))))


def test_golden_pagerduty_resolved() -> None:
    check_golden("pagerduty_resolved.json", as_json(pagerduty().render(sample_group("resolved"))))


def test_golden_pagerduty_acknowledged() -> None:
    group = sample_group(notification_reason="acknowledged")
    check_golden("pagerduty_acknowledged.json", as_json(pagerduty().render(group)))


def test_golden_alertmanager() -> None:
    check_golden("alertmanager_firing.json",
                 as_json(alertmanager().render(sample_group(n_alerts=2))))
    check_golden("alertmanager_resolved.json",
                 as_json(alertmanager().render(sample_group("resolved"))))


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def test_golden_email() -> None:
    text, html = parts(mailer(25).render(sample_group(n_alerts=2)))
    check_golden("email_firing.txt", text)
    check_golden("email_firing.html", html)
    text, html = parts(mailer(25).render(sample_group("resolved")))
    check_golden("email_resolved.txt", text)
    check_golden("email_resolved.html", html)


# ----- PagerDuty rendering rules -------------------------------------------------------


def test_pagerduty_event_actions_and_stable_dedup_key() -> None:
    pd = pagerduty()
    trigger = pd.render(sample_group("firing"))
    ack = pd.render(sample_group("firing", notification_reason="acknowledged"))
    resolve = pd.render(sample_group("resolved", dedup_key="hook:ab12cd34:7"))
    assert [e["event_action"] for e in (*trigger, *ack, *resolve)] == [
        "trigger", "acknowledge", "resolve"]
    keys = {e["dedup_key"] for e in (*trigger, *ack, *resolve)}
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) <= 255 and key != "hook:ab12cd34:1"
    # Another group, another receiver name or a test message: another PagerDuty alert.
    assert pd.render(sample_group(group_key="{}:{alertname=\"other\"}"))[0]["dedup_key"] != key
    other = make_receiver("pagerduty", name="pd_other", routing_key=ROUTING_KEY)
    assert other.render(sample_group())[0]["dedup_key"] != key
    assert pd.render(sample_group(test=True))[0]["dedup_key"] != key


def test_pagerduty_render_holds_no_routing_key() -> None:
    pd = pagerduty()
    assert ROUTING_KEY not in json.dumps(pd.render(sample_group()))
    assert ROUTING_KEY not in repr(pd) and ROUTING_KEY not in pd.describe()


@pytest.mark.parametrize(("severity", "expected"), [
    ("critical", "critical"), ("warning", "warning"), ("info", "info"), ("bogus", "warning")])
def test_pagerduty_severity_mapping(severity: str, expected: str) -> None:
    group = sample_group()
    group["alerts"][0]["severity"] = severity
    assert pagerduty().render(group)[0]["payload"]["severity"] == expected


def test_pagerduty_check_error_is_error_severity() -> None:
    group = sample_group(n_alerts=2)
    for alert in group["alerts"]:
        alert["severity"] = "warning"
    group["alerts"][1]["summary"] = "check failed: relation \"letters\" does not exist"
    payload = pagerduty().render(group)[0]["payload"]
    assert payload["severity"] == "error" and payload["class"] == "check_error"
    group["alerts"][0]["severity"] = "critical"  # a real critical alert still wins
    assert pagerduty().render(group)[0]["payload"]["severity"] == "critical"


def test_pagerduty_summary_limit() -> None:
    group = sample_group()
    group["alerts"][0]["summary"] = "x" * 10_000
    payload = pagerduty().render(group)[0]["payload"]
    assert len(payload["summary"]) <= 1024
    assert payload["summary"].startswith(group_title(group))
    assert payload["summary"].endswith("…")


def test_pagerduty_thousand_alerts_stay_under_512_kb() -> None:
    group = sample_group(n_alerts=1000)
    for alert in group["alerts"]:
        alert["why"] = "é" * 3000  # non-ASCII, above the per-field cap
    pd = pagerduty()
    events = pd.render(group)
    body = {"routing_key": ROUTING_KEY, **events[0]}
    assert len(json.dumps(body).encode()) < EVENT_BYTES_LIMIT
    assert len(json.dumps(body, ensure_ascii=False).encode()) < EVENT_BYTES_LIMIT
    details = events[0]["payload"]["custom_details"]
    assert 0 < len(details["alerts"]) < 1000
    assert len(details["alerts"]) + details["truncated_alerts"] == 1000
    assert details["firing"] == 1000
    assert len(events[0]["links"]) <= 10


def test_pagerduty_links_and_client() -> None:
    event = pagerduty().render(sample_group())[0]
    hrefs = [link["href"] for link in event["links"]]
    alert = sample_group()["alerts"][0]
    assert hrefs == [alert["runbook_url"], alert["dashboard_url"], alert["run_url"],
                     alert["actions"]["ack"]]
    assert event["client"] == "alert-jobs" and event["client_url"] == "http://127.0.0.1:3000"
    resolved = pagerduty().render(sample_group("resolved"))[0]
    assert alert["actions"]["ack"] not in {link["href"] for link in resolved["links"]}
    assert resolved["payload"]["timestamp"] == "2026-03-01T13:00:00+00:00"


# ----- PagerDuty delivery against a real HTTP server -----------------------------------


def test_pagerduty_delivers_trigger_then_resolve(http_receiver: HttpReceiver) -> None:
    http_receiver.default = 202
    pd = pagerduty(http_receiver.url)
    deliver(pd, sample_group("firing"))
    deliver(pd, sample_group("resolved", dedup_key="hook:ab12cd34:2"))
    first, second = (r.json() for r in http_receiver.requests)
    assert first["routing_key"] == ROUTING_KEY and first["event_action"] == "trigger"
    assert second["event_action"] == "resolve"
    assert first["dedup_key"] == second["dedup_key"]
    assert first["payload"]["summary"].startswith("[FIRING · critical] dead_letters")
    assert http_receiver.requests[0].headers["Content-Type"] == "application/json"


def test_pagerduty_429_is_retryable(http_receiver: HttpReceiver) -> None:
    http_receiver.script = [(429, {"Retry-After": "30"})]
    err = delivery_error(pagerduty(http_receiver.url), sample_group())
    assert not err.permanent and err.retry_after == 30 and err.status == 429
    assert ROUTING_KEY not in str(err) and ROUTING_KEY not in repr(err)


def test_pagerduty_500_and_dropped_connection_are_retryable(
        http_receiver: HttpReceiver) -> None:
    http_receiver.script = [503, "close"]
    for _ in range(2):
        err = delivery_error(pagerduty(http_receiver.url), sample_group())
        assert not err.permanent and ROUTING_KEY not in str(err)


def test_pagerduty_400_is_permanent(http_receiver: HttpReceiver) -> None:
    http_receiver.script = [400]
    err = delivery_error(pagerduty(http_receiver.url), sample_group())
    assert err.permanent and err.status == 400
    assert "PagerDuty" in str(err) and "routing_key" in str(err)
    assert ROUTING_KEY not in str(err) and ROUTING_KEY not in repr(err)


# ----- Alertmanager --------------------------------------------------------------------


def test_alertmanager_render_rules() -> None:
    firing, resolved = alertmanager().render(sample_group())[0], alertmanager().render(
        sample_group("resolved"))[0]
    assert "endsAt" not in firing  # Alertmanager sets now + resolve_timeout itself
    assert resolved["endsAt"] == "2026-03-01T13:00:00+00:00"
    assert firing["generatorURL"].endswith("/runs/193523d9-7d55-4a29-bbc1-d420fbecd942")
    assert "first_steps" not in firing["annotations"]  # empty annotations are left out
    group = sample_group("resolved")
    group["alerts"][0]["ends_at"] = None
    assert alertmanager().render(group)[0]["endsAt"] == group["alerts"][0]["starts_at"]
    assert all(isinstance(v, str) for v in firing["labels"].values())


def test_alertmanager_delivers_to_api_v2_alerts(http_receiver: HttpReceiver) -> None:
    am = alertmanager(http_receiver.url + "/", headers={"Authorization": "Bearer am-token"})
    deliver(am, sample_group(n_alerts=3))
    deliver(am, sample_group("resolved", n_alerts=3))
    firing, resolved = http_receiver.requests
    assert firing.path == "/hook/api/v2/alerts"
    assert firing.headers["Authorization"] == "Bearer am-token"
    assert [a["labels"]["queue"] for a in firing.json()] == ["q0", "q1", "q2"]
    assert all("endsAt" in a for a in resolved.json())
    assert [a["labels"] for a in firing.json()] == [a["labels"] for a in resolved.json()]
    assert "am-token" not in repr(am)


def test_alertmanager_errors(http_receiver: HttpReceiver) -> None:
    http_receiver.script = [400, 503]
    am = alertmanager(http_receiver.url)
    err = delivery_error(am, sample_group())
    assert err.permanent and err.status == 400 and http_receiver.url not in str(err)
    err = delivery_error(am, sample_group())
    assert not err.permanent and err.status == 503


def test_alertmanager_empty_group_sends_nothing(http_receiver: HttpReceiver) -> None:
    deliver(alertmanager(http_receiver.url), sample_group(alerts=[]))
    assert http_receiver.requests == []


# ----- email rendering -----------------------------------------------------------------


def test_email_headers_and_parts() -> None:
    msg = mailer(25).render(sample_group(n_alerts=2))
    assert msg["Subject"] == "[FIRING:2 · critical] dead_letters"
    assert msg["To"] == "oncall@example.com, lead@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"] is None and msg["Message-ID"] is None  # added at send time
    resolved = mailer(25).render(sample_group("resolved"))
    assert msg["References"] == resolved["References"]  # one thread per group
    assert msg.get_content_type() == "multipart/alternative"


def test_email_follows_the_message_standard_order() -> None:
    group = sample_group(n_alerts=1)
    alert = group["alerts"][0]
    alert["first_steps"] = "Look at the DLQ consumer logs."
    alert["audience"] = "data_science"
    alert["audience_text"] = "Scores for these payments are delayed."
    text, html = parts(mailer(25).render(group))
    order = [group_title(group), alert["summary"], "Why it matters", "First steps",
             "For data science: Scores", "Runbook", "Dashboard", "Dagster run", "Acknowledge",
             "Snooze 1 h", "Snooze 6 h", "actionable", "false positive", "Silence", "Edit rule"]
    for body in (text, html):
        positions = [body.index(marker) for marker in order]
        assert positions == sorted(positions), body


def test_email_resolved_alerts_are_marked_and_have_no_ack() -> None:
    text, html = parts(mailer(25).render(sample_group("resolved")))
    assert "RESOLVED · critical · dead_letters" in text and "resolved at" in text
    assert "Acknowledge" not in text and "Snooze" not in text and "Silence" not in text
    assert "actionable" in text  # the outcome vote still makes sense
    assert "RESOLVED" in html and "ack-token" not in html


def test_email_escapes_alert_text() -> None:
    group = sample_group()
    alert = group["alerts"][0]
    alert["summary"] = "<script>alert('x')</script> & more"
    alert["why"] = '"quoted" <b>bold</b>'
    alert["runbook_url"] = "javascript:alert(1)"
    alert["labels"]["queue"] = "<img src=x>"
    _, html = parts(mailer(25).render(group))
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html
    assert "<b>bold</b>" not in html and "<img" not in html
    assert 'href="javascript:' not in html


def test_email_subject_has_no_line_breaks_and_test_is_marked() -> None:
    group = sample_group(test=True)
    group["alerts"][0]["rule"] = "dead\nletters"
    msg = mailer(25).render(group)
    assert "\n" not in str(msg["Subject"]) and str(msg["Subject"]).startswith("[TEST]")
    assert "test notification" in parts(msg)[0]


def test_email_defaults() -> None:
    receiver = make_receiver("email", name="m", host="smtp.example.com",
                             from_address="a@example.com", to=["b@example.com"], username="u",
                             password=PASSWORD)
    assert isinstance(receiver, EmailReceiver)
    assert receiver.send_resolved is False and receiver.config.port == 587
    assert receiver.config.security == "starttls" and receiver.config.verify_tls is True
    assert PASSWORD not in repr(receiver) and PASSWORD not in receiver.describe()


# ----- email delivery against a real SMTP server ---------------------------------------


@dataclass
class Mailbox:
    """aiosmtpd handler that keeps every accepted envelope."""

    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def message(self, i: int = 0) -> EmailMessage:
        raw = self.envelopes[i].original_content or self.envelopes[i].content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Authenticator:
    """Accepts exactly one login/password pair and records the attempts."""

    login: str
    password: str
    attempts: int = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        self.attempts += 1
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.login
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Start aiosmtpd servers on 127.0.0.1: ``smtp_server(**Controller kwargs)``."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Mailbox, int]:
        box, port = Mailbox(), free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return box, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate from ``openssl``."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "cert.pem", d / "key.pem")
    return context


def test_email_plain_delivery(smtp_server: Any) -> None:
    box, port = smtp_server()
    deliver(mailer(port), sample_group(n_alerts=2))
    assert len(box.envelopes) == 1
    envelope = box.envelopes[0]
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    msg = box.message()
    assert msg["Subject"] == "[FIRING:2 · critical] dead_letters"
    assert msg["Date"] and msg["Message-ID"].endswith("@example.com>")
    text, html = parts(msg)
    assert "Expected dead letters to be 0" in text and "<a href=" in html


def test_email_auth_correct_password(smtp_server: Any) -> None:
    auth = Authenticator("alerts", PASSWORD)
    box, port = smtp_server(authenticator=auth, auth_require_tls=False, auth_required=True)
    deliver(mailer(port, username="alerts", password=PASSWORD), sample_group())
    assert len(box.envelopes) == 1 and auth.attempts == 1


def test_email_auth_wrong_password_is_permanent(smtp_server: Any) -> None:
    auth = Authenticator("alerts", PASSWORD)
    box, port = smtp_server(authenticator=auth, auth_require_tls=False, auth_required=True)
    wrong = "wrong-" + PASSWORD
    err = delivery_error(mailer(port, username="alerts", password=wrong), sample_group())
    assert err.permanent and "authentication failed" in str(err)
    for secret in (wrong, PASSWORD):
        assert secret not in str(err) and secret not in repr(err)
    assert err.__cause__ is None and err.__suppress_context__
    assert box.envelopes == []


def test_email_auth_required_but_no_username_is_permanent(smtp_server: Any) -> None:
    auth = Authenticator("alerts", PASSWORD)
    box, port = smtp_server(authenticator=auth, auth_require_tls=False, auth_required=True)
    err = delivery_error(mailer(port), sample_group())
    assert err.permanent and "530" in str(err) and "username/password" in str(err)
    assert box.envelopes == []


def test_email_starttls_with_self_signed_cert(smtp_server: Any,
                                              self_signed: ssl.SSLContext) -> None:
    auth = Authenticator("alerts", PASSWORD)
    box, port = smtp_server(tls_context=self_signed, require_starttls=True, authenticator=auth)
    receiver = mailer(port, security="starttls", verify_tls=False, username="alerts",
                      password=PASSWORD)
    deliver(receiver, sample_group())
    assert len(box.envelopes) == 1 and auth.attempts == 1


def test_email_starttls_untrusted_cert_is_permanent(smtp_server: Any,
                                                    self_signed: ssl.SSLContext) -> None:
    box, port = smtp_server(tls_context=self_signed, require_starttls=True)
    err = delivery_error(mailer(port, security="starttls"), sample_group())
    assert err.permanent and "verify_tls" in str(err)
    assert box.envelopes == []


def test_email_plain_against_starttls_required_server_fails(smtp_server: Any,
                                                            self_signed: ssl.SSLContext) -> None:
    box, port = smtp_server(tls_context=self_signed, require_starttls=True)
    err = delivery_error(mailer(port, security="plain"), sample_group())
    assert err.permanent and "530" in str(err) and box.envelopes == []


def test_email_implicit_tls(smtp_server: Any, self_signed: ssl.SSLContext) -> None:
    box, port = smtp_server(ssl_context=self_signed)
    deliver(mailer(port, security="ssl", verify_tls=False), sample_group())
    assert len(box.envelopes) == 1


def test_email_starttls_unsupported_is_permanent(smtp_server: Any) -> None:
    box, port = smtp_server()  # no tls_context: the server offers no STARTTLS
    err = delivery_error(mailer(port, security="starttls"), sample_group())
    assert err.permanent and "STARTTLS" in str(err) and box.envelopes == []


def test_email_connection_refused_is_retryable() -> None:
    port = free_port()  # nothing listens there
    err = delivery_error(mailer(port, username="alerts", password=PASSWORD), sample_group())
    assert not err.permanent and "refused" in str(err)
    assert PASSWORD not in str(err) and PASSWORD not in repr(err)


def test_email_silent_server_times_out_retryably() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        err = delivery_error(mailer(port, timeout="500ms"), sample_group())
    assert not err.permanent and "timed out" in str(err)


def test_email_refused_recipients(smtp_server: Any) -> None:
    @dataclass
    class Picky(Mailbox):
        code: str = "550 5.1.1 no such user"

        async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                              rcpt_options: list[str]) -> str:
            if address.startswith("lead@"):
                return self.code
            envelope.rcpt_tos.append(address)
            return "250 OK"

    picky = Picky()
    port = free_port()
    controller = Controller(picky, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # One of two refused: the other got it, so no retry (it would duplicate).
        err = delivery_error(mailer(port), sample_group())
        assert err.permanent and "sent to 1 of 2" in str(err) and "lead@example.com" in str(err)
        assert len(picky.envelopes) == 1
        # All refused with 5xx: permanent; with 4xx (greylisting): retry later.
        single = mailer(port, to=["lead@example.com"])
        assert delivery_error(single, sample_group()).permanent
        picky.code = "450 4.2.0 greylisted, try again later"
        assert not delivery_error(single, sample_group()).permanent
    finally:
        controller.stop()


def test_email_bad_security_value_is_a_config_error() -> None:
    """One model describes the receiver, so a wrong ``security`` never reaches a send."""
    with pytest.raises(RulesError) as info:
        parse_rules("receivers:\n  - {name: m, type: email, host: h, from_address: a@b.c, "
                    "to: [d@e.f], security: tls}\ndefaults: {receivers: [m]}\n")
    assert "receivers[0].security" in str(info.value) and "starttls" in str(info.value)
