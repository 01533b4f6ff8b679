"""``/alerts`` and ``/alerts/<fp>``: what is active, what mutes it, one alert's story, and
acting on it as a signed-in user, over real HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Matcher, Observation, Severity, Status
from alert_jobs.store import Timeline, schema, utcnow
from tests.http.pages_support import csrf_of, serve, signed_in

RULES = """
defaults: {receivers: [console], dagster_url: "http://dagster.example:3000"}
inhibit_rules:
  - source_matchers: ["alertname=db_down"]
    target_matchers: ["alertname=orders_low"]
    equal: [cluster]
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite://
      query: SELECT 1
      expect: {max: 0}
      annotations:
        runbook_url: https://runbooks.example.com/dead-letters
        dashboard_url: https://grafana.example.com/d/dl
"""


def fire(timeline: Timeline, rule: str, labels: dict[str, str], *, value: float = 7.0,
         severity: Severity = Severity.WARNING, for_: timedelta = timedelta(0),
         run_id: str | None = "run-1234abcd", ago: timedelta = timedelta(minutes=20)) -> str:
    obs = Observation(rule, Status.ALERT, labels, value, summary=f"{rule} is bad",
                      expected="to be 0", severity=severity)
    policy = RulePolicy(rule=rule, receivers=("console",), for_=for_)
    return timeline.alerts.process(obs, policy, now=utcnow() - ago,
                                   run_id=run_id).decision.record.fingerprint


def events(timeline: Timeline) -> list[tuple[str, str, str]]:
    t = schema.events
    with timeline.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t.c.kind, t.c.actor, t.c.source)
                                               .order_by(t.c.id))]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html,
                                                              flags=re.S)))


def test_the_list_groups_by_state_and_severity_and_says_what_mutes_what(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        tl = served.timeline
        dead = fire(tl, "dead_letters", {"team": "payments"}, severity=Severity.CRITICAL)
        fire(tl, "disk_full", {"host": "db1"})
        fire(tl, "latency", {"team": "search"}, for_=timedelta(hours=1))  # pending
        snoozed = fire(tl, "queue_depth", {"team": "ops"})
        tl.actions.snooze(snoozed, until=utcnow() + timedelta(hours=1), by="bob")
        fire(tl, "db_down", {"cluster": "eu"}, severity=Severity.CRITICAL)
        fire(tl, "orders_low", {"cluster": "eu"})
        tl.silences.add([Matcher("host", "=", "db1")], ends_at=utcnow() + timedelta(hours=2),
                        created_by="bob", comment="disk swap tonight")
        tl.rule_settings.set_disabled("queue_depth", True, by="bob")

        page = signed_in(served).get("/alerts")
        assert page.status_code == 200
        text = text_of(page.text)
        # sections in order: firing critical, firing warning, then pending
        order = [text.index(s) for s in ("critical firing (2)", "warning firing (3)",
                                         "warning pending (1)")]
        assert order == sorted(order)
        assert "6 active: 5 firing, 0 recovering, 1 pending; 3 muted." in text
        assert re.search(r"dead_letters .*team=payments.* 20m(\d+s)? ago 7 to be 0", text)
        assert "silence by bob: disk swap tonight until" in text
        assert "rule disabled" in text and "snoozed until" in text
        assert "inhibited by firing db_down {cluster=eu}" in text
        assert f'href="/alerts/{dead}"' in page.text
        assert 'href="https://runbooks.example.com/dead-letters"' in page.text
        assert 'href="https://grafana.example.com/d/dl"' in page.text
        assert 'href="http://dagster.example:3000/runs/run-1234abcd"' in page.text


def test_an_empty_list_says_so(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = signed_in(served)
        assert "Nothing is firing" in client.get("/alerts").text
        fire(served.timeline, "disk_full", {"host": "db1"})
        assert "Nothing is firing" not in client.get("/alerts").text  # positive control


def test_one_alerts_page_tells_its_whole_story(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        fp = fire(served.timeline, "dead_letters", {"team": "payments"})
        served.timeline.actions.ack(fp, by="bob", note="looking", source="cli")
        page = signed_in(served).get(f"/alerts/{fp}")
        assert page.status_code == 200
        text = text_of(page.text)
        assert "Value 7; expected to be 0" in text
        assert "Acknowledged by bob at" in text and "looking" in text
        # every event, newest first, with actor, source and its run link
        assert re.search(r"acked acked by bob: looking bob cli", text)
        assert re.search(r"firing dead_letters is bad system engine run-1234", text)
        assert 'href="http://dagster.example:3000/runs/run-1234abcd"' in page.text
        assert ('href="/silences/new?matcher=alertname%3D%22dead_letters%22&amp;'
                'matcher=team%3D%22payments%22"') in page.text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ack_snooze_unack_and_outcome_are_recorded_with_the_user(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'p.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    with serve(tmp_path, db_url=url) as served:
        fp = fire(served.timeline, "dead_letters", {"team": "payments"})
        client = signed_in(served)
        token = csrf_of(client.get(f"/alerts/{fp}").text)

        acked = client.post(f"/alerts/{fp}/ack", data={"csrf": token, "note": "on it",
                                                        "outcome": "actionable"})
        assert acked.status_code == 303 and acked.headers["location"] == f"/alerts/{fp}?done=ack"
        record = served.timeline.alerts.get(fp)
        assert record is not None and record.acked_by == "alice"
        assert record.ack_outcome == "actionable"
        assert "Acknowledged." in client.get(acked.headers["location"]).text

        twice = client.post(f"/alerts/{fp}/ack", data={"csrf": token})
        assert twice.status_code == 409 and "alice" in twice.text

        client.post(f"/alerts/{fp}/snooze", data={"csrf": token, "duration": "6h"})
        record = served.timeline.alerts.get(fp)
        assert record is not None and record.snoozed_until is not None
        left = record.snoozed_until - utcnow()
        assert timedelta(hours=5, minutes=59) < left <= timedelta(hours=6)
        client.post(f"/alerts/{fp}/unack", data={"csrf": token})
        client.post(f"/alerts/{fp}/outcome", data={"csrf": token, "outcome": "noise"})
        record = served.timeline.alerts.get(fp)
        assert record is not None and record.acked_at is None and record.ack_outcome == "noise"
        mine = [e for e in events(served.timeline) if e[1] == "alice"]
        assert [e[0] for e in mine] == ["acked", "snoozed", "unacked", "outcome"]
        assert {e[2] for e in mine} == {"page"}


def test_bad_actions_are_clear_4xx_and_change_nothing(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        fp = fire(served.timeline, "dead_letters", {"team": "payments"})
        client = signed_in(served)
        token = csrf_of(client.get(f"/alerts/{fp}").text)
        before = events(served.timeline)
        cases = [
            (f"/alerts/{fp}/ack", {"note": "x"}, 403, "security token"),  # no token
            (f"/alerts/{fp}/ack", {"csrf": "forged" * 8}, 403, "security token"),
            (f"/alerts/{fp}/snooze", {"csrf": token, "duration": "soon"}, 400, "30m, 1h"),
            (f"/alerts/{fp}/snooze", {"csrf": token, "duration": "90d"}, 400, "at most 30d"),
            (f"/alerts/{fp}/ack", {"csrf": token, "outcome": "meh"}, 400, "not an outcome"),
            (f"/alerts/{fp}/outcome", {"csrf": token, "outcome": ""}, 400, "not an outcome"),
            (f"/alerts/{fp}/delete", {"csrf": token}, 404, "not something this page can do"),
            ("/alerts/0000deadbeef/ack", {"csrf": token}, 404, "No alert has the fingerprint"),
        ]
        for path, form, status, says in cases:
            answer = client.post(path, data=form)
            assert (answer.status_code, says in answer.text) == (status, True), (path, form)
        too_big = client.post(f"/alerts/{fp}/ack", data={"csrf": token, "note": "x" * 70_000})
        assert too_big.status_code == 413
        assert events(served.timeline) == before
        unknown = client.get("/alerts/0000deadbeef")
        assert unknown.status_code == 404 and "No alert has the fingerprint" in unknown.text
        # positive control: the same token acts
        assert client.post(f"/alerts/{fp}/ack", data={"csrf": token}).status_code == 303
        assert len(events(served.timeline)) > len(before)


def test_another_users_token_does_not_work(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        fp = fire(served.timeline, "dead_letters", {"team": "payments"})
        alice, bob = signed_in(served), signed_in(served, "bob")
        alices_token = csrf_of(alice.get(f"/alerts/{fp}").text)
        assert bob.post(f"/alerts/{fp}/ack", data={"csrf": alices_token}).status_code == 403
        assert served.timeline.alerts.get(fp).acked_at is None  # type: ignore[union-attr]
        assert alice.post(f"/alerts/{fp}/ack", data={"csrf": alices_token}).status_code == 303


def test_a_database_that_is_down_is_a_503_not_a_crash(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = signed_in(served)
        with served.timeline.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE alert_alerts"))
        answer = client.get("/alerts")
        assert answer.status_code == 503 and "did not answer" in answer.text
        assert isinstance(answer, httpx.Response)


def test_the_filter_narrows_the_list_and_a_bad_one_says_why(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        fire(served.timeline, "dead_letters", {"team": "payments"})
        fire(served.timeline, "disk_full", {"team": "infra"}, severity=Severity.CRITICAL)
        client = signed_in(served)
        page = client.get("/alerts", params={"filter": '{team="payments"}'})
        assert "<b>dead_letters</b>" in page.text and "<b>disk_full</b>" not in page.text
        assert "1 of 2 active alerts match" in text_of(page.text)
        both = client.get("/alerts", params={"filter": 'severity=~"critical|warning"'})
        assert "<b>dead_letters</b>" in both.text and "<b>disk_full</b>" in both.text
        none = client.get("/alerts", params={"filter": "team=nobody"})
        assert "No active alert matches the filter." in none.text
        bad = client.get("/alerts", params={"filter": "team~payments"})
        assert bad.status_code == 400 and "cannot parse matcher" in bad.text
        regex = client.get("/alerts", params={"filter": "team=~(pay"})
        assert regex.status_code == 400 and "bad regex" in regex.text


def test_a_long_list_shows_the_worst_first_and_offers_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_jobs.http.pages import alerts

    monkeypatch.setattr(alerts, "SHOWN", 3)
    with serve(tmp_path) as served:
        for i in range(4):
            fire(served.timeline, f"warn_{i}", {})
        fire(served.timeline, "crit", {}, severity=Severity.CRITICAL)
        client = signed_in(served)
        page = client.get("/alerts")
        assert page.text.count('<td><a href="/alerts/') == 3
        assert "<b>crit</b>" in page.text  # the critical one first
        text = text_of(page.text)
        assert "Showing the first 3 of 5" in text and "warning firing (4, 2 shown)" in text
        assert 'href="/alerts?all=1"' in page.text
        every = client.get("/alerts?all=1")
        assert every.text.count('<td><a href="/alerts/') == 5
