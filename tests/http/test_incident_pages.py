"""The incident pages over real HTTP, signed in: the alert page's Incident section,
``/incidents``, ``/incidents/new``, ``/incidents/<id>`` and its markdown export. Every
answer is written with the user as actor and source ``page``; a missing CSRF token is
a 403 and a bad answer a 400, and neither writes anything."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.store import Timeline, utcnow
from tests.http.pages_support import csrf_of, serve, signed_in

RULES = """
defaults: {receivers: [console]}
incidents:
  verified_methods: [dashboard, logs]
  verified_free_text: false
"""


def fire(timeline: Timeline, labels: dict[str, str] | None = None) -> str:
    obs = Observation("dead_letters", Status.ALERT, labels or {"team": "payments"}, 7.0,
                      summary="dead_letters is bad")
    return timeline.alerts.process(obs, RulePolicy(rule="dead_letters", receivers=("console",)),
                                   now=utcnow() - timedelta(minutes=20)
                                   ).decision.record.fingerprint


def written(timeline: Timeline) -> tuple[int, int]:
    return (len(timeline.incidents.list()),
            len(timeline.events.list(kinds=["incident"])))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(
        r"<style>.*?</style>", "", page, flags=re.S))))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_alert_page_records_the_incident_as_the_user(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'p.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    with serve(tmp_path, rules=RULES, db_url=url) as served:
        tl = served.timeline
        fp = fire(tl)
        client = signed_in(served)
        page = client.get(f"/alerts/{fp}")
        assert page.status_code == 200
        assert "Nobody has described episode 1 yet" in page.text
        assert f'action="/alerts/{fp}/incident"' in page.text
        assert 'name="episode" value="1"' in page.text and 'name="by"' not in page.text
        assert 'href="/incidents"' in page.text  # the nav link
        answered = client.post(f"/alerts/{fp}/incident", data={
            "csrf": csrf_of(page.text), "episode": "1", "verified": "logs",
            "false_positive": "no", "mitigation": "restarted <the> consumer",
            "follow_ups": "https://tickets.example.com/OPS-12\nOPS-13",
            "runbook_sufficient": "no", "runbook_missing": "which consumer"})
        assert answered.status_code == 303, answered.text
        assert answered.headers["location"] == f"/alerts/{fp}?done=incident#incident"
        record = tl.incidents.for_episode(fp, 1)
        assert record is not None
        assert (record.verified, record.false_positive, record.mitigation, record.follow_ups,
                record.runbook_sufficient, record.runbook_missing, record.actors) == (
            "logs", False, "restarted <the> consumer",
            ["https://tickets.example.com/OPS-12", "OPS-13"], False, "which consumer",
            ["alice"])
        events = tl.events.list(kinds=["incident"])
        assert len(events) == 6
        assert {(e["actor"], e["source"]) for e in events} == {("alice", "page")}
        after = client.get(f"/alerts/{fp}?done=incident")
        text = text_of(after.text)
        assert "Incident record saved." in text
        assert "restarted &lt;the&gt; consumer" in after.text  # escaped
        assert 'href="https://tickets.example.com/OPS-12"' in after.text
        assert "People involved alice" in text
        assert f'href="/incidents/{record.id}.md"' in after.text
        assert '<option value="logs" selected>' in after.text  # the form, prefilled


def test_a_missing_token_or_a_bad_answer_writes_nothing(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        tl = served.timeline
        fp = fire(tl)
        client = signed_in(served)
        csrf = csrf_of(client.get(f"/alerts/{fp}").text)
        good = {"episode": "1", "verified": "logs"}
        forged = client.post(f"/alerts/{fp}/incident", data=good)
        assert forged.status_code == 403
        assert written(tl) == (0, 0)
        for bad, why in (({"false_positive": "maybe"}, "with yes, no or unknown"),
                         ({"verified": "", "verified_other": "gut feeling"},
                          "verified must be one of: dashboard, logs"),
                         ({"episode": "2"}, "has no episode"),
                         ({"episode": "x"}, "has no episode"),
                         ({"verified": "", "follow_ups": "two words"}, "not one link"),
                         ({"verified": ""}, "Nothing was answered")):
            refused = client.post(f"/alerts/{fp}/incident", data={**good, "csrf": csrf, **bad})
            assert refused.status_code == 400, (bad, refused.text)
            assert why in refused.text and "Nothing changed." in refused.text
        assert written(tl) == (0, 0)
        unknown = client.post("/alerts/0000000000000000/incident", data={**good, "csrf": csrf})
        assert unknown.status_code == 404
        ok = client.post(f"/alerts/{fp}/incident", data={**good, "csrf": csrf})  # control
        assert ok.status_code == 303 and written(tl) == (1, 1)


def test_an_incident_without_an_alert_from_form_to_markdown(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        tl = served.timeline
        client = signed_in(served)
        form = client.get("/incidents/new")
        assert form.status_code == 200 and 'action="/incidents"' in form.text
        csrf = csrf_of(form.text)
        start = (utcnow() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        draft = {"csrf": csrf, "title": "Checkout 500s for EU users", "start": start,
                 "detected_by": "customer support tickets",
                 "labels": "service=checkout, team=payments"}
        bad = client.post("/incidents", data={**draft, "start": "yesterday",
                                              "labels": "service", "detected_by": ""})
        assert bad.status_code == 400
        text = text_of(bad.text)
        assert "The start 'yesterday' is not a time" in text
        assert "is not name=value" in text and "Say how it was detected" in text
        assert 'value="Checkout 500s for EU users"' in bad.text  # the form as typed
        assert written(tl) == (0, 0)
        assert client.post("/incidents", data={k: v for k, v in draft.items()
                                               if k != "csrf"}).status_code == 403
        assert written(tl) == (0, 0)
        created = client.post("/incidents", data=draft)
        assert created.status_code == 303, created.text
        location = created.headers["location"]
        assert location == "/incidents/1?done=added"
        got = tl.incidents.get(1)
        assert got is not None and got.labels == {"service": "checkout", "team": "payments"}
        assert got.created_by == "alice" and got.detected_by == "customer support tickets"
        view = client.get(location)
        assert view.status_code == 200 and "Incident recorded." in view.text
        assert 'action="/incidents/1"' in view.text
        saved = client.post("/incidents/1", data={"csrf": csrf, "mitigation": "rolled back",
                                                  "follow_ups": "OPS-9"})
        assert saved.status_code == 303
        assert tl.incidents.get(1).mitigation == "rolled back"  # type: ignore[union-attr]
        refused = client.post("/incidents/1", data={"csrf": csrf, "runbook_sufficient": "?"})
        assert refused.status_code == 400
        fp = fire(tl)
        client.post(f"/alerts/{fp}/incident", data={"csrf": csrf, "episode": "1",
                                                    "verified": "dashboard"})
        listing = text_of(client.get("/incidents").text)
        assert "Caught by an alert (1)" in listing and "Without an alert (1)" in listing
        assert "Checkout 500s for EU users customer support tickets" in listing
        assert "No alert episode described this month." in text_of(
            client.get("/incidents?month=2001-01").text)
        assert client.get("/incidents?month=nope").status_code == 400
        md = client.get("/incidents/1.md")
        assert md.status_code == 200
        assert md.headers["content-type"].startswith("text/markdown")
        assert 'filename="incident-1.md"' in md.headers["content-disposition"]
        assert md.text.startswith("# Postmortem: Checkout 500s for EU users")
        assert "- `OPS-9`" in md.text and "| alice | incident |" in md.text
        for missing in ("/incidents/99", "/incidents/99.md", "/incidents/99999999999999"):
            assert client.get(missing).status_code == 404
        assert client.post("/incidents/99", data={"csrf": csrf,
                                                  "mitigation": "x"}).status_code == 404


def test_the_incident_pages_need_a_signed_in_user(tmp_path: Path) -> None:
    with serve(tmp_path, rules=RULES) as served:
        anonymous = served.client()
        for path in ("/incidents", "/incidents/new", "/incidents/1", "/incidents/1.md"):
            response = anonymous.get(path)
            assert response.status_code in (303, 401), (path, response.status_code)
        posted = anonymous.post("/incidents", data={"title": "x"})
        assert posted.status_code in (303, 401, 403)
        assert written(served.timeline) == (0, 0)
        assert signed_in(served).get("/incidents").status_code == 200  # positive control


def test_the_alert_page_offers_disable_and_edit_for_its_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disable: the same signed link a message carries (it opens the confirm form);
    edit: the rules file's editor URL at the rule's line. Without a link secret and
    template, the page says the commands instead (the control)."""
    monkeypatch.setenv("ALERT_JOBS_LINK_SECRET", "s" * 32)
    rules = ("defaults:\n  receivers: [console]\n  action_base_url: http://alerts.example\n"
             "  edit_url: https://git.example/edit/main/{file}#L{line}\n"
             "checks:\n  sql_metric:\n    - name: dead_letters\n"
             "      database: sqlite:///x.db\n      query: SELECT 1\n"
             "      expect: {max: 0}\n")
    with serve(tmp_path, rules=rules) as served:
        fp = fire(served.timeline)
        page = signed_in(served).get(f"/alerts/{fp}").text
        disable = re.search(r'href="(http://alerts\.example/a/[^"]+)">Disable this rule', page)
        assert disable, text_of(page)
        assert 'href="https://git.example/edit/main/alerts.yaml#L7"' in page  # its name: line
        # The link is a real disable link: its form asks for how long.
        form = served.client().get(disable.group(1).replace("http://alerts.example", ""))
        assert form.status_code == 200 and "until" in form.text.lower()
    monkeypatch.delenv("ALERT_JOBS_LINK_SECRET")
    (tmp_path / "plain").mkdir()
    with serve(tmp_path / "plain", rules=RULES) as served:
        fp = fire(served.timeline)
        shown = text_of(signed_in(served).get(f"/alerts/{fp}").text)
        assert "alert-jobs disable dead_letters --for 1d --note WHY" in shown
        assert "edit: alerts.yaml: rule dead_letters" in shown
