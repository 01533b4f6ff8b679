"""Alertmanager API v2 silences and status, over real HTTP against ``alert-jobs serve``'s
app: Alertmanager's shapes, its update semantics, its error shape, and nothing
half-written on a refusal."""

from __future__ import annotations

import base64
import importlib.metadata
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from alert_jobs.config import parse_rules
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.alertmanager.errors import MAX_BODY, ApiError
from alert_jobs.http.alertmanager.shapes import (
    format_time,
    matcher_from_json,
    matcher_json,
    parse_matcher,
    parse_time,
)
from alert_jobs.http.app import create_app
from alert_jobs.store import Timeline, schema
from tests.conftest import served_app
from tests.http.pages_support import HASHES, PASSWORD, serve, settings

TOKEN = "deploybot-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
RULES = """
defaults: {receivers: [oncall], group_by: [alertname, team]}
receivers:
  - {name: oncall, type: slack, webhook_url: "https://hooks.slack.example/T000/SECRET-HOOK"}
  - name: pager
    type: pagerduty
    routing_key: pd-routing-key-SECRET
route:
  receiver: oncall
  routes:
    - {matchers: ['team="payments"'], receiver: pager, group_wait: 30s}
"""


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@dataclass
class Api:
    base: str
    timeline: Timeline

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60,
                            headers=BEARER if headers is None else headers)

    def counts(self) -> tuple[int, int]:
        """Rows in the silences and events tables."""
        with self.timeline.engine.connect() as conn:
            return (conn.execute(sa.select(sa.func.count()).select_from(schema.silences))
                    .scalar_one(),
                    conn.execute(sa.select(sa.func.count()).select_from(schema.events))
                    .scalar_one())

    def events(self) -> list[Any]:
        with self.timeline.engine.connect() as conn:
            return conn.execute(sa.select(schema.events).order_by(schema.events.c.id)).all()


@pytest.fixture
def am(tmp_path: Path) -> Iterator[Api]:
    callers = ApiAuth(tokens={TOKEN: "deploybot"}, accounts=dict(HASHES))
    with serve(tmp_path, rules=RULES, api_auth=callers) as app:
        yield Api(app.base, app.timeline)


def now() -> datetime:
    return datetime.now(UTC)


