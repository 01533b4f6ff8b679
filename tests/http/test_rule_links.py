"""Issue 21 points 1 and 4: a message's disable link (with an expiry, reversible) and the
resolve message's "how did it go?" link, used over real HTTP (uvicorn on 127.0.0.1) on
the links the engine put in the queued messages. Each refusal has its positive control.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.app import create_app
from alert_jobs.notify.links import SECRET_ENV, sign
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, utcnow
from tests.conftest import served_app

SECRET = "test-secret-0123456789abcdef"
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
      schedule: "* * * * *"
"""


@dataclass
class Server:
    base: str
    timeline: Timeline
    rules: RulesFile

    def observe(self, status: Status, at: datetime, queue: str = "q1") -> str:
        rule = self.rules.rule("dead_letters")
        obs = Observation("dead_letters", status, {"queue": queue}, 1000.0,
                          summary="Expected dead letters to be 0, got 1,000")
        (outcome,) = process_observations(self.rules, rule, self.timeline, [(obs, "")],
                                          now=at, run_id=None)
        return outcome.observation.fingerprint

    def links(self) -> dict[str, str]:
        """The action links (paths) of the newest queued message."""
        (alert,) = self.timeline.outbox.rows()[-1]["payload"]["alerts"]
        return {k: v[len(self.base):] for k, v in alert["actions"].items()
                if v.startswith(self.base)}

    def messages(self) -> int:
        return len(self.timeline.outbox.rows())


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    timeline = Timeline(db_url)
    holder = {"rules": parse_rules(RULES.format(base="http://127.0.0.1:9"))}
    app = create_app(lambda: timeline, lambda: holder["rules"])
    with served_app(app) as base:
        holder["rules"] = parse_rules(RULES.format(base=base))
        app.state.rules.refresh()
        yield Server(base, timeline, holder["rules"])
    timeline.dispose()


def submit(base: str, path: str, fields: dict[str, str]) -> httpx.Response:
    """GET the link's page, then POST its form with the page's CSRF token and ``fields``
    (a page without a form, e.g. a used link: a self-made matching token, as a script
    would; the server must refuse it)."""
    page = httpx.get(base + path, timeout=60)
    found = re.search(r"name='csrf' value='([^']+)'", page.text)
    token = found.group(1) if found else "s" * 40
    return httpx.post(base + path, data={**fields, "csrf": token},
                      headers={"Cookie": f"alert_jobs_csrf={token}"}, timeout=60)


def test_disable_for_an_hour_mutes_the_rule_and_the_result_page_re_enables_it(
        server: Server) -> None:
    now = utcnow()
    server.observe(Status.ALERT, now - timedelta(minutes=10))
    disable = server.links()["disable"]
    page = httpx.get(server.base + disable, timeout=60)
    assert page.status_code == 200 and "Disable rule <b>dead_letters</b>" in page.text
    for choice in ("1 hour", "1 day", "7 days", "until enabled again"):
        assert choice in page.text

    # Bad answers: 400 naming the problem, nothing written.
    assert "Say why" in submit(server.base, disable, {"by": "ana", "for": "1h"}).text
    odd = submit(server.base, disable, {"by": "ana", "note": "noisy", "for": "3w"})
    assert odd.status_code == 400 and "Choose for how long" in odd.text
    assert server.timeline.rule_settings.disabled() == set()
    assert server.timeline.events.list(kinds=["disabled"]) == []

    done = submit(server.base, disable, {"by": "ana", "note": "noisy after deploy",
                                         "for": "1h"})
    assert done.status_code == 200, done.text
    assert "Rule dead_letters disabled until" in done.text and "by ana" in done.text
    assert "alert-jobs enable dead_letters" in done.text
    setting = server.timeline.rule_settings.get("dead_letters")
    assert setting is not None and setting.disabled and setting.until is not None
    assert timedelta(minutes=59) < setting.until - utcnow() <= timedelta(hours=1)
    (event,) = server.timeline.events.list(kinds=["disabled"])
    assert (event["actor"], event["source"], event["rule"]) == ("ana", "link", "dead_letters")
    assert event["payload"]["until"] == setting.until.isoformat()
    assert event["payload"]["note"] == "noisy after deploy"

    # Muted: another alert of the rule fires and nobody is told, with the reason.
    sent = server.messages()
    server.observe(Status.ALERT, utcnow(), queue="q2")
    assert server.messages() == sent
    assert any(e["reason"] == "rule disabled"
               for e in server.timeline.events.list(kinds=["suppressed"]))

    # The same disable link again: 409, nothing changes.
    again = submit(server.base, disable, {"by": "bob", "note": "x", "for": "1d"})
    assert again.status_code == 409 and "already disabled by ana" in again.text

    # Re-enable from the result page's signed link: once.
    (enable,) = re.findall(r"href='(/a/[^']+)'", done.text)
    assert "dead_letters" in httpx.get(server.base + enable, timeout=60).text
    enabled = submit(server.base, enable, {"by": "ana"})
    assert enabled.status_code == 200 and "enabled again by ana" in enabled.text
    assert server.timeline.rule_settings.disabled() == set()
    (event,) = server.timeline.events.list(kinds=["enabled"])
    assert (event["actor"], event["source"]) == ("ana", "link")
    assert submit(server.base, enable, {"by": "ana"}).status_code == 409
    # The rule is enabled, yet the used disable link still cannot disable it again.
    reused = submit(server.base, disable, {"by": "bob", "note": "x", "for": "1d"})
    assert reused.status_code == 409 and "already used by ana" in reused.text
    assert server.timeline.rule_settings.disabled() == set()
    # Positive control of the mute: enabled, a new alert of the rule is sent.
    server.observe(Status.ALERT, utcnow(), queue="q3")
    assert server.messages() == sent + 1


