"""`alert-jobs serve`: signed action links over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.app import create_app
from alert_jobs.notify.links import SECRET_ENV, action_links, sign
from alert_jobs.store import Timeline
from tests.conftest import served_app, submit_link_form

SECRET = "test-secret-0123456789abcdef"
http = httpx.Client(timeout=60)  # generous: a loaded CI machine must not fail these


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(url)
    now = datetime.now(UTC)
    obs = Observation("dead_letters", Status.ALERT, {"team": "payments"}, 1.0,
                      summary="Expected dead letters to be 0, got 1,000")
    fp = timeline.alerts.process(obs, RulePolicy(rule="dead_letters", receivers=("console",)),
                                 now=now).decision.record.fingerprint
    rules = parse_rules("defaults: {receivers: [console]}")
    app = create_app(lambda: timeline, lambda: rules)
    with served_app(app) as base:
        yield {"base": base, "timeline": timeline, "fp": fp, "now": now}
    timeline.dispose()


def link(action: str, fp: str, expires: datetime, secret: str = SECRET,
         timeline: Timeline | None = None) -> str:
    """A link for the alert's current episode (read from ``timeline``, else episode 1
    fired now, as the fixture's alert)."""
    record = timeline.alerts.get(fp) if timeline is not None else None
    episode = record.episode if record is not None else 1
    fired_at = record.fired_at if record is not None else None
    return f"/a/{sign(action, fp, expires, secret.encode(), episode=episode, fired_at=fired_at)}"


def current_link(served: dict, action: str, fp: str | None = None) -> str:
    return link(action, fp or served["fp"], served["now"] + timedelta(hours=1),
                timeline=served["timeline"])


def test_get_shows_a_button_and_changes_nothing(served: dict) -> None:
    path = current_link(served, "ack")
    response = http.get(served["base"] + path)
    assert response.status_code == 200
    assert "<form method='post'>" in response.text and "dead_letters" in response.text
    assert served["timeline"].events.list(kinds=["acked"]) == []


def test_pages_escape_what_the_alert_and_the_actor_say(served: dict) -> None:
    """The page templates escape every value: a hostile rule name or actor is text."""
    hostile = "<script>alert('x')</script>"
    obs = Observation(hostile, Status.ALERT, {}, 1.0, summary=f"<b>{hostile}</b>")
    fp = served["timeline"].alerts.process(obs, RulePolicy(rule=hostile, receivers=("console",)),
                                           now=served["now"]).decision.record.fingerprint
    path = current_link(served, "ack", fp)
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    shown = http.get(served["base"] + path).text
    assert "<script>" not in shown and "<b><" not in shown
    assert f"<b>{escaped}</b>" in shown and f"&lt;b&gt;{escaped}&lt;/b&gt;" in shown
    done = submit_link_form(served["base"], path, hostile).text
    assert "<script>" not in done and f"Acknowledged by {escaped}." in done


def test_post_ack_is_a_timeline_event_with_actor_and_source(served: dict) -> None:
    path = current_link(served, "ack")
    response = submit_link_form(served["base"], path, "alice")
    assert response.status_code == 200 and "Acknowledged by alice" in response.text
    (event,) = served["timeline"].events.list(kinds=["acked"])
    assert (event["actor"], event["source"]) == ("alice", "link")
    assert served["timeline"].alerts.get(served["fp"]).acked_by == "alice"


def test_snooze_and_outcome_links(served: dict) -> None:
    assert submit_link_form(served["base"], current_link(served, "snooze_6h"),
                            "bob").status_code == 200
    until = served["timeline"].alerts.get(served["fp"]).snoozed_until
    assert timedelta(hours=5, minutes=59) < until - served["now"] < timedelta(hours=6, minutes=1)
    assert submit_link_form(served["base"], current_link(served, "false_positive"),
                            "bob").status_code == 200
    record = served["timeline"].alerts.get(served["fp"])
    assert record.ack_outcome == "false-positive" and record.acked_by == "bob"


@pytest.mark.parametrize("kind", ["forged", "altered", "expired", "garbage"])
def test_bad_tokens_get_403_and_change_nothing(served: dict, kind: str) -> None:
    fp, future, tl = served["fp"], served["now"] + timedelta(hours=1), served["timeline"]
    path = {
        "forged": link("ack", fp, future, secret="someone-else-secret-123", timeline=tl),
        # a valid signature of one payload glued to another payload (a later expiry)
        "altered": link("ack", fp, future + timedelta(days=30), timeline=tl).split(".")[0]
        + "." + link("ack", fp, future, timeline=tl).split(".")[1],
        "expired": link("ack", fp, served["now"] - timedelta(seconds=1), timeline=tl),
        "garbage": "/a/not-a-token",
    }[kind]
    before = len(served["timeline"].events.list())
    assert http.get(served["base"] + path).status_code == 403
    response = submit_link_form(served["base"], path, "mallory")
    assert response.status_code == 403, response.text
    assert len(served["timeline"].events.list()) == before
    assert served["timeline"].alerts.get(fp).acked_at is None
    # Positive control: the genuine link for the same alert works.
    assert submit_link_form(served["base"], current_link(served, "ack"),
                            "alice").status_code == 200


def test_links_refused_without_a_secret(served: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    path = current_link(served, "ack")
    monkeypatch.delenv(SECRET_ENV)
    response = submit_link_form(served["base"], path, "alice")
    assert response.status_code == 403 and "not configured" in response.text


def test_healthz(served: dict) -> None:
    response = http.get(served["base"] + "/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_messages_carry_signed_links_only_when_configured(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    plain = action_links("abcdef1234567890", "dl", base_url="https://alerts.example", now=now,
                         ttl=timedelta(days=2))
    assert plain["ack"] == "alert-jobs ack abcdef123456 --by YOU"
    monkeypatch.setenv(SECRET_ENV, SECRET)
    signed = action_links("abcdef1234567890", "dl", base_url="https://alerts.example",
                          now=now, ttl=timedelta(days=2))
    assert signed["ack"].startswith("https://alerts.example/a/")
    assert signed["snooze_1h"] != signed["snooze_6h"]
    assert SECRET not in str(signed)


def test_verify_accepts_only_the_canonical_token() -> None:
    """One string per signed payload: padding, the other base64 alphabet or a changed
    spare bit are refused even though they decode to the same bytes."""
    from alert_jobs.notify.links import LinkError, verify

    now = datetime(2026, 3, 1, tzinfo=UTC)
    token = sign("ack", "abcdef1234567890", now + timedelta(hours=1), SECRET.encode(),
                 episode=3, fired_at=now - timedelta(minutes=5))
    good = verify(token, SECRET.encode(), now)
    assert (good.action, good.episode, good.fired_at) == (
        "ack", 3, int((now - timedelta(minutes=5)).timestamp()))
    payload, mac = token.split(".")
    variants = [f"{payload}.{mac}=", f"{payload}.{mac.replace('-', '+').replace('_', '/')}",
                f"{payload}.{mac[:-1]}{chr(ord(mac[-1]) ^ 1)}", f"{token}.x", token[:-1]]
    for variant in variants:
        if variant == token:
            continue
        with pytest.raises(LinkError):
            verify(variant, SECRET.encode(), now)
