"""``GET /quality/review[/<YYYY-MM>]`` served by ``alert-jobs serve`` over real HTTP: the
monthly review of what is in the timeline now (the page the monthly asset writes), for
signed-in users only; bad months and a database that is down answer clearly; ``/metrics``
stays public."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.core.months import current_month
from alert_jobs.families.quality.report import to_html
from alert_jobs.families.quality.review import monthly_review
from alert_jobs.http.app import create_app
from alert_jobs.store import Timeline
from tests.conftest import served_app
from tests.http.pages_support import serve, settings, signed_in

RULES = """
defaults: {receivers: [console]}
receivers: [{name: console, type: console}]
checks:
  heartbeat:
    - {name: orders_late, slug: orders-late, period: 1d, grace: 1h}
"""
RULE = "orders_late"
HOSTILE = "<b>x</b>"  # a rule name from elsewhere (pushed by Prometheus): escaped


def _fire_ack_resolve(timeline: Timeline, start: datetime) -> None:
    """One episode: fired, acked as actionable a minute later, resolved after five."""
    policy = RulePolicy(rule=RULE, severity=Severity.CRITICAL)
    fired = timeline.alerts.process(Observation(RULE, Status.ALERT, {}, 1.0, summary="late"),
                                    policy, now=start)
    fp = fired.decision.record.fingerprint
    timeline.actions.ack(fp, by="alice", outcome="actionable", now=start + timedelta(minutes=1))
    timeline.alerts.process(Observation(RULE, Status.OK, {}, 0.0, summary="fine"), policy,
                            now=start + timedelta(minutes=5))
    timeline.alerts.process(Observation(HOSTILE, Status.ALERT, {}, 1.0), RulePolicy(HOSTILE),
                            now=start)


def test_the_review_is_served_to_signed_in_users(tmp_path: Path) -> None:
    rules = parse_rules(RULES)
    now = datetime.now(UTC)
    month = current_month(now)
    with serve(tmp_path, rules=rules) as served:
        browser = signed_in(served)
        empty = browser.get("/quality/review")
        assert empty.status_code == 200 and empty.headers["content-type"].startswith(
            "text/html")
        assert f"Alert review {month}" in empty.text
        assert "No alert fired this month." in empty.text

        # an alert fires, is acked and resolves: the next request shows its row
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        _fire_ack_resolve(served.timeline, max(month_start, now - timedelta(minutes=10)))
        current = browser.get("/quality/review")
        assert current.status_code == 200
        html = current.text
        assert "No alert fired this month." not in html
        row = html.split("<tbody>")[1].split("</tr>")[0]
        assert "<td>orders_late</td><td>1</td><td>1</td><td>100% (1)</td>" in row
        assert "&lt;b&gt;x&lt;/b&gt;" in html and HOSTILE not in html  # escaped
        assert "orders_late: never drilled" in html  # the fire-drill line
        # the very page the monthly asset writes
        assert html == to_html(monthly_review(rules, served.timeline, month))

        # a month by name: the same month, and an empty one
        assert browser.get(f"/quality/review/{month}").text == html
        old = browser.get("/quality/review/2001-01")
        assert old.status_code == 200 and "Alert review 2001-01" in old.text
        assert "No alert fired this month." in old.text

        bad = browser.get("/quality/review/October")
        assert bad.status_code == 400
        assert "expected a month like 2026-10, got 'October'" in bad.text


def test_signed_out_is_sent_to_sign_in_but_metrics_stay_public(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        stranger = served.client()
        for path in ("/quality/review", "/quality/review/2026-10"):
            answer = stranger.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=%2Fquality%2Freview")
            assert "Alert review" not in answer.text
        metrics = stranger.get("/metrics")
        assert metrics.status_code == 200 and "alerts_total" in metrics.text
        assert signed_in(served).get("/quality/review").status_code == 200  # the control


def test_a_database_that_is_down_is_a_503(tmp_path: Path) -> None:
    """Signed in through the proxy header, so the route itself meets the dead database."""
    down = Timeline(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'alerts.db'}")
    up = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    up.ensure_schema()
    proxy = settings(user_header="X-Forwarded-User")
    try:
        for timeline, status in ((down, 503), (up, 200)):  # the second is the control
            app = create_app(lambda t=timeline: t, lambda: parse_rules(RULES), auth=proxy)
            with served_app(app) as base:
                answer = httpx.get(f"{base}/quality/review/2026-10",
                                   headers={"X-Forwarded-User": "carol"}, timeout=60)
            assert answer.status_code == status, answer.text
            if status == 503:
                assert "timeline unavailable" in answer.text
            else:
                assert "Alert review 2026-10" in answer.text
    finally:
        down.dispose()
        up.dispose()
