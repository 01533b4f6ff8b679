"""``GET /slo/budget[/<month>]`` served over real HTTP: the report of what is in the
timeline now, escaped; bad months and a database that is down answer clearly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.applications import Starlette

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.http import PATH, report_routes
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.store import Timeline
from tests.conftest import served_app
from tests.http.pages_support import settings, sign_in

RULES = """
defaults: {receivers: [console]}
receivers: [{name: console, type: console}]
checks:
  slo:
    - name: payments
      service: "Pay <ments>"
      objective: 99.9
      sli: {sql: {database: "sqlite://", query: "SELECT 1 AS good, 1 AS total"}}
"""


def _app(timeline: Timeline) -> Starlette:
    rules = parse_rules(RULES)
    return Starlette(routes=report_routes(lambda: timeline, lambda: rules))


def test_the_report_route_shows_the_timeline_now(db_url: str) -> None:
    timeline = Timeline(db_url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    month = now.strftime("%Y-%m")
    with served_app(_app(timeline)) as base:
        empty = httpx.get(f"{base}{PATH}/{month}", timeout=30)
        assert empty.status_code == 200 and empty.headers["content-type"].startswith(
            "text/html")
        assert "Pay &lt;ments&gt;" in empty.text and "<ments>" not in empty.text
        assert "no events" in empty.text and "No alerts this month." in empty.text
        # Then events and a page land in the timeline: the next request shows them.
        start = now.replace(day=1, hour=0, minute=0)
        SloBucketStore(timeline).append("payments", [
            Bucket(start, start.replace(minute=1), 990.0, 1000.0)])
        policy = RulePolicy(rule="payments", severity=Severity.CRITICAL)
        timeline.alerts.process(Observation("payments", Status.ALERT, {}, 10.0), policy,
                                now=start.replace(minute=2))
        current = httpx.get(f"{base}{PATH}", timeout=30)  # the current month
        assert current.status_code == 200
        assert "99.000 %" in current.text  # SLI: 990 of 1,000
        assert "1000.0 %" in current.text  # 10 bad of a 1-event budget
        assert "No alerts this month." not in current.text and "critical" in current.text
        bad = httpx.get(f"{base}{PATH}/October", timeout=30)
        assert bad.status_code == 400 and "expected a month like 2026-10" in bad.text


def test_a_database_that_is_down_is_a_503(tmp_path: Path) -> None:
    def broken() -> Timeline:
        raise RuntimeError("connection refused")

    rules = parse_rules(RULES)
    app = Starlette(routes=report_routes(broken, lambda: rules))
    with served_app(app) as base:
        answer = httpx.get(f"{base}{PATH}/2026-10", timeout=30)
    assert answer.status_code == 503 and "timeline unavailable" in answer.text


def test_alert_jobs_serve_answers_the_route(sqlite_url: str) -> None:
    """The family's ``http_routes`` hook puts the report into ``alert-jobs serve``."""
    from alert_jobs.http.app import create_app

    timeline = Timeline(sqlite_url)
    rules = parse_rules(RULES)
    with served_app(create_app(lambda: timeline, lambda: rules, auth=settings())) as base:
        signed_out = httpx.get(f"{base}{PATH}/2026-10", timeout=30)
        assert signed_out.status_code == 303  # the report is for signed-in users
        assert signed_out.headers["location"].startswith("/login?next=")
        client = httpx.Client(base_url=base, timeout=30)
        assert sign_in(client).status_code == 303
        answer = client.get(f"{PATH}/2026-10")
        assert answer.status_code == 200 and "SLO error budgets 2026-10" in answer.text
        assert "Pay &lt;ments&gt;" in answer.text
