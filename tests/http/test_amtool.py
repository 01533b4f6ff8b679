"""The real ``amtool`` (Debian's ``prometheus-alertmanager``) against ``alert-jobs
serve``'s Alertmanager API v2: it adds, queries and expires silences and lists alerts,
with a bearer token or basic auth from an ``--http.config.file``, as a team would."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.alertmanager.auth import TOKENS_ENV
from alert_jobs.http.app import create_app
from alert_jobs.http.auth import AuthSettings
from alert_jobs.http.auth.passwords import hash_password
from alert_jobs.store import Timeline
from tests.conftest import served_app
from tests.http.pages_support import serve

AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (Debian package prometheus-alertmanager)")

TOKEN = "amtool-token-0123456789abcdefghij"
PASSWORD = "amtool basic password"
RULES = "defaults: {receivers: [console]}"


@dataclass
class Served:
    base: str
    timeline: Timeline
    config: Path  # the http config file amtool is given

    def amtool(self, *args: str, config: Path | None = None, check: bool = True
               ) -> subprocess.CompletedProcess[str]:
        assert AMTOOL is not None
        done = subprocess.run(
            [AMTOOL, f"--alertmanager.url={self.base}",
             f"--http.config.file={config or self.config}", "--timeout=20s", *args],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.config.parent)})
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done


def http_config(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    config = http_config(tmp_path / "bearer.yml", f"authorization:\n  credentials: {TOKEN}\n")
    with serve(tmp_path, rules=RULES, auth=AuthSettings(),
               api_auth=ApiAuth(tokens={TOKEN: "amtool-bot"})) as app:
        yield Served(app.base, app.timeline, config)


def test_amtool_adds_queries_and_expires_a_silence_with_a_bearer_token(served: Served
                                                                        ) -> None:
    added = served.amtool("silence", "add", "alertname=x", "team=y", "--author=Carol",
                          "--comment=deploying payments", "--duration=1h")
    sid = added.stdout.strip()
    stored = served.timeline.silences.get(sid)
    assert stored is not None, added.stdout
    assert sorted(str(m) for m in stored.matchers) == ["alertname=x", "team=y"]
    assert stored.created_by == "Carol" and stored.comment == "deploying payments"
    now = datetime.now(UTC)
    assert stored.is_active(now)
    assert timedelta(minutes=58) < stored.ends_at - now <= timedelta(hours=1)

    listed = served.amtool("silence", "query")
    assert sid in listed.stdout and "deploying payments" in listed.stdout
    as_json = json.loads(served.amtool("-o", "json", "silence", "query").stdout)
    assert [s["id"] for s in as_json] == [sid]
    assert as_json[0]["status"]["state"] == "active"
    assert {(m["name"], m["value"]) for m in as_json[0]["matchers"]} == {
        ("alertname", "x"), ("team", "y")}
    # amtool's own filter: a matcher the silence has, and one it does not.
    assert served.amtool("silence", "query", "-q", "team=y").stdout.split() == [sid]
    assert served.amtool("silence", "query", "-q", "team=z").stdout.split() == []

    # amtool's update extends it in place (same id), as Alertmanager does.
    later = (now + timedelta(hours=3)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    served.amtool("silence", "update", sid, f"--end={later}")  # (0.25's -q prints a pointer)
    assert [s.id for s in served.timeline.silences.list(include_expired=True)] == [sid]
    extended = served.timeline.silences.get(sid)
    assert extended is not None and extended.ends_at == datetime.fromisoformat(later)

    served.amtool("silence", "expire", sid)
    expired = served.timeline.silences.get(sid)
    assert expired is not None and not expired.is_active(datetime.now(UTC))
    assert served.amtool("silence", "query", "-q").stdout.split() == []
    assert served.amtool("silence", "query", "-q", "--expired").stdout.split() == [sid]
    # The timeline says who did it: the token's name, from the API.
    kinds = [(e["kind"], e["actor"], e["source"]) for e in
             served.timeline.events.list(kinds=("silenced", "unsilenced"))]
    assert sorted(kinds) == [("silenced", "amtool-bot", "api"),
                             ("unsilenced", "amtool-bot", "api")]
    updates = served.timeline.events.list(kinds=("silence_updated",))
    assert [(e["actor"], e["payload"]["silence_id"]) for e in updates] == [("amtool-bot", sid)]


def test_amtool_refusals_reach_the_user(served: Served, tmp_path: Path) -> None:
    # A silence already over (amtool does not check that itself): it shows our 400 and
    # nothing is written.
    bad = served.amtool("silence", "add", "alertname=x", "--author=Carol",
                        "--comment=too late", "--start=2020-01-01T00:00:00Z",
                        "--end=2020-01-02T00:00:00Z", check=False)
    assert bad.returncode != 0
    assert "end time can't be in the past" in bad.stderr, bad.stderr
    assert served.timeline.silences.list(include_expired=True) == []
    # A wrong token is refused; the right one (positive control) lists fine.
    wrong = http_config(tmp_path / "wrong.yml",
                        "authorization:\n  credentials: wrong-token-0123456789abcdefgh\n")
    refused = served.amtool("silence", "query", config=wrong, check=False)
    assert refused.returncode != 0
    assert served.amtool("silence", "query").returncode == 0


def test_amtool_alert_query_runs(served: Served) -> None:
    """``amtool alert query`` against GET /api/v2/alerts (served by the alerts module):
    an alert fired by one of our own checks is listed, if the module lists it."""
    with httpx.Client(base_url=served.base, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        if client.get("/api/v2/alerts").status_code == 404:
            pytest.skip("GET /api/v2/alerts is not on this branch yet (the alerts work "
                        "of the Alertmanager API lands it)")
    obs = Observation("dead_letters", Status.ALERT, {"team": "payments"}, 1.0,
                      summary="Expected dead letters to be 0, got 1")
    served.timeline.alerts.process(obs, RulePolicy(rule="dead_letters",
                                                    receivers=("console",)))
    served.amtool("alert", "query")
    alerts = json.loads(served.amtool("-o", "json", "alert", "query").stdout)
    assert isinstance(alerts, list)
    if alerts:
        assert any(a["labels"].get("alertname") == "dead_letters"
                   and a["labels"].get("team") == "payments" for a in alerts), alerts


def test_amtool_with_basic_auth_and_an_account(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Basic auth with a responder-page account, wired as ``alert-jobs serve`` does:
    the API takes its accounts from the sign-in settings, its tokens from the env."""
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    timeline = Timeline(f"sqlite:///{tmp_path / 'basic.db'}")
    timeline.ensure_schema()
    rules = parse_rules(RULES)
    accounts = {"dana": hash_password(PASSWORD, n=2**10)}
    app = create_app(lambda: timeline, lambda: rules, auth=AuthSettings(accounts=accounts))
    good = http_config(tmp_path / "basic.yml",
                       f"basic_auth:\n  username: dana\n  password: {PASSWORD}\n")
    wrong = http_config(tmp_path / "basic-wrong.yml",
                        "basic_auth:\n  username: dana\n  password: not it\n")
    try:
        with served_app(app) as base:
            served = Served(base, timeline, good)
            refused = served.amtool("silence", "query", config=wrong, check=False)
            assert refused.returncode != 0
            assert timeline.silences.list(include_expired=True) == []
            sid = served.amtool("silence", "add", "alertname=nightly_backup",
                                "--author=dana", "--comment=restore test",
                                "--duration=30m").stdout.strip()
            assert served.amtool("silence", "query", "-q").stdout.split() == [sid]
            served.amtool("silence", "expire", sid)
        actors = [(e["kind"], e["actor"])
                  for e in timeline.events.list(kinds=("silenced", "unsilenced"))]
        assert sorted(actors) == [("silenced", "dana"), ("unsilenced", "dana")]
    finally:
        timeline.dispose()
