"""Issue 16 point 1: an action link acts on the alert episode it was sent for, once.

Every test runs a real server (uvicorn on 127.0.0.1) on SQLite and PostgreSQL, and
takes its links from the real message the engine queued (the outbox row), so the
episode a link carries is the one the engine decided. Each refusal has its positive
control beside it: the legitimate first use works.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.app import create_app
from alert_jobs.http.security import HEADERS
from alert_jobs.notify.links import SECRET_ENV, sign
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, utcnow
from tests.conftest import served_app, submit_link_form

SECRET = "test-secret-0123456789abcdef"
GONE = "this alert has resolved since; open the current one"
RULES = """
defaults:
  receivers: [console]
  action_base_url: {base}
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///unused.db
      query: SELECT 1
      window: 30m
      expect: {{max: 0}}
      severity: critical
      for: 0m
      schedule: "* * * * *"
    - name: slow_letters
      database: sqlite:///unused.db
      query: SELECT 1
      window: 30m
      expect: {{max: 0}}
      for: 5m
      schedule: "* * * * *"
"""


@dataclass
class Incident:
    base: str
    timeline: Timeline
    rules: RulesFile

    def observe(self, status: Status, at: datetime, rule_name: str = "dead_letters") -> str:
        rule = self.rules.rule(rule_name)
        obs = Observation(rule_name, status, {"team": "payments"}, 1000.0,
                          summary="Expected dead letters to be 0, got 1,000")
        (outcome,) = process_observations(self.rules, rule, self.timeline, [(obs, "")],
                                          now=at, run_id=None)
        return outcome.observation.fingerprint

    def links(self) -> dict[str, str]:
        """The action links (paths) of the newest message queued for the alert."""
        (alert,) = self.timeline.outbox.rows()[-1]["payload"]["alerts"]
        return {k: v[len(self.base):] for k, v in alert["actions"].items()
                if v.startswith(self.base)}

    def alert(self) -> Any:
        (record,) = self.timeline.alerts.list(include_inactive=True)
        return record

    def events(self, kind: str) -> list[dict[str, Any]]:
        return self.timeline.events.list(kinds=[kind])


@pytest.fixture
def incident(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Incident]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    timeline = Timeline(db_url)
    # The links name the server's own address, known only once it listens: start on
    # rules with a placeholder address, then publish the real ones at once.
    holder: dict[str, RulesFile] = {"rules": parse_rules(RULES.format(base="http://127.0.0.1:9"))}
    app = create_app(lambda: timeline, lambda: holder["rules"])
    with served_app(app) as base:
        holder["rules"] = parse_rules(RULES.format(base=base))
        app.state.rules.refresh()
        yield Incident(base, timeline, holder["rules"])
    timeline.dispose()


def fire_resolve_fire(incident: Incident) -> tuple[dict[str, str], dict[str, str],
                                                      dict[str, str]]:
    """Yesterday's incident, its resolve, today's incident: the links of each message."""
    now = utcnow()
    incident.observe(Status.ALERT, now - timedelta(minutes=30))
    first = incident.links()
    incident.observe(Status.OK, now - timedelta(minutes=20))
    resolved = incident.links()
    incident.observe(Status.ALERT, now - timedelta(minutes=10))
    second = incident.links()
    assert first["ack"] != second["ack"] and incident.alert().episode == 2
    return first, resolved, second


def test_links_name_the_episode_of_their_message(incident: Incident) -> None:
    first, resolved, second = fire_resolve_fire(incident)
    assert set(first) == {"ack", "snooze_1h", "snooze_6h", "actionable", "false_positive",
                          "noise", "duplicate", "disable"}
    # A resolve asks "how did it go?" instead of offering to disable the rule.
    assert set(resolved) == set(first) - {"disable"} | {"incident"}
    assert first["actionable"] != resolved["actionable"] != second["actionable"]


def test_an_old_episodes_ack_link_answers_410_and_changes_nothing(incident: Incident) -> None:
    """The issue's attack: yesterday's ack link, POSTed after the alert resolved and
    fired again, used to ack today's incident (200, acked_by set)."""
    first, _, second = fire_resolve_fire(incident)
    before = incident.timeline.events.list()
    page = httpx.get(incident.base + first["ack"], timeout=60)
    assert page.status_code == 410 and GONE in page.text.lower() and "<form" not in page.text
    for action in ("ack", "snooze_1h", "false_positive"):
        refused = submit_link_form(incident.base, first[action], "mallory")
        assert refused.status_code == 410, (action, refused.text)
        assert GONE in refused.text.lower() and "fired again" in refused.text
    assert incident.timeline.events.list() == before
    alert = incident.alert()
    assert (alert.acked_at, alert.acked_by, alert.snoozed_until, alert.ack_outcome) == (
        None, None, None, None)

    # The page links to the current alert: read-only, no way to act on it from there.
    (current,) = re.findall(r"href='(/a/[^']+)'", page.text)
    view = httpx.get(incident.base + current, timeout=60)
    assert view.status_code == 200 and "dead_letters" in view.text and "firing" in view.text
    assert "<form" not in view.text
    assert httpx.post(incident.base + current, timeout=60).status_code in (403, 405)
    assert incident.timeline.events.list() == before

    # Positive control: today's message's ack link acks today's incident.
    done = submit_link_form(incident.base, second["ack"], "bob")
    assert done.status_code == 200 and "Acknowledged by bob" in done.text
    assert incident.alert().acked_by == "bob" and len(incident.events("acked")) == 1


