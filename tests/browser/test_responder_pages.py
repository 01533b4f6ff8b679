"""The responder pages as a person uses them: a real Chromium against ``alert-jobs
serve``'s app on 127.0.0.1, clicking the buttons and reading what each page then shows.

The pages have no JavaScript, so what is tested here is what the HTML tests cannot see:
that the forms, redirects and cookies work together in a browser (SameSite, the CSRF
fields a browser really sends, where each button takes you). Two tests keep the browser
part of the suite short: signing in and out, and one responder's whole flow.

``UPDATE_SCREENSHOTS=1`` makes the flow test write the pages' pictures used by
docs/responder-pages.md into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.store import Timeline
from tests.browser.conftest import STEP_TIMEOUT_MS
from tests.http import pages_support
from tests.http.pages_support import serve

expect = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -r requirements.lock)"
).expect
expect.set_options(timeout=STEP_TIMEOUT_MS)  # a loaded CI machine, not a slow page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
RULES = pages_support.RULES + """
checks:
  heartbeat:
    - name: nightly_backup
      period: 1d
      grace: 1h
      severity: critical
      labels: {team: platform}
    - name: etl_orders
      period: 15m
      grace: 5m
      severity: warning
      labels: {team: data}
"""
#: rule, severity, labels, value, expected, summary, how long it must hold before firing.
ALERTS = (
    ("dead_letters", Severity.CRITICAL, {"team": "payments"}, 1000.0, "to be 0",
     "Expected dead letters to be 0, got 1,000", timedelta(0)),
    ("disk_usage", Severity.WARNING, {"host": "db-1"}, 91.0, "at most 85 %",
     "Disk of db-1 is 91 % full", timedelta(0)),
    ("queue_lag", Severity.INFO, {"queue": "emails"}, 420.0, "at most 300 s",
     "Emails wait 420 s in the queue", timedelta(0)),
    ("slow_reports", Severity.WARNING, {"team": "reports"}, 38.0, "at most 30 s",
     "Reports take 38 s", timedelta(hours=1)),
)


def seed(timeline: Timeline, now: datetime) -> None:
    """Three firing alerts, one of each severity, and one pending (its rule waits an
    hour); each raised by a Dagster run 25 minutes ago and seen again 5 minutes ago."""
    for rule, severity, labels, value, expected, summary, wait in ALERTS:
        policy = RulePolicy(rule=rule, severity=severity, for_=wait, receivers=("console",))
        obs = Observation(rule, Status.ALERT, labels, value, summary=summary,
                          expected=expected, seen=f"{value:g}")
        timeline.alerts.process(obs, policy, now=now - timedelta(minutes=25),
                                run_id="5f2c9e41-77aa-4b0e-9d1c-0a8e51d3c2b7")
        timeline.alerts.process(obs, policy, now=now - timedelta(minutes=5))


def shoot(page: Any, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, user: str, password: str) -> None:
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def row(page: Any, rule: str) -> Any:
    """The alert list's row of ``rule``."""
    return page.locator("tbody tr").filter(has=page.get_by_role("link", name=rule, exact=True))


def muted_cell(page: Any, rule: str) -> Any:
    return row(page, rule).locator("td").nth(4)


