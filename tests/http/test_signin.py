"""Who may read and act on the responder pages: sign-in, sessions, the proxy header,
the throttle and CSRF, over real HTTP (``alert-jobs serve``'s app on 127.0.0.1)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.cli.main import main
from alert_jobs.http.auth import AuthSettings, AuthSettingsError
from alert_jobs.http.auth.passwords import hash_password, verify_password
from alert_jobs.http.auth.settings import parse_accounts
from alert_jobs.http.auth.throttle import LoginThrottle
from alert_jobs.store import schema
from tests.http.pages_support import HASHES, PASSWORD, csrf_of, serve, settings, sign_in, signed_in

PAGES = ["/alerts", "/silences", "/heartbeats", "/quality/review", "/slo/budget"]


def test_every_page_needs_a_signed_in_user_and_public_paths_do_not(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = served.client()
        for path in PAGES:
            answer = client.get(path + "?x=1")
            assert answer.status_code == 303, path
            assert answer.headers["location"] == f"/login?next={path.replace('/', '%2F')}%3Fx%3D1"
        assert client.post("/alerts/abc/ack", data={"csrf": "x"}).status_code == 401
        assert client.post("/silences", data={"csrf": "x"}).status_code == 401
        # what carries its own authority, or needs none, stays open
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/login").status_code == 200
        # positive control: the same pages once signed in
        client = signed_in(served)
        for path in ("/alerts", "/slo/budget"):
            assert client.get(path).status_code == 200, path


def test_sign_in_goes_back_to_the_page_asked_for_and_only_to_this_server(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        for target, lands in (("/silences", "/silences"), ("//evil.example/x", "/alerts"),
                              ("https://evil.example/", "/alerts"), ("/\\evil", "/alerts")):
            client = served.client()
            form = client.get(f"/login?next={target}")
            answer = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                                 "csrf": csrf_of(form.text), "next": target})
            assert answer.status_code == 303 and answer.headers["location"] == lands, target


def test_a_wrong_password_is_a_clear_401_and_signs_nobody_in(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = served.client()
        wrong = sign_in(client, password="not it")
        assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
        unknown = sign_in(client, user="mallory")
        assert unknown.status_code == 401 and "Wrong user name or password." in unknown.text
        assert "alert_jobs_session" not in client.cookies
        assert client.get("/alerts").status_code == 303
        with served.timeline.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.sessions)
                                ).scalar() == 0
        assert sign_in(client).status_code == 303  # positive control
        assert client.get("/alerts").status_code == 200


def test_the_sign_in_form_needs_its_csrf_cookie(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = served.client()
        client.get("/login")
        forged = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                             "csrf": "forged-forged-forged-forged-forged-1"})
        assert forged.status_code == 403 and "security token" in forged.text
        assert client.get("/alerts").status_code == 303


def test_failed_sign_ins_are_throttled_per_account_then_lifted(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = served.client()
        for _ in range(5):
            assert sign_in(client, password="guess").status_code == 401
        blocked = sign_in(client)  # even the right password, while blocked
        assert blocked.status_code == 429
        assert "Too many failed sign-ins" in blocked.text
        assert 1 <= int(blocked.headers["retry-after"]) <= 15 * 60
        assert client.get("/alerts").status_code == 303
        assert sign_in(served.client(), user="bob").status_code == 429  # same address


def test_the_throttle_forgets_failures_after_its_window() -> None:
    throttle = LoginThrottle(limit=2, window=timedelta(minutes=15))
    t0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
    throttle.failed("alice", "10.0.0.1", t0)
    assert throttle.retry_after("alice", "10.0.0.1", t0) is None  # one failure: not yet
    throttle.failed("alice", "10.0.0.1", t0 + timedelta(minutes=1))
    assert throttle.retry_after("alice", "10.0.0.2", t0 + timedelta(minutes=2)) == 13 * 60 + 1
    assert throttle.retry_after("carol", "10.0.0.1", t0 + timedelta(minutes=2)) is not None
    assert throttle.retry_after("carol", "10.0.0.3", t0 + timedelta(minutes=2)) is None
    assert throttle.retry_after("alice", "10.0.0.1", t0 + timedelta(minutes=16)) is None
    throttle.failed("dave", "10.0.0.9", t0)
    throttle.succeeded("dave", "10.0.0.9")
    throttle.failed("dave", "10.0.0.8", t0)
    assert throttle.retry_after("dave", "10.0.0.7", t0) is None  # a success cleared it


def test_sign_out_ends_the_session_for_good(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = signed_in(served)
        token = client.cookies["alert_jobs_session"]
        page = client.get("/alerts")
        out = client.post("/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        replay = served.client()
        replay.cookies.set("alert_jobs_session", token)  # the old cookie, kept by a thief
        assert replay.get("/alerts").status_code == 303


def test_sessions_expire_after_their_lifetime_and_when_idle(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = signed_in(served)
        assert client.get("/alerts").status_code == 200
        with served.timeline.engine.begin() as conn:  # the session began 13 hours ago
            conn.execute(schema.sessions.update().values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        assert client.get("/alerts").status_code == 303
        client = signed_in(served)
        with served.timeline.engine.begin() as conn:  # nothing asked for 3 hours
            conn.execute(schema.sessions.update().values(
                last_seen_at=datetime.now(UTC) - timedelta(hours=3)))
        assert client.get("/alerts").status_code == 303


def test_only_a_hash_of_the_session_token_is_stored(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        token = signed_in(served).cookies["alert_jobs_session"]
        with served.timeline.engine.connect() as conn:
            stored = conn.execute(sa.select(schema.sessions.c.token_hash)).scalar_one()
        assert token not in stored and len(stored) == 64


def test_the_proxy_header_is_honoured_only_when_configured_and_from_a_trusted_proxy(
        tmp_path: Path) -> None:
    header = {"X-Forwarded-User": "carol"}
    with serve(tmp_path) as served:  # not configured: the header is just a header
        assert served.client().get("/alerts", headers=header).status_code == 303
    with serve(tmp_path, auth=settings(user_header="x-forwarded-user",
                                       trusted_proxies=frozenset({"10.9.9.9"}))) as served:
        assert served.client().get("/alerts", headers=header).status_code == 303
    with serve(tmp_path, auth=settings(user_header="x-forwarded-user")) as served:
        client = served.client()
        page = client.get("/alerts", headers=header)
        assert page.status_code == 200 and "carol" in page.text
        # forms still need the token (a double-submitted cookie for proxy users)
        assert "alert_jobs_page_csrf" in client.cookies
        refused = client.post("/alerts/nope/ack", headers=header, data={"csrf": "forged"})
        assert refused.status_code == 403
        unknown = client.post("/alerts/nope/ack", headers=header,
                              data={"csrf": client.cookies["alert_jobs_page_csrf"]})
        assert unknown.status_code == 404  # positive control: the token was accepted


def test_with_no_accounts_nobody_gets_in_and_the_page_says_how_to_fix_it(tmp_path: Path) -> None:
    with serve(tmp_path, auth=AuthSettings()) as served:
        client = served.client()
        page = client.get("/login")
        assert "ALERT_JOBS_USERS" in page.text and "alert-jobs users hash" in page.text
        assert client.get("/alerts").status_code == 303


def test_account_settings_are_checked_with_messages_that_never_show_a_hash() -> None:
    good = HASHES["alice"]
    assert parse_accounts(f"alice:{good}, bob:{HASHES['bob']}").keys() == {"alice", "bob"}
    for text, says in ((f"alice{good}", "not NAME:HASH"), ("alice:plaintext", "not a scrypt"),
                       (f"alice:{good},alice:{good}", "given twice"),
                       ("al ice:x", "not NAME:HASH")):
        with pytest.raises(AuthSettingsError, match=says) as caught:
            parse_accounts(text)
        assert good not in str(caught.value) and "plaintext" not in str(caught.value)
    with pytest.raises(AuthSettingsError, match="ALERT_JOBS_SESSION_HOURS"):
        AuthSettings.from_env({"ALERT_JOBS_SESSION_HOURS": "-1"})
    with pytest.raises(AuthSettingsError, match="not a header name"):
        AuthSettings.from_env({"ALERT_JOBS_TRUSTED_USER_HEADER": "X User"})


def test_users_hash_prints_an_entry_the_server_accepts(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "hash", "dana", "--stdin"]) == 0
    entry = capsys.readouterr().out.strip()
    name, hashed = entry.split(":", 1)
    assert name == "dana" and verify_password("a long enough password", hashed)
    assert not verify_password("a long enough passwore", hashed)
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["users", "hash", "dana", "--stdin"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err


def test_serve_refuses_a_broken_account_setting_at_start(tmp_path: Path) -> None:
    env = {"ALERT_JOBS_USERS": "alice:not-a-hash", "PATH": "/usr/bin:/bin",
           "ALERT_JOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "alert_jobs.cli.main", "serve", "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "$ALERT_JOBS_USERS: the hash of 'alice' is not a scrypt" in done.stderr


def test_password_hashes_are_salted() -> None:
    assert hash_password(PASSWORD, n=2**10) != hash_password(PASSWORD, n=2**10)


def test_parallel_wrong_passwords_cannot_outrun_the_throttle(tmp_path: Path) -> None:
    """The check and the count are one step: a burst of guesses sent at once is limited
    like guesses sent one after another."""
    import concurrent.futures

    with serve(tmp_path) as served:
        def guess(_: int) -> int:
            with served.client() as client:
                return sign_in(client, password="guess").status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(guess, range(20)))
        assert codes.count(401) == 5 and codes.count(429) == 15


def test_a_form_from_another_site_is_refused_even_with_a_good_token(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        client = signed_in(served)
        token = csrf_of(client.get("/alerts").text)
        for site in ("cross-site", "same-site"):
            refused = client.post("/silences", data={"csrf": token, "action": "create"},
                                  headers={"Sec-Fetch-Site": site})
            assert refused.status_code == 403 and "another site" in refused.text
        own = client.post("/silences", data={"csrf": token, "action": "preview",
                                             "matchers": "team=x", "comment": "c", "ends": "2h"},
                          headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 200  # positive control: its own page's form
        nul = client.post("/silences", data={"csrf": token, "comment": "a\x00b"})
        assert nul.status_code == 400 and "NUL" in nul.text


def test_the_api_basic_auth_shares_the_sign_in_throttle(tmp_path: Path) -> None:
    """The Alertmanager API is no side door for guessing an account's password."""
    from alert_jobs.http.alertmanager import ApiAuth

    with serve(tmp_path, api_auth=ApiAuth(accounts=dict(HASHES))) as served:
        client = served.client()
        good = client.get("/api/v2/silences", auth=("alice", PASSWORD))
        assert good.status_code == 200  # the positive control
        codes = [client.get("/api/v2/silences", auth=("bob", "guess")).status_code
                 for _ in range(6)]
        assert codes == [401] * 5 + [429]
        blocked = client.get("/api/v2/silences", auth=("bob", PASSWORD))
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert sign_in(served.client(), user="bob").status_code == 429  # the pages too
