"""The silences pages over real HTTP: list, create (with preview), expire, and refusals
that write nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Matcher, Observation, Severity, Status
from alert_jobs.core.muting import SilenceIndex, mutes
from alert_jobs.store import Timeline
from tests.http.pages_support import Served, csrf_of, serve, signed_in


def fire(timeline: Timeline, rule: str, labels: dict[str, str],
         severity: Severity = Severity.WARNING) -> str:
    """An active (firing) alert; its fingerprint."""
    obs = Observation(rule, Status.ALERT, labels, 1.0, summary=f"{rule} is bad")
    policy = RulePolicy(rule=rule, severity=severity, receivers=("console",))
    return timeline.alerts.process(obs, policy, now=datetime.now(UTC)).decision.record.fingerprint


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as s:
        yield s


def written(timeline: Timeline) -> tuple[Any, Any]:
    """Everything a silences page can write: the silences and the events tables."""
    return (timeline.silences.list(include_expired=True),
            timeline.events.list(limit=100_000))


def form(**changes: str) -> dict[str, str]:
    base = {"matchers": "alertname=dead_letters\nteam=payments", "starts": "", "ends": "2h",
            "comment": "rebuilding the payments queue", "action": "create"}
    return {**base, **changes}


def post(client: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    """POST a page's form with the page's CSRF token (read from ``/silences/new``)."""
    token = csrf_of(client.get("/silences/new").text)
    return client.post(path, data={**data, "csrf": token})


def section(html: str, heading: str) -> str:
    """The part of ``/silences`` under one heading: Active, Pending or Ended."""
    start = html.index(f"<h2>{heading}")
    end = html.find("<h2>", start + 1)
    return html[start:end if end != -1 else len(html)]


def test_create_from_the_form_lists_the_silence_with_the_alerts_it_mutes(
        tmp_path: Path, db_url: str) -> None:
    with serve(tmp_path, db_url=db_url) as served:
        payments = fire(served.timeline, "dead_letters", {"team": "payments"},
                        Severity.CRITICAL)
        search = fire(served.timeline, "dead_letters", {"team": "search"})
        client = signed_in(served)
        # The alert page links here with repeated matcher parameters: the form is prefilled.
        shown = client.get("/silences/new?matcher=alertname%3Ddead_letters"
                           "&matcher=team%3Dpayments")
        assert shown.status_code == 200
        assert ">alertname=dead_letters\nteam=payments</textarea>" in shown.text
        created = client.post("/silences", data={**form(), "csrf": csrf_of(shown.text)})
        assert created.status_code == 303, created.text
        [silence] = served.timeline.silences.list()
        assert created.headers["location"] == f"/silences?created={silence.id}"
        assert silence.matchers == (Matcher("alertname", "=", "dead_letters"),
                                    Matcher("team", "=", "payments"))
        assert silence.created_by == "alice"
        assert silence.comment == "rebuilding the payments queue"
        assert timedelta(minutes=119) < silence.ends_at - silence.starts_at <= timedelta(hours=2)
        [event] = served.timeline.events.list(kinds=["silenced"])
        assert (event["actor"], event["source"]) == ("alice", "page")

        page = client.get(created.headers["location"]).text
        assert f"Silence {silence.id} created." in page
        active = section(page, "Active")
        assert "<code>alertname=dead_letters</code>, <code>team=payments</code>" in active
        assert "rebuilding the payments queue" in active and "By alice" in active
        assert re.search(r"\(in (1h59m|2h)", active)
        assert f'href="/alerts/{payments}"' in active
        assert 'class="sev sev-critical"' in active
        assert f'href="/alerts/{search}"' not in page  # the other team's alert is not muted
        assert 'action="/silences/' in active and ">Expire</button>" in active
        assert "No silence starts later." in section(page, "Pending")


@pytest.mark.parametrize("offset", [None, 2], ids=["datetime-local", "iso-offset"])
def test_a_silence_that_starts_later_is_pending_and_mutes_nothing_yet(
        served: Served, offset: int | None) -> None:
    """The start as a ``datetime-local`` input sends it (UTC) or as ISO with an offset."""
    fp = fire(served.timeline, "dead_letters", {"team": "payments"})
    begin = (datetime.now(UTC) + timedelta(hours=3)).replace(second=0, microsecond=0)
    typed = (f"{begin:%Y-%m-%dT%H:%M}" if offset is None else
             f"{begin + timedelta(hours=offset):%Y-%m-%dT%H:%M}+{offset:02d}:00")
    client = signed_in(served)
    response = post(client, "/silences", form(starts=typed, ends="1h"))
    assert response.status_code == 303, response.text
    [silence] = served.timeline.silences.list()
    assert (silence.starts_at, silence.ends_at) == (begin, begin + timedelta(hours=1))

    page = client.get("/silences").text
    pending = section(page, "Pending")
    assert f"Starts {begin:%Y-%m-%d %H:%M} UTC" in pending
    assert re.search(r"\(in 2h5\d?m", pending)
    assert "Would mute these active alerts when it starts" in pending
    assert f'href="/alerts/{fp}"' in pending and ">Expire</button>" in pending
    assert "No silence is active." in section(page, "Active")
    # It mutes nothing now, and the alert once it has started (the positive control).
    record = served.timeline.alerts.get(fp)
    assert record is not None
    index = SilenceIndex(served.timeline.silences.list())
    assert mutes(record, datetime.now(UTC), index) == []
    [later] = mutes(record, begin + timedelta(minutes=1), index)
    assert (later.kind, later.silence_id) == ("silence", silence.id)


def test_an_end_time_is_taken_as_given(served: Served) -> None:
    end = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    client = signed_in(served)
    response = post(client, "/silences", form(ends=f"{end:%Y-%m-%dT%H:%M}"))
    assert response.status_code == 303, response.text
    [silence] = served.timeline.silences.list()
    assert silence.ends_at == end and silence.starts_at <= datetime.now(UTC)


def test_preview_lists_the_alerts_and_writes_nothing(served: Served) -> None:
    payments = fire(served.timeline, "dead_letters", {"team": "payments"})
    search = fire(served.timeline, "dead_letters", {"team": "search"})
    client = signed_in(served)
    before = written(served.timeline)
    response = post(client, "/silences", form(action="preview"))
    assert response.status_code == 200, response.text
    assert "Preview only: nothing was written." in response.text
    assert "it would mute\n1 active alert:" in response.text
    assert f'href="/alerts/{payments}"' in response.text
    assert f'href="/alerts/{search}"' not in response.text
    assert ">alertname=dead_letters\nteam=payments</textarea>" in response.text
    assert ">rebuilding the payments queue</textarea>" in response.text
    assert written(served.timeline) == before
    # The same form, created: it is the button, not the form, that wrote nothing.
    assert post(client, "/silences", form()).status_code == 303
    assert len(served.timeline.silences.list()) == 1


@pytest.mark.parametrize("state", ["Active", "Pending"])
def test_expire_moves_the_silence_to_ended_with_an_unsilenced_event(
        served: Served, state: str) -> None:
    """A pending silence too: it ends now, rather than waiting to start."""
    fp = fire(served.timeline, "dead_letters", {"team": "payments"})
    client = signed_in(served, "alice")
    later = datetime.now(UTC) + timedelta(hours=3)
    starts = f"{later:%Y-%m-%dT%H:%M}" if state == "Pending" else ""
    assert post(client, "/silences", form(starts=starts)).status_code == 303
    [silence] = served.timeline.silences.list()
    page = client.get("/silences").text
    expire_path = f"/silences/{silence.id}/expire"
    assert f'action="{expire_path}"' in section(page, state)
    assert served.timeline.events.list(kinds=["unsilenced"]) == []

    response = client.post(expire_path, data={"csrf": csrf_of(page)})
    assert response.status_code == 303
    assert response.headers["location"] == f"/silences?expired={silence.id}"
    [event] = served.timeline.events.list(kinds=["unsilenced"])
    assert (event["actor"], event["source"]) == ("alice", "page")
    assert served.timeline.silences.list() == []
    [ended] = served.timeline.silences.list(include_expired=True)
    assert ended.ends_at <= datetime.now(UTC)

    page = client.get(response.headers["location"]).text
    assert f"Silence {silence.id} expired." in page
    assert "No silence is active." in section(page, "Active")
    assert "No silence starts later." in section(page, "Pending")
    gone = section(page, "Ended")
    assert silence.id in gone and "just now" in gone
    assert ">Expire</button>" not in gone and f'href="/alerts/{fp}"' not in gone


def test_only_the_last_days_ended_silences_are_listed(served: Served) -> None:
    now = datetime.now(UTC)
    matchers = [Matcher("team", "=", "payments")]
    for hours, comment in ((2, "ended an hour ago"), (50, "ended two days ago")):
        served.timeline.silences.add(matchers, starts_at=now - timedelta(hours=hours),
                                     ends_at=now - timedelta(hours=hours - 1),
                                     created_by="bob", comment=comment,
                                     now=now - timedelta(hours=hours))
    ended = section(signed_in(served).get("/silences").text, "Ended")
    assert "ended an hour ago" in ended and re.search(r"\(1h(\d+s)? ago\)", ended)
    assert "ended two days ago" not in ended


GOOD = form()
FUTURE = (datetime.now(UTC) + timedelta(hours=5)).replace(second=0, microsecond=0)
BAD_INPUT = {
    "malformed matcher": (form(matchers="alertname=dead_letters\nteam payments"),
                          "Matcher line 2: cannot parse matcher"),
    "no matchers": (form(matchers=" \n\n"), "Give at least one matcher"),
    "regex that does not compile": (form(matchers="team=~(pay"), "bad regex in team=~(pay"),
    "end before start": (form(starts=f"{FUTURE:%Y-%m-%dT%H:%M}",
                              ends=f"{FUTURE - timedelta(hours=1):%Y-%m-%dT%H:%M}"),
                         "before it starts"),
    "end in the past": (form(ends="2020-01-01T00:00"), "before it starts"),
    "unparsable start": (form(starts="tomorrow morning"),
                         "The start &#39;tomorrow morning&#39; is not a time"),
    "unparsable end": (form(ends="soonish"), "The end &#39;soonish&#39; is neither a duration"),
    "zero duration": (form(ends="0m"), "must be longer than zero"),
    "end too far away": (form(ends="99999999999d"), "too far away"),
    "missing comment": (form(comment="   "), "Say why in the comment"),
    "preview with a bad matcher": (form(matchers="team payments", action="preview"),
                                   "Matcher line 1"),
    "neither button": (form(action="delete"), "Press Preview or Create"),
}


@pytest.mark.parametrize("data, reason", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_a_400_that_keeps_the_form_and_writes_nothing(
        served: Served, data: dict[str, str], reason: str) -> None:
    client = signed_in(served)
    before = written(served.timeline)
    response = post(client, "/silences", data)
    assert response.status_code == 400, response.text
    assert "Nothing was written" in response.text
    assert reason in response.text.replace("&#x27;", "&#39;")
    assert re.search(r'<textarea id="comment"[^>]*>' + re.escape(data["comment"]),
                     response.text)
    assert f'name="starts" value="{data["starts"]}"' in response.text
    assert written(served.timeline) == before
    # The positive control: the good form goes through on the same session.
    assert post(client, "/silences", GOOD).status_code == 303
    assert written(served.timeline) != before


def test_expiring_an_unknown_id_or_a_prefix_is_a_404(served: Served) -> None:
    client = signed_in(served)
    assert post(client, "/silences", form()).status_code == 303
    [silence] = served.timeline.silences.list()
    before = written(served.timeline)
    for wrong in ("no-such-silence", silence.id[:8]):
        response = post(client, f"/silences/{wrong}/expire", {})
        assert response.status_code == 404
        assert f"There is no silence with the id &#39;{wrong}&#39;" in \
            response.text.replace("&#x27;", "&#39;")
        assert written(served.timeline) == before
    assert post(client, f"/silences/{silence.id}/expire", {}).status_code == 303
    assert served.timeline.silences.list() == []


@pytest.mark.parametrize("token", [None, "forged-token-0123456789abcdef0123456789"])
def test_both_posts_need_the_sessions_csrf_token(served: Served, token: str | None) -> None:
    client = signed_in(served)
    assert post(client, "/silences", form()).status_code == 303
    [silence] = served.timeline.silences.list()
    before = written(served.timeline)
    extra = {} if token is None else {"csrf": token}
    for path, data in (("/silences", form()), (f"/silences/{silence.id}/expire", {})):
        response = client.post(path, data={**data, **extra})
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
        assert written(served.timeline) == before
    # With the page's token both go through.
    assert post(client, "/silences", form()).status_code == 303
    assert post(client, f"/silences/{silence.id}/expire", {}).status_code == 303
    assert len(served.timeline.events.list(kinds=["silenced", "unsilenced"])) == 3


def test_a_form_over_64_kib_is_a_413(served: Served) -> None:
    client = signed_in(served)
    before = written(served.timeline)
    response = post(client, "/silences", form(comment="x" * 70_000))
    assert response.status_code == 413
    assert written(served.timeline) == before
    assert post(client, "/silences", form(comment="x" * 60_000)).status_code == 303


def test_signed_out_get_goes_to_sign_in_and_post_is_401(served: Served) -> None:
    client = served.client()
    response = client.get("/silences/new?matcher=team%3Dpayments")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fsilences%2Fnew")
    before = written(served.timeline)
    assert client.post("/silences", data=form(csrf="x")).status_code == 401
    assert written(served.timeline) == before
    assert signed_in(served).get("/silences").status_code == 200


def test_what_people_type_is_shown_as_text(served: Served) -> None:
    hostile = "<script>alert('x')</script>"
    client = signed_in(served)
    assert post(client, "/silences", form(comment=hostile,
                                          matchers=f"team={hostile}")).status_code == 303
    page = client.get("/silences").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.replace("&#x27;", "&#39;")
