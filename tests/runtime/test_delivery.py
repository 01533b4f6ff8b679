"""Outbox delivery against a real HTTP server on 127.0.0.1 that fails on purpose."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from alert_jobs.config import ReceiverConfig
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.notify.base import DeliveryError, parse_retry_after
from alert_jobs.notify.contract import sample_group
from alert_jobs.notify.registry import build_receiver
from alert_jobs.notify.send import backoff
from alert_jobs.notify.webhook import WebhookReceiver, alertmanager_payload
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import Timeline
from tests.conftest import make_receiver

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = RulePolicy(rule="dead_letters", receivers=("hook",))
SECRET = "s3cr3t-token-123"


def fire(timeline: Timeline, at: datetime = T0) -> list[int]:
    obs = Observation("dead_letters", Status.ALERT, {"team": "payments"}, 1000.0,
                      summary="Expected dead letters to be 0 in the last 30 minutes, got 1,000")
    message = {"rule": "dead_letters", "severity": "warning", "summary": obs.summary,
               "labels": {"alertname": "dead_letters", "team": "payments"},
               "fingerprint": obs.fingerprint}
    return timeline.alerts.process(obs, POLICY, now=at, message=message).outbox_ids


def clock(start: datetime):
    state = {"now": start}

    def now() -> datetime:
        return state["now"]

    return state, now


def hook(url: str, timeout: float = 2.0) -> dict[str, WebhookReceiver]:
    return {"hook": make_receiver("webhook", name="hook", url=url, timeout=f"{timeout}s")}


def test_success_sends_alertmanager_v4_once(sqlite_url: str, http_receiver) -> None:
    timeline = Timeline(sqlite_url)
    fire(timeline)
    report = deliver_due(timeline, hook(http_receiver.url), now=lambda: T0)
    assert report.sent == 1
    body = http_receiver.requests[0].json()
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["alerts"][0]["labels"]["alertname"] == "dead_letters"
    assert body["alerts"][0]["fingerprint"] and body["dedup_key"].endswith("#1")
    assert body["notification_reason"] == "first"
    assert deliver_due(timeline, hook(http_receiver.url), now=lambda: T0).sent == 0
    assert len(http_receiver.requests) == 1


def test_500_is_retried_with_backoff_then_delivered(db_url: str, http_receiver) -> None:
    http_receiver.script = [500, 503]
    timeline = Timeline(db_url)
    fire(timeline)
    state, now = clock(T0)
    first = deliver_due(timeline, hook(http_receiver.url), now=now)
    assert (first.sent, first.retrying) == (0, 1)
    row = timeline.outbox.rows()[0]
    assert row["attempts"] == 1 and row["last_error"] == "HTTP 500"
    wait = row["next_attempt_at"] - T0
    assert timedelta(seconds=15) <= wait <= timedelta(seconds=30)

    state["now"] = T0 + timedelta(seconds=5)
    assert deliver_due(timeline, hook(http_receiver.url), now=now).retrying == 0, "not due yet"
    state["now"] = T0 + timedelta(minutes=1)
    assert deliver_due(timeline, hook(http_receiver.url), now=now).retrying == 1
    second_wait = timeline.outbox.rows()[0]["next_attempt_at"] - state["now"]
    assert timedelta(seconds=30) <= second_wait <= timedelta(seconds=60), "backoff grows"
    state["now"] = T0 + timedelta(minutes=5)
    assert deliver_due(timeline, hook(http_receiver.url), now=now).sent == 1
    assert [r.answered for r in http_receiver.requests] == [500, 503, 200]
    kinds = [e["kind"] for e in timeline.events.list()]
    assert kinds.count("notification_failed") == 2 and kinds.count("notification_sent") == 1


def test_429_honours_retry_after(sqlite_url: str, http_receiver) -> None:
    http_receiver.script = [(429, {"Retry-After": "120"})]
    timeline = Timeline(sqlite_url)
    fire(timeline)
    deliver_due(timeline, hook(http_receiver.url), now=lambda: T0)
    row = timeline.outbox.rows()[0]
    assert timedelta(seconds=120) <= row["next_attempt_at"] - T0 <= timedelta(seconds=132)
    assert row["last_error"] == "HTTP 429"
    report = deliver_due(timeline, hook(http_receiver.url), now=lambda: T0 + timedelta(seconds=133))
    assert report.sent == 1


def test_short_retry_after_is_not_stretched_by_backoff(sqlite_url: str, http_receiver) -> None:
    """Retry-After: 2 means two seconds, not the 15-30 s of the default backoff."""
    http_receiver.script = [(429, {"Retry-After": "2"})]
    timeline = Timeline(sqlite_url)
    fire(timeline)
    deliver_due(timeline, hook(http_receiver.url), now=lambda: T0)
    wait = timeline.outbox.rows()[0]["next_attempt_at"] - T0
    assert timedelta(seconds=2) <= wait <= timedelta(seconds=2.2)
    assert deliver_due(timeline, hook(http_receiver.url),
                       now=lambda: T0 + timedelta(seconds=3)).sent == 1


def test_404_is_permanent_and_kept(sqlite_url: str, http_receiver) -> None:
    http_receiver.default = 404
    timeline = Timeline(sqlite_url)
    fire(timeline)
    report = deliver_due(timeline, hook(http_receiver.url), now=lambda: T0)
    assert report.failed == 1
    row = timeline.outbox.rows()[0]
    assert row["failed_at"] is not None and "HTTP 404" in row["last_error"]
    later = deliver_due(timeline, hook(http_receiver.url), now=lambda: T0 + timedelta(days=1))
    assert later.sent + later.failed + later.retrying == 0, "permanent failures are not retried"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_receiver_down_then_up_loses_nothing(db_url: str, http_receiver) -> None:
    timeline = Timeline(db_url)
    for minute in range(3):  # three separate alerts queued while the receiver is down
        obs = Observation(f"rule_{minute}", Status.ALERT, {}, 1.0, summary="bad")
        timeline.alerts.process(obs, RulePolicy(rule=f"rule_{minute}", receivers=("hook",)),
                                now=T0, message={"rule": f"rule_{minute}"})
    down = f"http://127.0.0.1:{_free_port()}/{SECRET}"
    report = deliver_due(timeline, hook(down), now=lambda: T0)
    assert report.retrying == 3
    assert all("cannot connect" in r["last_error"] for r in timeline.outbox.rows())
    up = deliver_due(timeline, hook(http_receiver.url), now=lambda: T0 + timedelta(hours=2))
    assert up.sent == 3
    assert sorted(r.json()["alerts"][0]["labels"]["alertname"] for r in http_receiver.requests) \
        == ["rule_0", "rule_1", "rule_2"]


def test_hanging_receiver_times_out_and_retries(sqlite_url: str, http_receiver) -> None:
    http_receiver.script = ["hang", "hang"]
    http_receiver.hang_seconds = 2.0
    timeline = Timeline(sqlite_url)
    fire(timeline)
    report = deliver_due(timeline, hook(http_receiver.url, timeout=0.5), now=lambda: T0)
    assert report.retrying == 1
    assert timeline.outbox.rows()[0]["last_error"] == "timed out after 0.5 s"
    deadline = deliver_due(timeline, hook(http_receiver.url, timeout=5), deadline=0.5,
                           now=lambda: T0 + timedelta(hours=1))
    assert deadline.retrying == 1 and "0.5 s delivery deadline" in timeline.outbox.rows()[0][
        "last_error"]


def test_secret_url_never_stored(sqlite_url: str, http_receiver) -> None:
    http_receiver.script = [500]
    secret_url = f"{http_receiver.url}/{SECRET}"
    timeline = Timeline(sqlite_url)
    fire(timeline)
    deliver_due(timeline, hook(secret_url), now=lambda: T0)
    deliver_due(timeline, hook(f"http://127.0.0.1:{_free_port()}/{SECRET}"),
                now=lambda: T0 + timedelta(hours=1))
    dump = repr(timeline.outbox.rows()) + repr(timeline.events.list())
    assert SECRET not in dump
    assert "HTTP 500" in dump and "cannot connect" in dump


def test_missing_secret_keeps_message_until_configured(sqlite_url: str, http_receiver,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERT_HOOK_URL", raising=False)
    config = TypeAdapter(ReceiverConfig).validate_python(
        {"name": "hook", "type": "webhook", "url": {"env": "ALERT_HOOK_URL"}})
    broken = build_receiver(config)  # built fine: the secret is read only when sending
    assert isinstance(broken, WebhookReceiver)
    timeline = Timeline(sqlite_url)
    fire(timeline)
    report = deliver_due(timeline, {"hook": broken}, now=lambda: T0)
    assert report.retrying == 1
    assert "ALERT_HOOK_URL is not set" in timeline.outbox.rows()[0]["last_error"]
    monkeypatch.setenv("ALERT_HOOK_URL", http_receiver.url)
    fixed = {"hook": build_receiver(config)}
    assert deliver_due(timeline, fixed, now=lambda: T0 + timedelta(hours=2)).sent == 1


def _send_then_die(url: str, hook_url: str) -> None:
    """Claim and send, then die before marking: the crash the outbox must survive."""
    import asyncio

    import httpx

    timeline = Timeline(url)
    (item,) = timeline.outbox.claim_due(now=T0, lease=timedelta(minutes=2))

    async def send() -> None:
        async with httpx.AsyncClient() as http:
            await make_receiver("webhook", name="hook", url=hook_url).deliver(item.payload, http)

    asyncio.run(send())
    os._exit(9)


def test_crash_between_send_and_mark_duplicates_at_most_once(db_url: str, http_receiver) -> None:
    timeline = Timeline(db_url)
    fire(timeline)
    proc = mp.get_context("spawn").Process(target=_send_then_die,
                                           args=(db_url, http_receiver.url))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 9
    assert len(http_receiver.requests) == 1
    assert deliver_due(timeline, hook(http_receiver.url),
                       now=lambda: T0 + timedelta(minutes=1)).sent == 0, "lease still held"
    assert deliver_due(timeline, hook(http_receiver.url),
                       now=lambda: T0 + timedelta(minutes=3)).sent == 1, "lease expired: resent"
    assert deliver_due(timeline, hook(http_receiver.url),
                       now=lambda: T0 + timedelta(minutes=9)).sent == 0
    keys = [r.json()["dedup_key"] for r in http_receiver.requests]
    assert len(keys) == 2 and keys[0] == keys[1], "one duplicate, same dedup_key, no loss"


def test_backoff_is_capped_and_jittered() -> None:
    assert backoff(1, rng=lambda: 1.0) == timedelta(seconds=30)
    assert backoff(1, rng=lambda: 0.0) == timedelta(seconds=15)
    assert backoff(3, rng=lambda: 1.0) == timedelta(seconds=120)
    assert backoff(30, rng=lambda: 1.0) == timedelta(hours=1)


@pytest.mark.parametrize(("header", "expected"), [
    ("120", 120.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()) \
        == expected


def test_delivery_error_text_has_no_url(http_receiver) -> None:
    import asyncio

    import httpx

    http_receiver.default = 401
    receiver = make_receiver("webhook", name="hook", url=f"{http_receiver.url}/{SECRET}")

    async def send() -> None:
        async with httpx.AsyncClient() as http:
            await receiver.deliver(sample_group(), http)

    with pytest.raises(DeliveryError) as info:
        asyncio.run(send())
    assert info.value.permanent and SECRET not in str(info.value)


def test_payload_shape_for_resolved() -> None:
    body = alertmanager_payload(sample_group("resolved"), "hook")
    assert body["status"] == "resolved" and body["version"] == "4"
    assert body["alerts"][0]["endsAt"] == "2026-03-01T13:00:00+00:00"
    assert body["groupLabels"] == {"alertname": "dead_letters"}
    assert body["truncatedAlerts"] == 0


def test_webhook_max_alerts_truncates() -> None:
    body = alertmanager_payload(sample_group("firing", n_alerts=30), "hook", max_alerts=10)
    assert len(body["alerts"]) == 10 and body["truncatedAlerts"] == 20


def test_status_shows_stuck_and_failed_deliveries(sqlite_url: str, http_receiver,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from alert_jobs.cli.main import main

    timeline = Timeline(sqlite_url)
    fire(timeline)
    http_receiver.script = [503]
    deliver_due(timeline, hook(http_receiver.url), now=lambda: T0)
    assert main(["--database-url", sqlite_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "1 notification(s) waiting for retry; last error: hook: HTTP 503" in out
    http_receiver.default = 404
    deliver_due(timeline, hook(http_receiver.url), now=lambda: T0 + timedelta(hours=1))
    assert main(["--database-url", sqlite_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "waiting for retry" not in out
    assert "1 notification(s) failed permanently; last error: hook: HTTP 404" in out


_SEND_WITHOUT_DAGSTER = """
import sys
from pydantic import TypeAdapter
from alert_jobs.config import ReceiverConfig
from alert_jobs.notify.contract import sample_group
from alert_jobs.notify.registry import build_receiver
from alert_jobs.notify.testing import send_now
config = TypeAdapter(ReceiverConfig).validate_python(
    {"name": "hook", "type": "webhook", "url": sys.argv[1]})
