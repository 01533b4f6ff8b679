"""The demo story's responder part (README, Quick start): ``make run`` prints a sign-in
for ``demo``; on ``/alerts`` the firing ``dead_letters`` is listed with its runbook, and
acking it there records the demo user."""

from __future__ import annotations

import os
import re
from pathlib import Path

from alert_jobs.demo.launcher import DEMO_USER, demo_account
from alert_jobs.http.auth import AuthSettings
from tests.http.pages_support import csrf_of, serve
from tests.test_demo_story import MIN, T0, _demo

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_makes_one_account_and_keeps_its_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALERT_JOBS_USERS"}
    password = demo_account(env, tmp_path, ROOT)
    assert password and (tmp_path / "demo-password").stat().st_mode & 0o777 == 0o600
    settings = AuthSettings.from_env(env)
    assert list(settings.accounts) == [DEMO_USER]
    assert demo_account(dict(env, ALERT_JOBS_USERS=""), tmp_path, ROOT) == password  # kept
    assert demo_account({"ALERT_JOBS_USERS": env["ALERT_JOBS_USERS"]}, tmp_path, ROOT) is None


def test_dead_letters_are_on_the_alerts_page_and_acked_there_by_demo(tmp_path: Path) -> None:
    demo = _demo(tmp_path, live=True)
    assert demo.sql("dead_letters", T0 + MIN).state == "firing"
    env = {k: v for k, v in os.environ.items() if k != "ALERT_JOBS_USERS"}
    password = demo_account(env, tmp_path, ROOT)
    assert password is not None
    with serve(tmp_path, rules=demo.rules, db_url=demo.timeline.url,
               auth=AuthSettings.from_env(env)) as served:
        client = served.client()
        form = client.get("/login")
        assert client.post("/login", data={"username": "demo", "password": password,
                                           "csrf": csrf_of(form.text)}).status_code == 303
        page = client.get("/alerts")
        assert "<b>dead_letters</b>" in page.text
        assert 'href="https://runbooks.example.com/dead-letters"' in page.text
        fp = re.search(r'href="/alerts/([0-9a-f]+)"><b>dead_letters</b>', page.text)
        assert fp is not None
        alert = client.get(f"/alerts/{fp.group(1)}")
        done = client.post(f"/alerts/{fp.group(1)}/ack", data={"csrf": csrf_of(alert.text)})
        assert done.status_code == 303
        assert "by demo at" in client.get(f"/alerts/{fp.group(1)}").text