def test_a_disable_that_lapsed_counts_as_enabled(server: Server) -> None:
    """``disabled_until`` passed: the rule notifies again with nobody flipping it back."""
    now = utcnow()
    server.timeline.rule_settings.set_disabled("dead_letters", True, by="ana", note="x",
                                               now=now - timedelta(hours=2),
                                               until=now - timedelta(hours=1))
    assert server.timeline.rule_settings.disabled() == set()
    server.observe(Status.ALERT, now)
    assert server.messages() == 1
    # Control: one that lasts still mutes.
    server.timeline.rule_settings.set_disabled("dead_letters", True, by="ana", note="x",
                                               until=now + timedelta(hours=1))
    assert server.timeline.rule_settings.disabled() == {"dead_letters"}
    server.observe(Status.ALERT, now + timedelta(minutes=1), queue="q2")
    assert server.messages() == 1


def test_forged_and_expired_disable_links_are_refused(server: Server) -> None:
    now = utcnow()
    fp = server.observe(Status.ALERT, now - timedelta(minutes=10))
    alert = server.timeline.alerts.get(fp)
    assert alert is not None
    expired = sign("disable", fp, now - timedelta(seconds=1), SECRET.encode(),
                   episode=alert.episode, fired_at=alert.fired_at)
    forged = sign("disable", fp, now + timedelta(hours=1), b"another-secret-0123456789",
                  episode=alert.episode, fired_at=alert.fired_at)
    for token, words in ((expired, "expired"), (forged, "not issued by this server")):
        page = httpx.get(f"{server.base}/a/{token}", timeout=60)
        assert page.status_code == 403 and words in page.text
        refused = httpx.post(f"{server.base}/a/{token}", timeout=60,
                             data={"by": "m", "note": "x", "for": "", "csrf": "c" * 40},
                             headers={"Cookie": "alert_jobs_csrf=" + "c" * 40})
        assert refused.status_code == 403
    assert server.timeline.rule_settings.disabled() == set()
    # Control: the genuine link works, until enabled.
    done = submit(server.base, server.links()["disable"],
                  {"by": "ana", "note": "flapping", "for": ""})
    assert done.status_code == 200 and "until someone enables it" in done.text
    assert server.timeline.rule_settings.get("dead_letters").until is None  # type: ignore[union-attr]


def test_how_did_it_go_link_records_the_episode_again_and_again(server: Server) -> None:
    now = utcnow()
    fp = server.observe(Status.ALERT, now - timedelta(minutes=30))
    assert "incident" not in server.links()
    server.observe(Status.OK, now - timedelta(minutes=5))
    link = server.links()["incident"]
    page = httpx.get(server.base + link, timeout=60)
    assert page.status_code == 200 and "<form" in page.text and "dead_letters" in page.text

    bad = submit(server.base, link, {"by": "ana"})  # nothing answered
    assert bad.status_code == 400
    assert server.timeline.incidents.for_episode(fp, 1) is None

    first = submit(server.base, link, {"by": "ana", "verified": "dashboard",
                                       "mitigation": "replayed the queue"})
    assert first.status_code == 200, first.text
    again = submit(server.base, link, {"by": "bob", "false_positive": "no",
                                       "verified": "dashboard"})
    assert again.status_code == 200, again.text
    record: Any = server.timeline.incidents.for_episode(fp, 1)
    assert record.verified == "dashboard" and record.mitigation == "replayed the queue"
    assert record.false_positive is False and record.ended_at is not None
    assert record.rule == "dead_letters"
    events = server.timeline.events.list(kinds=["incident"])
    assert {e["source"] for e in events} == {"link"} and {e["actor"] for e in events} == {
        "ana", "bob"}

    # The link lasts for days and takes free text: a body over the pages' 64 KiB is
    # refused before it is read whole, a NUL character before the database sees it.
    huge = submit(server.base, link, {"by": "eve", "mitigation": "x" * 70_000})
    nul = submit(server.base, link, {"by": "eve", "mitigation": "a\x00b"})
    assert (huge.status_code, nul.status_code) == (413, 400)
    assert {e["actor"] for e in server.timeline.events.list(kinds=["incident"])} == {
        "ana", "bob"}  # nothing written by either