def matcher(name: str, value: str, regex: bool = False, equal: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


def postable(**overrides: Any) -> dict[str, Any]:
    body = {"matchers": [matcher("alertname", "x"), matcher("team", "pay.*", regex=True)],
            "startsAt": format_time(now()), "endsAt": format_time(now() + timedelta(hours=1)),
            "createdBy": "Carol (on call)", "comment": "deploying payments"}
    body.update(overrides)
    return body


def create(client: httpx.Client, **overrides: Any) -> str:
    response = client.post("/api/v2/silences", json=postable(**overrides))
    assert response.status_code == 200, response.text
    return str(response.json()["silenceID"])


# ----- the happy paths --------------------------------------------------------------


def test_a_posted_silence_is_stored_listed_and_got_in_alertmanager_shape(am: Api) -> None:
    with am.client() as client:
        sid = create(client, matchers=[matcher("alertname", "x"),
                                       matcher("team", "pay.*", regex=True),
                                       matcher("env", "dev", equal=False),
                                       matcher("zone", "eu-.*", regex=True, equal=False)])
        stored = am.timeline.silences.get(sid)
        assert stored is not None
        assert [str(m) for m in stored.matchers] == [
            "alertname=x", "team=~pay.*", "env!=dev", "zone!~eu-.*"]
        assert stored.created_by == "Carol (on call)"

        got = client.get(f"/api/v2/silence/{sid}")
        assert got.status_code == 200
        body = got.json()
        assert body["id"] == sid and body["status"] == {"state": "active"}
        assert body["matchers"] == [
            matcher("alertname", "x"), matcher("team", "pay.*", regex=True),
            matcher("env", "dev", equal=False), matcher("zone", "eu-.*", True, False)]
        assert body["createdBy"] == "Carol (on call)" and body["comment"] == "deploying payments"
        for field in ("startsAt", "endsAt", "updatedAt"):
            assert body[field].endswith("Z") and len(body[field]) == 24, body[field]
        assert parse_time(body["endsAt"], "endsAt") > now() + timedelta(minutes=59)

        listed = client.get("/api/v2/silences").json()
        assert [s["id"] for s in listed] == [sid] and listed[0] == body

    # The timeline's actor is the caller (the token's name); createdBy is the body's.
    silenced = [e for e in am.events() if e.kind == "silenced"]
    assert len(silenced) == 1
    assert (silenced[0].actor, silenced[0].source) == ("deploybot", "api")
    assert silenced[0].payload["silence_id"] == sid


def test_basic_auth_caller_is_the_actor(am: Api) -> None:
    with am.client(basic("alice", PASSWORD)) as client:
        sid = create(client)
        assert client.delete(f"/api/v2/silence/{sid}").status_code == 200
    actors = [(e.kind, e.actor, e.source) for e in am.events()]
    assert actors == [("silenced", "alice", "api"), ("unsilenced", "alice", "api")]


def test_a_silence_may_start_in_the_future_and_states_filter_the_list(am: Api) -> None:
    with am.client() as client:
        active = create(client)
        pending = create(client, startsAt=format_time(now() + timedelta(hours=2)),
                         endsAt=format_time(now() + timedelta(hours=3)))
        expired = create(client, matchers=[matcher("alertname", "old")])
        assert client.delete(f"/api/v2/silence/{expired}").status_code == 200

        def ids(**params: str) -> list[str]:
            response = client.get("/api/v2/silences", params=params)
            assert response.status_code == 200, response.text
            return [s["id"] for s in response.json()]

        # Alertmanager's order: active, pending, expired.
        assert ids() == [active, pending, expired]
        states = {s["id"]: s["status"]["state"] for s in client.get("/api/v2/silences").json()}
        assert states == {active: "active", pending: "pending", expired: "expired"}
        assert ids(active="false") == [pending, expired]
        assert ids(pending="false", expired="false") == [active]
        assert ids(active="false", pending="false") == [expired]
        assert ids(active="false", pending="false", expired="false") == []
        bad = client.get("/api/v2/silences", params={"active": "maybe"})
        assert bad.status_code == 400 and "active" in bad.json()

    pending_silence = am.timeline.silences.get(pending)
    assert pending_silence is not None and pending_silence.starts_at > now()
    assert not pending_silence.is_active(now())


def test_filter_compares_matchers_as_alertmanager_does(am: Api) -> None:
    with am.client() as client:
        both = create(client)  # alertname="x", team=~"pay.*"
        other = create(client, matchers=[matcher("alertname", "x"), matcher("team", "search")])

        def ids(*filters: str) -> list[str]:
            response = client.get("/api/v2/silences", params=[("filter", f) for f in filters])
            assert response.status_code == 200, response.text
            return sorted(s["id"] for s in response.json())

        assert ids() == sorted([both, other])
        assert ids('alertname="x"') == sorted([both, other])
        assert ids('alertname="x"', 'team=~"pay.*"') == [both]
        assert ids("team=search") == [other]
        # A filter compares matchers, it does not match labels: team="payments" is no
        # matcher of either silence, though team=~"pay.*" would mute such an alert.
        assert ids('team="payments"') == []
        assert ids('{team!="search"}') == []
        for broken in ('team=~"("', '="x"', "no operator"):
            response = client.get("/api/v2/silences", params={"filter": broken})
            assert response.status_code == 400, broken
            assert isinstance(response.json(), str) and "filter" in response.json()


def test_post_with_an_id_updates_in_place_when_only_the_end_changes(am: Api) -> None:
    with am.client() as client:
        sid = create(client)
        first = client.get(f"/api/v2/silence/{sid}").json()
        later = format_time(now() + timedelta(hours=5))
        updated = client.post("/api/v2/silences", json={
            **postable(), "id": sid, "startsAt": first["startsAt"], "endsAt": later,
            "comment": "deploy takes longer"})
        assert updated.status_code == 200, updated.text
        assert updated.json() == {"silenceID": sid}  # same silence, changed in place
        body = client.get(f"/api/v2/silence/{sid}").json()
        assert body["endsAt"] == later and body["comment"] == "deploy takes longer"
        assert body["status"]["state"] == "active"
        assert [s["id"] for s in client.get("/api/v2/silences").json()] == [sid]
    kinds = [(e.kind, e.actor) for e in am.events()]
    assert kinds == [("silenced", "deploybot"), ("silence_updated", "deploybot")]


def test_post_with_an_id_and_new_matchers_expires_the_old_and_makes_a_new(am: Api) -> None:
    with am.client() as client:
        sid = create(client)
        replaced = client.post("/api/v2/silences", json={
            **postable(matchers=[matcher("alertname", "y")]), "id": sid})
        assert replaced.status_code == 200, replaced.text
        new_id = replaced.json()["silenceID"]
        assert new_id != sid
        assert client.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
        new = client.get(f"/api/v2/silence/{new_id}").json()
        assert new["status"]["state"] == "active"
        assert new["matchers"] == [matcher("alertname", "y")]
    assert [e.kind for e in am.events()] == ["silenced", "unsilenced", "silenced"]
    assert am.events()[2].payload["replaces"] == sid


def test_a_pending_silence_may_move_its_start_in_place(am: Api) -> None:
    with am.client() as client:
        sid = create(client, startsAt=format_time(now() + timedelta(hours=2)),
                     endsAt=format_time(now() + timedelta(hours=3)))
        moved = format_time(now() + timedelta(hours=1))
        response = client.post("/api/v2/silences", json={
            **postable(), "id": sid, "startsAt": moved,
            "endsAt": format_time(now() + timedelta(hours=3))})
        assert response.json() == {"silenceID": sid}
        body = client.get(f"/api/v2/silence/{sid}").json()
        assert body["startsAt"] == moved and body["status"]["state"] == "pending"


def test_delete_expires_once_and_answers_again_as_alertmanager_does(am: Api) -> None:
    with am.client() as client:
        sid = create(client)
        keep = create(client, matchers=[matcher("alertname", "keep")])
        assert client.delete(f"/api/v2/silence/{sid}").status_code == 200
        assert client.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
        assert client.get(f"/api/v2/silence/{keep}").json()["status"]["state"] == "active"
        assert client.delete(f"/api/v2/silence/{sid}").status_code == 200  # idempotent
    assert [e.kind for e in am.events()] == ["silenced", "silenced", "unsilenced"]
    stored = am.timeline.silences.get(sid)
    assert stored is not None and not stored.is_active(now())


def test_unknown_ids_are_404_and_write_nothing(am: Api) -> None:
    with am.client() as client:
        sid = create(client)
        before = am.counts()
        unknown = "00000000-0000-4000-8000-000000000000"
        assert client.get(f"/api/v2/silence/{unknown}").status_code == 404
        assert client.delete(f"/api/v2/silence/{unknown}").status_code == 404
        # A prefix of a real id names no silence here (the CLI's prefixes are for people).
        assert client.delete(f"/api/v2/silence/{sid[:8]}").status_code == 404
        response = client.post("/api/v2/silences", json={**postable(), "id": unknown})
        assert response.status_code == 404 and response.json() == "silence not found"
        assert am.counts() == before
        assert client.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "active"
        # Positive control: the same body with the real id does write.
        assert client.post("/api/v2/silences", json={**postable(), "id": sid}).status_code == 200
        assert am.counts() != before


# ----- refusals ---------------------------------------------------------------------

HOUR_AGO = timedelta(hours=-1)
BAD_BODIES: dict[str, tuple[Any, str]] = {
    "not a silence object": ([1, 2], "postableSilence"),
    "bad regex": (postable(matchers=[matcher("team", "(", regex=True)]), "regex"),
    "empty name": (postable(matchers=[matcher("", "x")]), "empty"),
    "invalid name": (postable(matchers=[matcher("team-name", "x")]), "label name"),
    "no matchers": (postable(matchers=[]), "matchers"),
    "matchers missing": ({k: v for k, v in postable().items() if k != "matchers"},
                         "matchers"),
    "isRegex missing": (postable(matchers=[{"name": "a", "value": "b"}]), "isRegex"),
    "matches everything": (postable(matchers=[matcher("team", ".*", regex=True)]),
                           "empty string"),
    "ends before it starts": (postable(startsAt=format_time(now() + timedelta(hours=2)),
                                       endsAt=format_time(now() + timedelta(hours=1))),
                              "start time must be before end time"),
    "already ended": (postable(startsAt=format_time(now() - timedelta(hours=2)),
                               endsAt=format_time(now() + HOUR_AGO)),
                      "end time can't be in the past"),
    "bad time": (postable(endsAt="tomorrow"), "endsAt"),
    "time without zone": (postable(endsAt="2099-01-01T00:00:00"), "endsAt"),
    "createdBy missing": ({k: v for k, v in postable().items() if k != "createdBy"},
                          "createdBy"),
    "comment blank": (postable(comment="  "), "comment"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_silences_are_400_in_alertmanager_shape_and_write_nothing(am: Api,
                                                                      case: str) -> None:
    body, reason = BAD_BODIES[case]
    with am.client() as client:
        before = am.counts()
        response = client.post("/api/v2/silences", json=body)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/json")
        message = response.json()
        assert isinstance(message, str) and reason in message, message
        assert am.counts() == before
        create(client)  # positive control: a good silence on the same client is written
        assert am.counts()[0] == before[0] + 1


def test_invalid_json_and_oversized_bodies_are_refused_and_write_nothing(am: Api) -> None:
    with am.client() as client:
        before = am.counts()
        broken = client.post("/api/v2/silences", content=b'{"matchers": [',
                             headers={"content-type": "application/json"})
        assert broken.status_code == 400 and "not valid JSON" in broken.json()
        huge = json.dumps(postable(comment="x" * (MAX_BODY + 10))).encode()
        too_big = client.post("/api/v2/silences", content=huge,
                              headers={"content-type": "application/json"})
        assert too_big.status_code == 413 and "larger than" in too_big.json()
        long_comment = client.post("/api/v2/silences", json=postable(comment="x" * 20_000))
        assert long_comment.status_code == 400 and "comment" in long_comment.json()
        assert am.counts() == before
        create(client)
        assert am.counts()[0] == before[0] + 1


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer wrong-token-0123456789abcdefgh"}, id="bad-bearer"),
    pytest.param(basic("alice", "not the password"), id="bad-basic"),
    pytest.param(basic("mallory", PASSWORD), id="unknown-user"),
])
def test_unauthenticated_calls_are_401_and_write_nothing(am: Api,
                                                         headers: dict[str, str]) -> None:
    with am.client(BEARER) as good:
        sid = create(good)
    # Positive control first: five wrong passwords from one address would (rightly) get
    # this address throttled for the right one too (test_signin covers the throttle).
    with am.client(basic("alice", PASSWORD)) as client:
        assert client.get(f"/api/v2/silence/{sid}").status_code == 200
    before = am.counts()
    with am.client(headers) as client:
        for method, path, body in [("GET", "/api/v2/silences", None),
                                   ("POST", "/api/v2/silences", postable()),
                                   ("GET", f"/api/v2/silence/{sid}", None),
                                   ("DELETE", f"/api/v2/silence/{sid}", None),
                                   ("GET", "/api/v2/status", None)]:
            response = client.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert "Bearer" in response.headers["www-authenticate"]
            assert isinstance(response.json(), str)
    assert am.counts() == before
    # Positive control: the right token is let in.
    with am.client(BEARER) as client:
        assert client.get("/api/v2/silences").status_code == 200


def test_the_api_is_closed_when_no_token_or_account_is_configured(tmp_path: Path) -> None:
    timeline = Timeline(f"sqlite:///{tmp_path / 'closed.db'}")
    rules = parse_rules(RULES)
    app = create_app(lambda: timeline, lambda: rules, auth=settings(),
                     api_auth=ApiAuth())
    with served_app(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        response = client.get("/api/v2/silences", headers=BEARER)
        assert response.status_code == 401 and "ALERT_JOBS_API_TOKENS" in response.json()
        assert client.get("/healthz").status_code == 200  # the server itself is up
    timeline.dispose()


# ----- status -----------------------------------------------------------------------


def test_status_names_routing_without_any_secret(am: Api) -> None:
    with am.client() as client:
        response = client.get("/api/v2/status")
    assert response.status_code == 200
    body = response.json()
    assert body["cluster"]["status"] == "disabled"
    info = body["versionInfo"]
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate",
                         "goVersion"}
    assert info["version"] == importlib.metadata.version("alert-jobs")
    started = parse_time(body["uptime"], "uptime")
    assert started <= now() and body["uptime"].endswith("Z")
    original = body["config"]["original"]
    config = yaml.safe_load(original)
    assert config["receivers"] == [{"name": "oncall", "type": "slack"},
                                   {"name": "pager", "type": "pagerduty"}]
    assert config["route"]["receiver"] == "oncall"
    assert config["route"]["routes"] == [
        {"receiver": "pager", "matchers": ['team="payments"'], "group_wait": "30s"}]
    for secret in ("SECRET", "hooks.slack.example", "pd-routing-key", "https://"):
        assert secret not in original and secret not in response.text


# ----- the shared shapes (GET /api/v2/alerts reads matchers and times with them too) ---


def test_times_are_written_as_alertmanager_writes_them_and_read_from_any_offset() -> None:
    when = datetime(2026, 1, 2, 13, 4, 5, 123456, tzinfo=UTC)
    assert format_time(when) == "2026-01-02T13:04:05.123Z"
    assert parse_time("2026-01-02T15:04:05.123456789+02:00", "t") == when
    assert parse_time("2026-01-02t13:04:05.123456z", "t") == when
    for bad in ("2026-01-02", "2026-01-02T13:04:05", "2026-01-02 13:04:05Z", 17, None):
        with pytest.raises(ApiError) as refused:
            parse_time(bad, "startsAt")
        assert refused.value.status == 400 and "startsAt" in refused.value.message


def test_matchers_round_trip_between_text_json_and_alert_jobs() -> None:
    for text, op, value in [('a="b"', "=", "b"), ("a!=b", "!=", "b"), ('a=~"x.*"', "=~", "x.*"),
                            ('{a!~"y|z"}', "!~", "y|z"), (r'a="q\"x"', "=", 'q"x')]:
        parsed = parse_matcher(text)
        assert (parsed.name, parsed.op, parsed.value) == ("a", op, value), text
        assert matcher_from_json(matcher_json(parsed)) == parsed
    assert matcher_from_json({"name": "a", "value": "b", "isRegex": False}).op == "="
