"""``GET /heartbeats`` over real HTTP: checks pinged through the served ``/ping/<slug>``,
then the page read as a signed-in browser (states, last ping, deadlines, the broken
ones first, links to their alerts, no token), and what a stranger and a database that
is down get."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.families.heartbeat import http as ping_http
from alert_jobs.families.heartbeat.run import evaluate_due
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.http.app import create_app
from alert_jobs.http.pages.render import when
from alert_jobs.store import Timeline, utcnow
from tests.conftest import served_app
from tests.http.pages_support import serve, settings, signed_in

TOKEN = "hb-page-s3cret-token"
RULES = """
defaults: {receivers: [console], dagster_url: "http://dagster.example:3000"}
receivers: [{name: console, type: console}]
checks:
  heartbeat:
    - name: etl
      slug: etl-hourly
      period: 1h
      grace: 5m
    - name: flaky_export
      period: 1d
      grace: 1h
      max_duration: 30m
    - name: slow_sync
      period: 1s
      grace: 1h
    - name: nightly_backup
      cron: "0 3 * * *"
      timezone: Europe/Berlin
      grace: 2h
      token: {env: HB_PAGE_TOKEN}
"""


def _cards(html: str) -> dict[str, str]:
    """Each check's card by slug, in page order."""
    found = re.findall(r'<section class="card" id="hb-([^"]+)">(.*?)</section>', html, re.S)
    return dict(found)


def _wait_for(probe: Callable[[], Any]) -> Any:
    for _ in range(300):
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("the background evaluation did not happen")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HB_PAGE_TOKEN", TOKEN)
    monkeypatch.setattr(ping_http, "WRITE_TIMEOUT_SECONDS", 60.0)  # a loaded CI machine


def test_the_page_shows_states_pings_deadlines_and_alerts(tmp_path: Path, db_url: str
                                                         ) -> None:
    rules = parse_rules(RULES)
    with serve(tmp_path, rules=rules, db_url=db_url) as served:
        browser = signed_in(served)
        empty = browser.get("/heartbeats")
        assert empty.status_code == 200
        cards = _cards(empty.text)
        assert list(cards) == ["etl-hourly", "flaky_export", "nightly_backup", "slow_sync"]
        assert all(">new<" in card for card in cards.values())  # nothing pinged yet
        assert "No deadline yet: the schedule starts with the first ping" in cards["etl-hourly"]

        pings = served.client()
        assert pings.get("/ping/etl-hourly").status_code == 200
        assert pings.get("/ping/etl-hourly/start?rid=r1").status_code == 200
        assert pings.get("/ping/etl-hourly/0?rid=r1").status_code == 200
        assert pings.get("/ping/slow_sync").status_code == 200
        assert pings.get("/ping/flaky_export/start").status_code == 200
        assert pings.get("/ping/flaky_export/3").status_code == 200  # a failure: down
        # the failure's alert opens at once (the ping's background evaluation); the
        # sensor's evaluation finds nothing more to do
        _wait_for(lambda: served.timeline.alerts.list())
        evaluate_due(rules, served.timeline, now=utcnow())
        (alert,) = served.timeline.alerts.list()
        assert (alert.rule, alert.labels["problem"]) == ("flaky_export", "failed")
        time.sleep(1.2)  # slow_sync's 1 s period passes: late (its grace is an hour)

        answer = browser.get("/heartbeats")
        assert answer.status_code == 200
        html = answer.text
        cards = _cards(html)
        # broken first (down, then late), then up, then never pinged
        assert list(cards) == ["flaky_export", "slow_sync", "etl-hourly", "nightly_backup"]
        assert '<span class="state bad">down</span>' in cards["flaky_export"]
        assert '<span class="state bad">late</span>' in cards["slow_sync"]
        assert '<span class="state ok">up</span>' in cards["etl-hourly"]
        assert '<span class="state muted">new</span>' in cards["nightly_backup"]
        assert "1 up" in html and "1 down" in html and "1 late" in html

        # the alert link, only where an alert is active
        assert f'href="/alerts/{alert.fingerprint}"' in cards["flaky_export"]
        assert "Alert: failed" in cards["flaky_export"]
        assert "/alerts/" not in cards["etl-hourly"] and "/alerts/" not in cards["slow_sync"]
        assert "the job reported failure (exit code 3)" in cards["flaky_export"]

        # schedules in words
        assert "a ping every 1 hour (grace 5 minutes)" in cards["etl-hourly"]
        assert "each run within 30 minutes" in cards["flaky_export"]
        assert "a ping after each &#39;0 3 * * *&#39; (Europe/Berlin) (grace 2 hours)" \
            in cards["nightly_backup"]

        # the last ping and the next deadline, from the stored ping
        row = HeartbeatStore(served.timeline).get("etl-hourly")
        assert row is not None and row.state.last_ping is not None
        last = row.state.last_ping
        assert f"{when(last)} <span class=\"muted\">(just now)</span>, success (exit code 0)" \
            in cards["etl-hourly"]
        assert f"Late at {when(last + timedelta(hours=1))} (in " in cards["etl-hourly"]
        assert f"Down at {when(last + timedelta(hours=1, minutes=5))} (in " \
            in cards["etl-hourly"]
        slow = HeartbeatStore(served.timeline).get("slow_sync")
        assert slow is not None and slow.state.last_ping is not None
        assert f"Late since {when(slow.state.last_ping + timedelta(seconds=1))}" \
            in cards["slow_sync"]
        assert "fail (exit code 3)" in cards["flaky_export"]

        # the last pings, newest first, with kind, run time and source address
        table = cards["etl-hourly"].split("<tbody>")[1]
        kinds = re.findall(r'<td class="(?:ok|bad|muted)">([^<]+)</td>', table)
        assert kinds == ["success (exit code 0)", "start", "success"]
        assert "127.0.0.1" in table and re.search(r"<td>\d+s</td>", table)

        # how to ping; a token is needed but never shown
        assert "<code>/ping/nightly_backup</code>" in cards["nightly_backup"]
        assert "needs its token" in cards["nightly_backup"]
        assert "needs its token" not in cards["etl-hourly"]
        assert TOKEN not in html


