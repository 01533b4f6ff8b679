"""Shared by the external family's tests: the family installed, the app served with an
API token, a webhook receiver as the only receiver, and pushes as Prometheus sends them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.families.external import FAMILY
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.app import create_app
from alert_jobs.store import Timeline
from tests.conftest import HttpReceiver, served_app
from tests.http.pages_support import settings

TOKEN = "prometheus-token-0123456789abcdef"
CALLER = "prometheus"


def rules_text(receiver: HttpReceiver, extra: str = "") -> str:
    return f"""
receivers:
  - {{name: hook, type: webhook, url: '{receiver.url}', timeout: 5s}}
defaults: {{receivers: [hook], group_wait: 0s, group_interval: 0s, repeat_interval: 4h}}
{extra}
"""


def parse(text: str) -> RulesFile:
    from alert_jobs.config import added_family

    with added_family(FAMILY):
        return parse_rules(text)


@dataclass
class Served:
    base: str
    timeline: Timeline
    rules: RulesFile

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, timeout=30, headers=headers)

    def push(self, alerts: Any, token: str | None = TOKEN) -> httpx.Response:
        with self.client(token) as client:
            return client.post("/api/v2/alerts", json=alerts)


@contextlib.contextmanager
def serve(tmp_path: Path, rules: RulesFile, *, db_url: str | None = None) -> Iterator[Served]:
    """``alert-jobs serve``'s app with an API token (caller "prometheus"), on a free port."""
    timeline = Timeline(db_url or f"sqlite:///{tmp_path / 'external.db'}")
    timeline.ensure_schema()
    app = create_app(lambda: timeline, lambda: rules, auth=settings(),
                     api_auth=ApiAuth(tokens={TOKEN: CALLER}))
    try:
        with served_app(app) as base:
            yield Served(base, timeline, rules)
    finally:
        timeline.dispose()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def alert(name: str = "HighErrorRate", *, ends: datetime | None = None,
          starts: datetime | None = None, severity: str | None = "critical",
          **labels: str) -> dict[str, Any]:
    """One postableAlert as Prometheus sends it."""
    body: dict[str, Any] = {
        "labels": {"alertname": name, **({"severity": severity} if severity else {}),
                   "job": "api", **labels},
        "annotations": {"summary": f"{name}: 5% of requests fail",
                        "description": "The API answers 5xx to 5% of requests.",
                        "runbook_url": "https://runbooks.example.com/errors"},
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=errors",
    }
    if starts is not None:
        body["startsAt"] = iso(starts)
    if ends is not None:
        body["endsAt"] = iso(ends)
    return body


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def messages(receiver: HttpReceiver) -> list[dict[str, Any]]:
    """The webhook bodies the receiver got (Alertmanager's webhook v4)."""
    with receiver.lock:
        return [r.json() for r in receiver.requests]
