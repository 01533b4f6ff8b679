"""The responder pages as a person uses them: a real Chromium against ``alert-jobs
serve``'s app on 127.0.0.1, clicking the buttons and reading what each page then shows.

The pages have no JavaScript, so what is tested here is what the HTML tests cannot see:
that the forms, redirects and cookies work together in a browser (SameSite, the CSRF
fields a browser really sends, where each button takes you).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.http import pages_support
from tests.http.pages_support import serve

expect = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -r requirements.lock)"
).expect


def sign_in(page: Any, user: str, password: str) -> None:
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


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
        if page.locator("header").count() == 0:  # removed when the pages are merged
            pytest.skip("the alerts page is not on this branch yet (signed in: /alerts 404)")
        expect(page.locator("header .who")).to_contain_text("alice")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(served.base + "/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.goto(served.base + "/alerts")
        expect(page).to_have_url(served.base + "/login?next=%2Falerts")