def test_a_down_check_after_its_deadline_links_its_missing_alert(tmp_path: Path) -> None:
    """Also: a paused check comes last, and a check created by its first ping is shown."""
    rules = parse_rules("""
defaults: {receivers: [console]}
receivers: [{name: console, type: console}]
checks:
  heartbeat:
    - {name: quick, period: 1s, grace: 1s}
    - {name: steady, period: 1d, grace: 1h}
    - {name: held, period: 1d, grace: 1h}
heartbeats:
  auto_create: {enabled: true, period: 2d, grace: 3h}
""")
    with serve(tmp_path, rules=rules) as served:
        pings = served.client()
        for slug in ("quick", "steady", "held", "adhoc-job"):
            assert pings.get(f"/ping/{slug}").status_code == 200
        HeartbeatStore(served.timeline).set_paused("held", True, utcnow())
        time.sleep(2.2)  # past quick's period and grace
        report = evaluate_due(rules, served.timeline, now=utcnow())
        assert [o.observation.labels["problem"] for o in report.outcomes] == ["missing"]
        (alert,) = served.timeline.alerts.list()
        cards = _cards(signed_in(served).get("/heartbeats").text)
        assert list(cards) == ["quick", "adhoc-job", "steady", "held"]
        assert '<span class="state muted">paused</span>' in cards["held"]
        assert "Paused: no deadline. The next ping resumes it." in cards["held"]
        assert "created by its first ping" in cards["adhoc-job"]
        assert "a ping every 2 days (grace 3 hours)" in cards["adhoc-job"]
        assert "created by its first ping" not in cards["steady"]
        assert '<span class="state bad">down</span>' in cards["quick"]
        assert "Down since " in cards["quick"] and "never came" in cards["quick"]
        assert f'href="/alerts/{alert.fingerprint}"' in cards["quick"]
        assert "Alert: missing" in cards["quick"]
        assert '<span class="state ok">up</span>' in cards["steady"]
        assert "/alerts/" not in cards["steady"]


def test_signed_out_is_sent_to_sign_in(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        stranger = served.client().get("/heartbeats")
        assert stranger.status_code == 303
        assert stranger.headers["location"] == "/login?next=%2Fheartbeats"
        assert "etl-hourly" not in stranger.text
        assert signed_in(served).get("/heartbeats").status_code == 200  # the control


def test_a_database_that_is_down_is_a_503_page(tmp_path: Path) -> None:
    """Signed in through the proxy header (no session to look up): the page itself
    finds the database down and says so."""
    down = Timeline(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'alerts.db'}")
    up = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    up.ensure_schema()
    proxy = settings(user_header="X-Forwarded-User")
    headers = {"X-Forwarded-User": "carol"}
    try:
        for timeline, status in ((down, 503), (up, 200)):  # the second is the control
            app = create_app(lambda t=timeline: t, lambda: parse_rules(RULES), auth=proxy)
            with served_app(app) as base:
                answer = httpx.get(f"{base}/heartbeats", headers=headers, timeout=60)
            assert answer.status_code == status, answer.text
            if status == 503:
                assert "The timeline database did not answer" in answer.text
                assert "etl-hourly" not in answer.text
            else:
                assert 'id="hb-etl-hourly"' in answer.text
    finally:
        down.dispose()
        up.dispose()
