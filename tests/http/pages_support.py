"""Shared by the responder-page tests: accounts, a served app, signing in as a browser."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.app import create_app
from alert_jobs.http.auth import AuthSettings
from alert_jobs.http.auth.passwords import hash_password
from alert_jobs.store import Timeline
from tests.conftest import served_app

PASSWORD = "correct horse battery staple"
#: Cheap scrypt parameters: tests sign in often; the format and the check are the same.
HASHES = {name: hash_password(PASSWORD, n=2**10) for name in ("alice", "bob")}
RULES = """
defaults: {receivers: [console], dagster_url: "http://dagster.example:3000"}
"""


def settings(**overrides: object) -> AuthSettings:
    return AuthSettings(**{"accounts": dict(HASHES), **overrides})  # type: ignore[arg-type]


@dataclass
class Served:
    base: str
    timeline: Timeline

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, follow_redirects=False)


@contextlib.contextmanager
def serve(tmp_path: Path, *, rules: str | RulesFile = RULES, db_url: str | None = None,
          auth: AuthSettings | None = None, api_auth: ApiAuth | None = None
          ) -> Iterator[Served]:
    """``alert-jobs serve``'s app on a free port, over a new timeline (the pages' accounts
    by default; the Alertmanager API's callers from ``api_auth``)."""
    timeline = Timeline(db_url or f"sqlite:///{tmp_path / 'pages.db'}")
    timeline.ensure_schema()
    parsed = parse_rules(rules) if isinstance(rules, str) else rules
    app = create_app(lambda: timeline, lambda: parsed, auth=auth or settings(),
                     api_auth=api_auth)
    try:
        with served_app(app) as base:
            yield Served(base, timeline)
    finally:
        timeline.dispose()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: httpx.Client, user: str = "alice", password: str = PASSWORD) -> httpx.Response:
    """Sign in as a browser does: GET the form (its CSRF cookie), POST it."""
    form = client.get("/login")
    assert form.status_code == 200, form.text
    return client.post("/login", data={"username": user, "password": password,
                                       "csrf": csrf_of(form.text), "next": "/alerts"})


def signed_in(served: Served, user: str = "alice") -> httpx.Client:
    client = served.client()
    response = sign_in(client, user)
    assert response.status_code == 303, response.text
    return client