def minutes(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def test_sign_in_wrong_password_and_sign_out(page: Any, tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        page.goto(served.base + "/alerts")
        expect(page).to_have_url(served.base + "/login?next=%2Falerts")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        sign_in(page, "alice", "not the password")
        expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
        expect(page.locator("header")).not_to_contain_text("alice")

        sign_in(page, "alice", pages_support.PASSWORD)
        expect(page).to_have_url(served.base + "/alerts")
        expect(page.locator("header .who")).to_contain_text("alice")
        expect(page.get_by_role("heading", name="Alerts")).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(served.base + "/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator("header")).not_to_contain_text("alice")
        page.goto(served.base + "/alerts")
        expect(page).to_have_url(served.base + "/login?next=%2Falerts")


def test_a_responder_acks_snoozes_and_silences(page: Any, browser: Any,
                                               tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with serve(tmp_path, rules=RULES) as served:
        seed(served.timeline, now)
        httpx.get(served.base + "/ping/etl_orders", timeout=30).raise_for_status()
        base = served.base

        # Sign in: the list shows every active alert, grouped, nothing muted yet.
        page.goto(base + "/alerts")
        shoot(page, "sign-in")
        sign_in(page, "alice", pages_support.PASSWORD)
        expect(page).to_have_url(base + "/alerts")
        expect(page.locator("main > p").first).to_contain_text(
            "4 active: 3 firing, 0 recovering, 1 pending; 0 muted.")
        expect(page.get_by_role("heading", name="critical firing")).to_be_visible()
        expect(page.get_by_role("heading", name="warning pending")).to_be_visible()
        expect(row(page, "dead_letters")).to_contain_text("Expected dead letters to be 0")
        expect(row(page, "dead_letters")).to_contain_text("1,000")
        expect(row(page, "slow_reports")).to_contain_text("Reports take 38 s")
        for rule, *_ in ALERTS:
            expect(muted_cell(page, rule)).to_have_text("—")

        # Acknowledge dead_letters on its own page.
        page.get_by_role("link", name="dead_letters", exact=True).click()
        expect(page.get_by_role("heading", name="dead_letters")).to_be_visible()
        expect(page.locator(".card").first).to_contain_text("firing")
        page.get_by_label("Note (optional)").fill("draining the queue")
        page.get_by_role("button", name="Acknowledge", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Acknowledged.")
        alert_url = page.url
        expect(page.get_by_role("row", name=re.compile("^Acknowledged"))).to_contain_text(
            "by alice")
        expect(page.get_by_role("row", name=re.compile("^Muted"))).to_contain_text(
            "acked by alice")
        expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)
        expect(page.get_by_role("button", name="Unacknowledge")).to_be_visible()
        timeline = page.locator("table").last
        ack = timeline.locator("tbody tr").filter(
            has=page.locator("td:nth-child(2) > b", has_text=re.compile("^acked$")))
        expect(ack).to_have_count(1)
        expect(ack.locator("td").nth(2)).to_have_text("alice")
        expect(ack.locator("td").nth(3)).to_have_text("page")
        expect(timeline).to_contain_text("draining the queue")
        shoot(page, "alert")

        page.get_by_role("link", name="Alerts", exact=True).click()
        expect(muted_cell(page, "dead_letters")).to_have_text("acked by alice")
        expect(muted_cell(page, "disk_usage")).to_have_text("—")

        # Snooze disk_usage for an hour: the list says until when.
        page.get_by_role("link", name="disk_usage", exact=True).click()
        page.get_by_label("Snooze for").select_option("1h")
        before = datetime.now(UTC)
        page.get_by_role("button", name="Snooze", exact=True).click()
        after = datetime.now(UTC)
        expect(page.get_by_role("status")).to_have_text("Snoozed.")
        untils = {minutes(before + timedelta(hours=1)), minutes(after + timedelta(hours=1))}
        expect(page.get_by_role("row", name=re.compile("^Muted"))).to_have_text(
            re.compile("snoozed until (" + "|".join(map(re.escape, untils)) + ")"))
        page.get_by_role("link", name="Alerts", exact=True).click()
        expect(muted_cell(page, "disk_usage")).to_have_text(
            re.compile("^snoozed until (" + "|".join(map(re.escape, untils)) + ")$"))
        expect(muted_cell(page, "queue_lag")).to_have_text("—")
        expect(page.locator("main > p").first).to_contain_text("2 muted.")

        # Silence queue_lag from the silences page: preview first, then create.
        page.get_by_role("link", name="Silences", exact=True).first.click()
        expect(page).to_have_url(base + "/silences")
        expect(page.get_by_role("heading", name="Active (0)")).to_be_visible()
        page.get_by_role("link", name="New silence").click()
        page.get_by_label("Matchers, one per line").fill('alertname="queue_lag"\nqueue="emails"')
        page.get_by_label("Ends: a duration from the start, or a time").fill("2h")
        page.get_by_label("Comment: why, and until what").fill("moving the emails queue")
        page.get_by_role("button", name="Preview").click()
        expect(page.get_by_role("status")).to_have_text("Preview only: nothing was written.")
        preview = page.locator(".card").first
        expect(preview).to_contain_text("it would mute 1 active alert:")
        expect(preview.get_by_role("link", name="queue_lag")).to_be_visible()
        expect(preview.get_by_role("link", name="dead_letters")).to_have_count(0)
        expect(page.get_by_label("Matchers, one per line")).to_have_value(
            'alertname="queue_lag"\nqueue="emails"')
        shoot(page, "silence-preview")
        other = page.context.new_page()  # the preview wrote nothing
        other.goto(base + "/silences")
        expect(other.get_by_role("heading", name="Active (0)")).to_be_visible()
        other.close()

        page.get_by_role("button", name="Create").click()
        expect(page).to_have_url(re.compile(re.escape(base) + r"/silences\b"))
        expect(page.get_by_role("status")).to_have_text(re.compile(r"^Silence \S+ created\.$"))
        expect(page.get_by_role("heading", name="Active (1)")).to_be_visible()
        card = page.locator(".card").filter(has_text="moving the emails queue")
        expect(card).to_contain_text("By alice: moving the emails queue")
        expect(card.get_by_role("link", name="queue_lag")).to_be_visible()
        shoot(page, "silences")
        page.get_by_role("link", name="Alerts", exact=True).click()
        expect(muted_cell(page, "queue_lag")).to_contain_text(
            "silence by alice: moving the emails queue until")
        expect(muted_cell(page, "slow_reports")).to_have_text("—")
        expect(page.locator("main > p").first).to_contain_text("3 muted.")
        shoot(page, "alerts")
        phone = browser.new_context(viewport=PHONE, storage_state=page.context.storage_state())
        try:
            small = phone.new_page()
            small.goto(base + "/alerts")
            expect(row(small, "queue_lag")).to_contain_text("silence by alice")
            shoot(small, "alerts-phone")
        finally:
            phone.close()

        # Expire it: it moves to ended, and queue_lag is no longer muted.
        page.get_by_role("link", name="Silences", exact=True).first.click()
        page.locator(".card").filter(has_text="moving the emails queue").get_by_role(
            "button", name="Expire").click()
        expect(page.get_by_role("status")).to_have_text(re.compile(r"^Silence \S+ expired\.$"))
        expect(page.get_by_role("heading", name="Active (0)")).to_be_visible()
        expect(page.get_by_role("heading", name=re.compile(r"^Ended .*\(1\)$"))).to_be_visible()
        expect(page.locator(".card").filter(has_text="moving the emails queue")).to_contain_text(
            "ended")
        page.get_by_role("link", name="Alerts", exact=True).click()
        expect(muted_cell(page, "queue_lag")).to_have_text("—")
        expect(muted_cell(page, "dead_letters")).to_have_text("acked by alice")
        expect(page.locator("main > p").first).to_contain_text("2 muted.")

        # The alert's own page still tells who acked it, and the heartbeats page works.
        page.goto(alert_url)
        expect(page.get_by_role("row", name=re.compile("^Acknowledged"))).to_contain_text(
            "by alice")
        page.get_by_role("link", name="Heartbeats", exact=True).first.click()
        expect(page.get_by_role("heading", name="Heartbeats")).to_be_visible()
        expect(page.locator("#hb-etl_orders")).to_contain_text("up")
        expect(page.locator("#hb-nightly_backup")).to_contain_text("new")
        shoot(page, "heartbeats")