def test_an_old_ack_link_cannot_ack_the_next_incident_while_it_is_pending(
        incident: Incident) -> None:
    """With ``for: 5m`` the next incident is pending for a while before it fires, and
    keeps the old episode's number until then: an ack then would mute it in advance."""
    now = utcnow()
    for minutes, status in ((50, Status.ALERT), (40, Status.ALERT), (30, Status.OK),
                            (20, Status.ALERT)):
        incident.observe(status, now - timedelta(minutes=minutes), "slow_letters")
        if minutes == 40:
            old = incident.links()
    assert str(incident.alert().state) == "pending" and incident.alert().episode == 1
    for action in ("ack", "snooze_6h"):  # (an outcome vote on episode 1 stays valid)
        refused = submit_link_form(incident.base, old[action], "mallory")
        assert refused.status_code == 410, (action, refused.text)
    assert incident.events("acked") == [] and incident.alert().acked_by is None
    assert incident.alert().snoozed_until is None
    # Positive control: it fires (episode 2), and that message's ack link acks it.
    incident.observe(Status.ALERT, now - timedelta(minutes=10), "slow_letters")
    assert submit_link_form(incident.base, incident.links()["ack"], "bob").status_code == 200
    assert incident.alert().acked_by == "bob" and incident.alert().episode == 2


def test_after_a_resolve_ack_is_gone_but_the_outcome_vote_works(incident: Incident) -> None:
    now = utcnow()
    incident.observe(Status.ALERT, now - timedelta(minutes=30))
    firing = incident.links()
    incident.observe(Status.OK, now - timedelta(minutes=20))
    resolved = incident.links()
    refused = submit_link_form(incident.base, firing["ack"], "mallory")
    assert refused.status_code == 410 and GONE in refused.text.lower()
    assert incident.events("acked") == [] and incident.alert().acked_by is None
    # Positive control: the resolved message asks what the alert was; that answer counts.
    voted = submit_link_form(incident.base, resolved["actionable"], "carol")
    assert voted.status_code == 200 and "Marked actionable by carol" in voted.text
    assert incident.alert().ack_outcome == "actionable"