error = send_now(build_receiver(config), sample_group())
sys.exit(0 if error is None and "dagster" not in sys.modules else 3)
"""


def test_receivers_are_plain_classes_that_send_without_dagster(http_receiver) -> None:
    """Receivers are built from their config model alone: building and sending one
    imports no Dagster, so no Dagster state can leak from a delivery (receivers used to
    be Dagster resources whose init context left an ephemeral instance behind)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SEND_WITHOUT_DAGSTER, http_receiver.url],
                          timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(http_receiver.requests) == 1


def test_status_shows_queued_backlog(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Queued-but-unsent messages show in `status`, not only those with failed attempts."""
    from alert_jobs.cli.main import main
    from alert_jobs.store import utcnow

    timeline = Timeline(db_url)
    assert main(["--database-url", db_url, "status"]) == 0
    assert "outbox: nothing waiting to be sent" in capsys.readouterr().out  # control
    now = utcnow()
    queued_at = now - timedelta(minutes=10)
    for key in ("live", "dead", "failing", "due"):
        timeline.outbox.enqueue("hook", "firing", key, dict(sample_group(dedup_key=key)),
                                now=queued_at)
    ids = {r["dedup_key"]: r["id"] for r in timeline.outbox.rows()}
    (live,) = timeline.outbox.claim_due(ids=[ids["live"]], now=now, lease=timedelta(minutes=1))
    (dead,) = timeline.outbox.claim_due(ids=[ids["dead"]], now=queued_at,
                                        lease=timedelta(seconds=30))
    (failing,) = timeline.outbox.claim_due(ids=[ids["failing"]], now=now,
                                           lease=timedelta(minutes=1))
    assert (live.dedup_key, dead.dedup_key, failing.dedup_key) == ("live", "dead", "failing")
    timeline.outbox.mark_failed(failing, "HTTP 503", retry_at=now + timedelta(hours=1), now=now)
    assert main(["--database-url", db_url, "status"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"outbox: 4 notification\(s\) queued, not sent yet, oldest queued "
                     r"10m(\d+s)? ago: 2 due now, 1 being sent \(leased\), 1 left by a stopped "
                     r"delivery run \(lease expired; the next delivery run sends them\), 1 "
                     r"with failed attempts\n", out), out
    assert "1 notification(s) waiting for retry; last error: hook: HTTP 503" in out
    assert timeline.outbox.due_count(now=now) == 2, "the sensor counts the expired lease"
    timeline.dispose()
