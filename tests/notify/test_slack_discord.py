"""Slack and Discord receivers: golden bodies, every size limit, and real HTTP delivery.

Golden files pin what people see. After an intended change to the layout, regenerate
them with ``UPDATE_GOLDEN=1 pytest tests/notify/test_slack_discord.py`` and review the
diff like code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.contract import GroupMessage, Status, sample_group
from alert_jobs.notify.discord import DiscordReceiver, embed_chars
from alert_jobs.notify.slack import SlackReceiver
from tests.conftest import make_receiver

GOLDEN = Path(__file__).parent / "golden"
SECRET_PATH = "/hook/SECRET-123"


def slack(url: str = "https://hooks.slack.invalid/services/SECRET-123", **kw: Any) -> SlackReceiver:
    return make_receiver("slack", name="slack", webhook_url=url, **kw)


def discord(url: str = "https://discord.invalid/api/webhooks/1/SECRET-123",
            **kw: Any) -> DiscordReceiver:
    return make_receiver("discord", name="discord", webhook_url=url, **kw)


# ----- limit checkers: each documented limit, spelled out ---------------------------


def slack_block_texts(body: dict[str, Any]) -> list[str]:
    texts = []
    for block in body["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


def assert_slack_limits(body: dict[str, Any]) -> None:
    json.dumps(body)  # plain JSON, nothing exotic
    blocks = body["blocks"]
    assert len(blocks) <= 50
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"
    assert 0 < len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
    assert sum(len(t) for t in slack_block_texts(body)) <= 12_000
    assert 0 < len(body["text"]) <= 4000


def assert_discord_limits(body: dict[str, Any]) -> None:
    json.dumps(body)
    assert 0 < len(body["content"]) <= 2000
    assert len(body["embeds"]) <= 10
    total = 0
    for embed in body["embeds"]:
        assert 0 < len(embed.get("title", "x")) <= 256
        assert 0 < len(embed.get("description", "x")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        for field in embed.get("fields", []):
            assert 0 < len(field["name"]) <= 256
            assert 0 < len(field["value"]) <= 1024  # Discord rejects empty values too
        assert len(embed.get("footer", {}).get("text", "")) <= 2048
        assert isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF
        total += (len(embed.get("title", "")) + len(embed.get("description", ""))
                  + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
                  + len(embed.get("footer", {}).get("text", "")))
    assert total <= 6000
    assert total == sum(embed_chars(e) for e in body["embeds"])


def slack_shown(body: dict[str, Any]) -> int:
    return sum(1 for b in body["blocks"] if b["type"] == "section")


def left_out_in(text: str) -> int | None:
    match = re.search(r"… and (\d+) more alerts?", text)
    return int(match.group(1)) if match else None


def slack_left_out(body: dict[str, Any]) -> int | None:
    last = body["blocks"][-1]
    return left_out_in(last["elements"][0]["text"]) if last["type"] == "context" else None


# ----- golden files --------------------------------------------------------------------


GOLDEN_CASES = [
    ("slack_firing.json", slack, "firing", 2),
    ("slack_resolved.json", slack, "resolved", 1),
    ("discord_firing.json", discord, "firing", 2),
    ("discord_resolved.json", discord, "resolved", 1),
]


@pytest.mark.parametrize(("filename", "make", "status", "n"), GOLDEN_CASES,
                         ids=[c[0] for c in GOLDEN_CASES])
def test_golden(filename: str, make: Any, status: Status, n: int) -> None:
    body = make().render(sample_group(status, n_alerts=n))
    path = GOLDEN / filename
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert body == json.loads(path.read_text(encoding="utf-8")), (
        f"{filename} changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff")
    assert "SECRET-123" not in path.read_text(encoding="utf-8")


# ----- the message standard --------------------------------------------------------------


def full_group(**overrides: Any) -> GroupMessage:
    group = sample_group("firing", n_alerts=1, **overrides)
    group["alerts"][0]["first_steps"] = "Open the DLQ console and replay one message."
    group["alerts"][0]["audience_text"] = "Payments may be booked late today."
    return group


STANDARD_ORDER = [
    "Expected dead letters to be 0 in the last 30 minutes, got 1,000",
    "Why it matters:",
    "Each dead letter is a payment that was not booked.",
    "First steps:",
    "Payments may be booked late today.",
    "runbooks.example.com/dead-letters",
    "grafana.example.com/d/queues",
    "Dagster run",
    "ack-token",
    "Snooze 1 h",
    "Snooze 6 h",
    "actionable-token",
    "fp-token",
]


def assert_in_order(text: str, parts: list[str]) -> None:
    positions = [text.find(p) for p in parts]
    assert all(p >= 0 for p in positions), [x for x, p in zip(parts, positions, strict=True)
                                              if p < 0]
    assert positions == sorted(positions), text


def test_slack_follows_the_message_standard() -> None:
    body = slack().render(full_group())
    assert body["blocks"][0]["text"]["text"] == "[FIRING · critical] dead_letters"
    texts = slack_block_texts(body)
    assert_in_order("\n".join(texts), [*STANDARD_ORDER, "Silence: `alert-jobs silence",
                                       "Edit rule: `alerts.yaml"])
    identity = body["blocks"][4]["elements"][0]["text"]
    assert texts[1] == "team=payments"  # labels the whole group shares, once
    assert identity == "dead_letters · critical · queue=q0 · since 2026-03-01 12:00 UTC · " \
                       "e9ad46c199ac0000"
    assert body["text"].startswith("[FIRING · critical] dead_letters\n• Expected dead letters")
    assert slack_left_out(body) is None


def test_discord_follows_the_message_standard() -> None:
    body = discord().render(full_group())
    assert body["content"].startswith(r"**[FIRING · critical] dead\_letters**")
    (embed,) = body["embeds"]
    assert_in_order(embed["description"], STANDARD_ORDER)
    assert [f["name"] for f in embed["fields"]] == ["Silence", "Edit rule", "Labels"]
    assert embed["fields"][2]["value"] == "queue=q0"
    assert embed["color"] == 0xE01E5A
    assert body["allowed_mentions"] == {"parse": []}
    assert left_out_in(body["content"]) is None


@pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])
def test_test_messages_are_marked(make: Any) -> None:
    body = make().render(sample_group(test=True))
    text = json.dumps(body, ensure_ascii=False)
    assert "[TEST]" in text and "nothing is wrong" in text


@pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])
def test_resolved_says_so_with_end_time_and_offers_no_actions(make: Any) -> None:
    group = sample_group("resolved")
    group["alerts"][0]["first_steps"] = "Replay the DLQ."
    text = json.dumps(make().render(group), ensure_ascii=False)
    assert "[RESOLVED · critical] dead" in text
    assert re.search(r"Resolved\*{1,2} at 2026-03-01 13:00 UTC", text)
    for action in ("ack-token", "snooze1h", "Snooze", "fp-token", "Silence", "Edit rule",
                   "First steps", "Replay"):
        assert action not in text
    assert "Runbook" in text  # the links stay: useful for the post-mortem


def test_mixed_group_colours_and_actions_per_alert() -> None:
    group = sample_group("firing", n_alerts=2)
    group["alerts"][0]["severity"] = "warning"
    group["alerts"][1].update({"status": "resolved", "ends_at": "2026-03-01T13:05:00+00:00"})
    body = discord().render(group)
    assert [e["color"] for e in body["embeds"]] == [0xECB22E, 0x2EB67D]
    assert "Ack" in body["embeds"][0]["description"]
    assert "Ack" not in body["embeds"][1]["description"]
    sections = [b["text"]["text"] for b in slack().render(group)["blocks"]
                if b["type"] == "section"]
    assert "Ack" in sections[0] and "Ack" not in sections[1]
    assert "Resolved* at 2026-03-01 13:05 UTC" in sections[1]


@pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])
def test_empty_actions_and_links_are_skipped(make: Any) -> None:
    group = sample_group()
    alert = group["alerts"][0]
    alert["actions"] = {"ack": "", "snooze_1h": "http://a/s1", "snooze_6h": "",
                        "actionable": "", "false_positive": "", "silence": "", "edit_rule": ""}
    alert["dashboard_url"] = ""
    text = json.dumps(make().render(group), ensure_ascii=False)
    assert "Snooze 1 h" in text
    for gone in ("Ack", "Snooze 6 h", "Actionable", "False positive", "Silence", "Edit rule",
                 "Dashboard"):
        assert gone not in text


@pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])
def test_cli_command_actions_are_shown_as_code_not_links(make: Any) -> None:
    group = sample_group()
    group["alerts"][0]["actions"]["ack"] = "alert-jobs ack e9ad46c199ac --by YOU"
    text = json.dumps(make().render(group), ensure_ascii=False)
    assert "Ack: `alert-jobs ack e9ad46c199ac --by YOU`" in text


def test_alert_text_cannot_ping_or_inject_links() -> None:
    group = sample_group()
    group["alerts"][0]["summary"] = "<!channel> got <http://evil.example|click> & @everyone"
    section = slack().render(group)["blocks"][3]["text"]["text"]
    assert "<!channel>" not in section and "<http://evil" not in section
    assert "&lt;!channel&gt; got &lt;http://evil.example|click&gt; &amp; @everyone" in section
    body = discord().render(group)
    assert body["allowed_mentions"] == {"parse": []}


# ----- limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_alerts", [1, 15, 16, 1000])
def test_slack_many_alerts_fit_and_count_the_rest(n_alerts: int) -> None:
    body = slack().render(sample_group("firing", n_alerts=n_alerts))
    assert_slack_limits(body)
    shown = slack_shown(body)
    assert shown >= 1
    assert (slack_left_out(body) or 0) == n_alerts - shown
    if n_alerts == 1000:
        assert 10 <= shown < 20  # the 12,000-character budget binds first here
        assert left_out_in(body["text"]) is not None


@pytest.mark.parametrize("n_alerts", [1, 7, 8, 1000])
def test_discord_many_alerts_fit_and_count_the_rest(n_alerts: int) -> None:
    body = discord().render(sample_group("firing", n_alerts=n_alerts))
    assert_discord_limits(body)
    shown = len(body["embeds"])
    assert shown >= 1
    assert (left_out_in(body["content"]) or 0) == n_alerts - shown
    if n_alerts == 1000:
        assert shown < 10  # the 6,000-character embed budget binds first here
        assert sum(embed_chars(e) for e in body["embeds"]) > 5000


def tiny_group(n: int) -> GroupMessage:
    """Alerts with almost no text: the block and embed counts bind, not characters."""
    group = sample_group("firing", n_alerts=n)
    for alert in group["alerts"]:
        for key in ("why", "runbook_url", "dashboard_url", "run_url", "fingerprint",
                    "starts_at"):
            alert[key] = ""
        alert["summary"] = "x"
        alert["labels"] = {}
        alert["actions"] = {}
    return group


def test_slack_block_count_limit() -> None:
    body = slack().render(tiny_group(1000))
    assert_slack_limits(body)
    assert len(body["blocks"]) > 50 - 4  # full: one more alert (3 blocks) would not fit
    assert slack_left_out(body) == 1000 - slack_shown(body)


def test_discord_embed_count_limit() -> None:
    body = discord().render(tiny_group(1000))
    assert_discord_limits(body)
    assert len(body["embeds"]) == 10
    assert left_out_in(body["content"]) == 990


@pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])
def test_router_truncated_alerts_are_counted(make: Any) -> None:
    body = make().render(sample_group("firing", n_alerts=2, truncated_alerts=50))
    text = body["content"] if "content" in body else body["blocks"][-1]["elements"][0]["text"]
    assert left_out_in(text) == 50
    one = make().render(sample_group("firing", n_alerts=1, truncated_alerts=1))
    assert "… and 1 more alert" in json.dumps(one, ensure_ascii=False)


def absurd_group(n_alerts: int, chars: str) -> GroupMessage:
    """Every free-text field 10,000 characters of ``chars``, which may need escaping."""
    long = (chars * 10_000)[:10_000]
    group = sample_group("firing", n_alerts=n_alerts,
                         common_labels={"alertname": "r", "team": long})
    for alert in group["alerts"]:
        alert.update({"rule": long, "summary": long, "why": long, "first_steps": long,
                      "audience_text": long, "fingerprint": long,
                      "runbook_url": "https://x.example/" + long})
        alert["labels"] = {"alertname": long, "queue": long, long[:50]: long}
        alert["actions"] = {"ack": "https://a.example/" + long, "silence": long,
                            "edit_rule": long, "snooze_1h": long}
    return group


@pytest.mark.parametrize("chars", ["x", "&<>", "*_`\\|", "é🔥"])
@pytest.mark.parametrize("n_alerts", [1, 3, 1000])
def test_absurd_text_stays_within_slack_limits(n_alerts: int, chars: str) -> None:
    body = slack().render(absurd_group(n_alerts, chars))
    assert_slack_limits(body)
    shown = slack_shown(body)
    assert shown >= 1  # one alert always fits, however long its text
    assert (slack_left_out(body) or 0) == n_alerts - shown
    first = next(b for b in body["blocks"] if b["type"] == "section")["text"]["text"]
    assert first.startswith("*") and "Why it matters:" in first  # summary first, rest kept
    assert re.search(r"&[a-z]{0,3}…", first) is None  # no half-cut &amp;
    listed = body["text"].count("\n• ")  # the fallback fits its own budget and count
    assert listed >= 1 and listed + (left_out_in(body["text"]) or 0) == n_alerts


@pytest.mark.parametrize("chars", ["x", "&<>", "*_`\\|", "é🔥"])
@pytest.mark.parametrize("n_alerts", [1, 3, 1000])
def test_absurd_text_stays_within_discord_limits(n_alerts: int, chars: str) -> None:
    body = discord().render(absurd_group(n_alerts, chars))
    assert_discord_limits(body)
    assert len(body["embeds"]) >= 1
    assert (left_out_in(body["content"]) or 0) == n_alerts - len(body["embeds"])
    if n_alerts == 1000:
        assert "more alerts" in body["content"]


def test_long_rule_name_keeps_header_and_title_short() -> None:
    group = sample_group()
    group["alerts"][0]["rule"] = "r" * 500
    header = slack().render(group)["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    body = discord().render(group)
    assert len(body["embeds"][0]["title"]) == 256
    assert len(body["content"]) <= 2000


# ----- delivery against a real local HTTP server ------------------------------------------


def deliver(receiver: Receiver, group: GroupMessage) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as http:
            await receiver.deliver(group, http)

    asyncio.run(go())


def deliver_error(receiver: Receiver, group: GroupMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        deliver(receiver, group)
    err = info.value
    for text in (str(err), repr(err), err.message):
        assert "SECRET" not in text and "127.0.0.1" not in text
    return err


MAKERS = pytest.mark.parametrize("make", [slack, discord], ids=["slack", "discord"])


@MAKERS
def test_deliver_200_posts_the_rendered_body(make: Any, http_receiver: Any) -> None:
    receiver = make(http_receiver.url + "/SECRET-123")
    group = sample_group("firing", n_alerts=3)
    deliver(receiver, group)
    (request,) = http_receiver.requests
    assert request.path == SECRET_PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == receiver.render(group)


@MAKERS
def test_deliver_429_retry_after_header(make: Any, http_receiver: Any) -> None:
    http_receiver.script = [(429, {"Retry-After": "3"})]
    err = deliver_error(make(http_receiver.url + "/SECRET-123"), sample_group())
    assert err.retry_after == 3 and not err.permanent and err.status == 429


@MAKERS
def test_deliver_404_is_permanent(make: Any, http_receiver: Any) -> None:
    http_receiver.script = [404]
    err = deliver_error(make(http_receiver.url + "/SECRET-123"), sample_group())
    assert err.permanent and err.status == 404


@MAKERS
def test_deliver_500_is_retryable(make: Any, http_receiver: Any) -> None:
    http_receiver.script = [500]
    err = deliver_error(make(http_receiver.url + "/SECRET-123"), sample_group())
    assert not err.permanent and err.status == 500 and err.retry_after is None


@MAKERS
def test_deliver_timeout_and_refused_name_no_secret(make: Any, http_receiver: Any) -> None:
    http_receiver.script = ["hang"]
    http_receiver.hang_seconds = 1.0
    err = deliver_error(make(http_receiver.url + "/SECRET-123", timeout="200ms"),
                        sample_group())
    assert "timed out" in err.message and not err.permanent
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    err = deliver_error(make(f"http://127.0.0.1:{port}/hook/SECRET-123"), sample_group())
    assert "cannot connect" in err.message and not err.permanent


@MAKERS
def test_receiver_repr_hides_the_webhook_url(make: Any) -> None:
    receiver = make()
    assert "SECRET" not in repr(receiver) and "SECRET" not in str(receiver)
    assert "SECRET" not in receiver.describe()


@pytest.fixture
def json_server() -> Iterator[dict[str, Any]]:
    """A local server answering one fixed ``status``/``headers``/``body`` (JSON)."""
    state: dict[str, Any] = {"status": 200, "headers": {}, "body": {}, "paths": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state["paths"].append(self.path)
            payload = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            for key, value in state["headers"].items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_discord_429_retry_after_in_json_body(json_server: dict[str, Any]) -> None:
    json_server.update(status=429, body={"message": "You are being rate limited.",
                                         "retry_after": 1.5, "global": False})
    err = deliver_error(discord(json_server["url"] + SECRET_PATH), sample_group())
    assert err.retry_after == 1.5 and not err.permanent and err.status == 429
    assert json_server["paths"] == [SECRET_PATH]


def test_discord_429_header_wins_and_milliseconds_are_recognised(
        json_server: dict[str, Any]) -> None:
    json_server.update(status=429, headers={"Retry-After": "2"},
                       body={"message": "You are being rate limited.", "retry_after": 1.5})
    assert deliver_error(discord(json_server["url"] + SECRET_PATH),
                         sample_group()).retry_after == 2
    json_server.update(headers={}, body={"retry_after": 7000, "global": False})
    assert deliver_error(discord(json_server["url"] + SECRET_PATH),
                         sample_group()).retry_after == 7.0


def test_discord_400_with_error_body_is_permanent(json_server: dict[str, Any]) -> None:
    json_server.update(status=400, body={"code": 50035, "message": "Invalid Form Body"})
    err = deliver_error(discord(json_server["url"] + SECRET_PATH), sample_group())
    assert err.permanent and err.status == 400