def test_an_ack_link_acts_once_and_says_who_acked(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    links = incident.links()
    first = submit_link_form(incident.base, links["ack"], "alice")
    assert first.status_code == 200 and "Acknowledged by alice" in first.text
    acked = incident.alert()
    assert acked.acked_by == "alice"
    when = f"{acked.acked_at:%Y-%m-%d %H:%M} UTC"

    again = submit_link_form(incident.base, links["ack"], "mallory")
    assert again.status_code == 409 and "alice" in again.text and when in again.text
    shown = httpx.get(incident.base + links["ack"], timeout=60)
    assert shown.status_code == 409 and "alice" in shown.text and "<form" not in shown.text
    # Another ack link of the same episode (a later reminder's) changes nothing either.
    record = incident.alert()
    other = sign("ack", record.fingerprint, utcnow() + timedelta(hours=3), SECRET.encode(),
                 episode=record.episode, fired_at=record.fired_at)
    assert other not in links["ack"]
    third = submit_link_form(incident.base, f"/a/{other}", "mallory")
    assert third.status_code == 409 and "already acknowledged by alice" in third.text.lower()

    after = incident.alert()
    assert (after.acked_by, after.acked_at) == ("alice", acked.acked_at)
    (event,) = incident.events("acked")
    assert event["actor"] == "alice" and event["source"] == "link"


def test_a_snooze_link_snoozes_once(incident: Incident) -> None:
    """A replayed snooze link used to push snoozed_until forward, again and again."""
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    links = incident.links()
    first = submit_link_form(incident.base, links["snooze_1h"], "alice")
    assert first.status_code == 200 and "Snoozed until" in first.text
    until = incident.alert().snoozed_until
    assert until is not None and timedelta(minutes=59) < until - utcnow() <= timedelta(hours=1)

    again = submit_link_form(incident.base, links["snooze_1h"], "mallory")
    assert again.status_code == 409 and "alice" in again.text
    assert incident.alert().snoozed_until == until
    assert len(incident.events("snoozed")) == 1
    # Positive control: the message's other snooze link is a different link, used once.
    longer = submit_link_form(incident.base, links["snooze_6h"], "alice")
    assert longer.status_code == 200
    assert incident.alert().snoozed_until - until > timedelta(hours=4)


def test_one_link_used_by_many_at_once_acts_once(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    path = incident.links()["ack"]
    results: dict[str, int] = {}

    def use(name: str) -> None:
        results[name] = submit_link_form(incident.base, path, name).status_code

    threads = [threading.Thread(target=use, args=(f"person{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results.values()) == [200] + [409] * 7, results
    (winner,) = [name for name, status in results.items() if status == 200]
    (event,) = incident.events("acked")
    assert event["actor"] == winner == incident.alert().acked_by


def _same_bytes_other_text(part: str) -> str:
    """``part`` with its last base64 character changed to one that decodes to the same
    bytes (only the spare low bits differ)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 4, 3: 2}[len(part) % 4]  # unused low bits of the last character
    index = alphabet.index(part[-1])
    changed = part[:-1] + alphabet[index ^ ((1 << spare) - 1)]

    def lenient(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    assert changed != part and lenient(changed) == lenient(part)
    return changed


def test_a_token_whose_last_character_changed_is_refused(incident: Incident) -> None:
    """Both strings decode to the same bytes; the signature is checked on the canonical
    encoding, so only the string the server issued verifies."""
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    path = incident.links()["ack"]
    payload, mac = path[len("/a/"):].split(".")
    for tampered in (f"/a/{payload}.{_same_bytes_other_text(mac)}",
                     *([f"/a/{_same_bytes_other_text(payload)}.{mac}"]
                       if len(payload) % 4 else [])):
        assert httpx.get(incident.base + tampered, timeout=60).status_code == 403
        refused = submit_link_form(incident.base, tampered, "mallory")
        assert refused.status_code == 403 and "malformed" in refused.text
    assert incident.events("acked") == [] and incident.alert().acked_by is None
    # Positive control: the token as issued works.
    assert submit_link_form(incident.base, path, "alice").status_code == 200
    assert incident.alert().acked_by == "alice"


def test_an_expired_link_is_refused(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    record = incident.alert()

    def path(expires: datetime) -> str:
        return "/a/" + sign("ack", record.fingerprint, expires, SECRET.encode(),
                            episode=record.episode, fired_at=record.fired_at)

    refused = submit_link_form(incident.base, path(utcnow() - timedelta(seconds=1)), "mallory")
    assert refused.status_code == 403 and "expired" in refused.text
    assert incident.events("acked") == []
    # Positive control: the same link, still valid.
    assert submit_link_form(incident.base, path(utcnow() + timedelta(hours=1)),
                            "alice").status_code == 200
    assert incident.alert().acked_by == "alice"


@pytest.mark.parametrize("name", ["", "   "])
def test_a_post_without_a_name_is_refused_by_the_form(incident: Incident, name: str) -> None:
    """It used to be recorded as acked by "link"."""
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    path = incident.links()["ack"]
    refused = submit_link_form(incident.base, path, name)
    assert refused.status_code == 400
    assert "Enter your name" in refused.text and "<form" in refused.text
    assert incident.events("acked") == [] and incident.alert().acked_by is None
    # Positive control: with a name, the same link acts, as that person.
    done = submit_link_form(incident.base, path, "carol")
    assert done.status_code == 200 and incident.alert().acked_by == "carol"
    (event,) = incident.events("acked")
    assert event["actor"] == "carol"


def test_a_post_whose_csrf_field_and_cookie_differ_is_refused(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    url = incident.base + incident.links()["ack"]
    page = httpx.get(url, timeout=60)
    token = re.search(r"name='csrf' value='([^']+)'", page.text).group(1)  # type: ignore[union-attr]
    cookie = page.headers["set-cookie"]
    assert f"alert_jobs_csrf={token}" in cookie
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Path=/a/" in cookie
    for data, jar in (({"by": "m", "csrf": token}, "alert_jobs_csrf=" + "x" * 43),
                      ({"by": "m", "csrf": token}, ""),
                      ({"by": "m"}, f"alert_jobs_csrf={token}")):
        refused = httpx.post(url, data=data, headers={"Cookie": jar} if jar else {},
                             timeout=60)
        assert refused.status_code == 403, (data, jar, refused.text)
    assert incident.events("acked") == [] and incident.alert().acked_by is None
    # Positive control: the page's own field and cookie.
    done = httpx.post(url, data={"by": "alice", "csrf": token},
                      headers={"Cookie": f"alert_jobs_csrf={token}"}, timeout=60)
    assert done.status_code == 200 and incident.alert().acked_by == "alice"


def test_every_answer_carries_the_security_headers(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    path = incident.links()["ack"]
    answers = [httpx.get(incident.base + path, timeout=60),  # the form
               httpx.get(incident.base + "/a/not-a-token", timeout=60),  # 403
               httpx.get(incident.base + "/healthz", timeout=60),
               # signed out: any other page sends the browser to sign in first
               httpx.get(incident.base + "/no/such/page", timeout=60),
               httpx.get(incident.base + "/login", timeout=60),
               submit_link_form(incident.base, path, "alice")]
    assert [a.status_code for a in answers] == [200, 403, 200, 303, 200, 200]
    for answer in answers:
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, (answer.url, name)
    csp = HEADERS["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert HEADERS["referrer-policy"] == "no-referrer"
    assert HEADERS["x-content-type-options"] == "nosniff"


def test_view_links_expire_like_any_other(incident: Incident) -> None:
    incident.observe(Status.ALERT, utcnow() - timedelta(minutes=5))
    fp = incident.alert().fingerprint
    old = sign("view", fp, datetime.now(UTC) - timedelta(seconds=1), SECRET.encode())
    assert httpx.get(f"{incident.base}/a/{old}", timeout=60).status_code == 403
    fresh = sign("view", fp, datetime.now(UTC) + timedelta(minutes=5), SECRET.encode())
    assert httpx.get(f"{incident.base}/a/{fresh}", timeout=60).status_code == 200
