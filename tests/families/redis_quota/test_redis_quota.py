"""Redis quota checks against real Redis servers, a real Upstash-shaped HTTP API,
and a real Dagster instance."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import redis
import sqlalchemy as sa

from alert_jobs.config import parse_rules
from alert_jobs.core.model import AlertState, Severity, Status
from alert_jobs.families.redis_quota.definitions import ASSET_KEY, build_definitions
from alert_jobs.families.redis_quota.run import check_target, check_targets
from alert_jobs.families.redis_quota.store import redis_windows
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import free_port, redis_binary

NOON = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def rules_for(*targets: str, extra: str = "") -> Any:
    body = "\n".join(f"    - {t}" for t in targets)
    return parse_rules(f"""
receivers: [{{name: console, type: console}}]
{extra}
checks:
  redis_quota:
{body}
""")


def target(name: str, url: str, quota: str = "{window: day, limit: 1000000}", **more: str) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in more.items())
    return f"{{name: {name}, url: '{url}', quota: {quota}{', ' + fields if fields else ''}}}"


def load(client: redis.Redis, n: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"k{i % 50}", i)
    pipe.execute()


def quota_of(result: Any) -> Any:
    return next(o for o in result.observations if o.labels["check"] == "quota")


# ----- counting ---------------------------------------------------------------------


def test_one_command_per_check(redis_factory, sqlite_url: str) -> None:
    plain = redis_factory()
    locked = redis_factory("--requirepass", "s3cret", password="s3cret")
    other = redis_factory()  # its own server, so each count below is exact
    rules = rules_for(target("plain", plain.url),
                      target("locked", locked.url, password="s3cret"),
                      target("db3", other.url.replace("/0", "/3")))
    timeline = Timeline(sqlite_url)
    first = {r.target: r for r in check_targets(rules, rules.checks.redis_quota, timeline,
                                                now=NOON)}
    second = {r.target: r for r in check_targets(rules, rules.checks.redis_quota, timeline,
                                                 now=NOON + timedelta(minutes=15))}
    assert {k: r.commands_spent for k, r in second.items()} == {"plain": 1, "locked": 2, "db3": 2}
    # What the server counted between the two readings is exactly what the monitor spent
    # (the first INFO, then the second connection's AUTH/SELECT).
    deltas = {k: second[k].metrics["used"] - first[k].metrics["used"] for k in second}
    assert deltas == {"plain": 1.0, "locked": 2.0, "db3": 2.0}
    assert second["plain"].metrics["monitor_commands"] == 1.0


def test_known_load_counted_within_one_percent(shared_redis_url: str, sqlite_url: str) -> None:
    rules = rules_for(target("cache", shared_redis_url))
    timeline = Timeline(sqlite_url)
    before = check_target(rules, rules.checks.redis_quota[0], timeline, now=NOON)
    load(redis.Redis.from_url(shared_redis_url, lib_name=None, lib_version=None), 5000)
    after = check_target(rules, rules.checks.redis_quota[0], timeline,
                         now=NOON + timedelta(minutes=15))
    counted = after.metrics["used"] - before.metrics["used"]
    truth = 5000 + before.commands_spent
    assert abs(counted - truth) <= 0.01 * truth, (counted, truth)
    assert after.metrics["rate_ops_per_sec"] == pytest.approx(counted / 900, rel=1e-6)


def test_config_resetstat_mid_window_neither_loses_nor_goes_negative(redis_factory,
                                                                     sqlite_url: str) -> None:
    server = redis_factory()
    rules = rules_for(target("cache", server.url))
    timeline = Timeline(sqlite_url)
    t = rules.checks.redis_quota[0]
    check_target(rules, t, timeline, now=NOON)
    load(server.client(), 1000)
    mid = check_target(rules, t, timeline, now=NOON + timedelta(minutes=15)).metrics["used"]
    server.client().config_resetstat()
    load(server.client(), 500)
    end = check_target(rules, t, timeline, now=NOON + timedelta(minutes=30)).metrics
    assert mid >= 1000
    assert 500 <= end["used"] - mid <= 510
    assert end["resets_in_window"] == 1.0


def test_restart_mid_window_keeps_counted_usage_and_estimates_the_rest(redis_factory,
                                                                       db_url: str) -> None:
    """On the test's clock the restart comes 15 minutes after the last check (the new
    server's uptime is a second or so), so those 15 minutes are estimated at the rate
    measured before; what both servers counted stays exact."""
    server = redis_factory()
    rules = rules_for(target("cache", server.url))
    timeline = Timeline(db_url)
    t = rules.checks.redis_quota[0]
    check_target(rules, t, timeline, now=NOON)
    load(server.client(), 1000)
    mid = check_target(rules, t, timeline, now=NOON + timedelta(minutes=15)).metrics
    old_run_id = server.client().info("server")["run_id"]
    server.restart()
    assert server.client().info("server")["run_id"] != old_run_id
    load(server.client(), 300)
    end = check_target(rules, t, timeline, now=NOON + timedelta(minutes=30))
    m = end.metrics
    assert 300 <= m["used_counted"] - mid["used"] <= 310, "the new counter counted from zero"
    assert m["resets_in_window"] == 1.0 and m["restarts"] == 1.0
    rate = mid["rate_ops_per_sec"]
    assert rate * 880 <= m["estimated_commands"] <= rate * 900
    assert m["used"] == pytest.approx(m["used_counted"] + m["estimated_commands"])
    assert "commands estimated across a Redis restart at 12:" in quota_of(end).summary


def test_midnight_rollover_in_berlin(redis_factory, sqlite_url: str) -> None:
    server = redis_factory()
    berlin = ZoneInfo("Europe/Berlin")
    rules = rules_for(target("cache", server.url,
                             quota="{window: day, limit: 100000, timezone: Europe/Berlin}"))
    timeline = Timeline(sqlite_url)
    t = rules.checks.redis_quota[0]
    before_midnight = datetime(2026, 1, 15, 23, 50, tzinfo=berlin).astimezone(UTC)
    after_midnight = datetime(2026, 1, 16, 0, 10, tzinfo=berlin).astimezone(UTC)
    first = check_target(rules, t, timeline, now=before_midnight).metrics["used"]
    load(server.client(), 400)
    second = check_target(rules, t, timeline, now=after_midnight).metrics
    assert 199 <= second["used"] <= 203, "half of the 401 commands fall after midnight"
    assert second["window_seconds_left"] == pytest.approx(23 * 3600 + 50 * 60)
    with timeline.engine.connect() as conn:
        rows = conn.execute(sa.select(redis_windows.c.window_start,
                                      redis_windows.c.used)
                            .order_by(redis_windows.c.window_start)).all()
    assert [r.window_start.astimezone(berlin).hour for r in rows] == [0, 0]
    assert rows[0].used == first, "yesterday's window keeps what it counted"


def test_thresholds_become_statuses_and_escalate(redis_factory, sqlite_url: str) -> None:
    server = redis_factory()
    rules = rules_for(target("cache", server.url, quota="{window: day, limit: 100}"))
    timeline = Timeline(sqlite_url)
    t = rules.checks.redis_quota[0]

    def quota_obs(minutes: int) -> Any:
        result = check_target(rules, t, timeline, now=NOON + timedelta(minutes=minutes))
        return next(o for o in result.outcomes if o.observation.labels["check"] == "quota")

    start = quota_obs(0)
    assert start.observation.status == Status.OK
    load(server.client(), 75 - int(start.observation.value or 0))
    warning = quota_obs(15)
    assert warning.observation.severity == Severity.WARNING
    assert warning.state == AlertState.FIRING
    load(server.client(), 20)
    critical = quota_obs(30)
    assert critical.observation.severity == Severity.CRITICAL
    assert "(90 % of 100/day)" in critical.observation.summary
    reasons = [n.reason for n in critical.result.decision.notifications]
    assert reasons == ["severity_raised"], "warning → critical is news: sent at once"
    firing = [o for o in timeline.outbox.rows() if o["kind"] == "firing"]
    assert [o["payload"]["alerts"][0]["severity"] for o in firing] == ["warning", "critical"]
    assert "polling loops" in firing[0]["payload"]["alerts"][0]["first_steps"]


# ----- bad input ----------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers: the timeout case."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    sock.close()


def test_bad_targets_become_error_alerts_and_others_still_run(
        redis_factory, silent_server: int, sqlite_url: str) -> None:
    good = redis_factory()
    locked = redis_factory("--requirepass", "right-pw", password="right-pw")
    closed = free_port()
    rules = rules_for(
        target("refused", f"redis://:hunter2pw@127.0.0.1:{closed}/0", timeout="1s"),
        target("wrong_password", locked.url, password="hunter2pw", timeout="1s"),
        target("tls_mismatch", good.url.replace("redis://", "rediss://"), timeout="1s"),
        target("silent", f"redis://127.0.0.1:{silent_server}/0", timeout="1s"),
        target("good", good.url),
    )
    timeline = Timeline(sqlite_url)
    started = time.monotonic()
    results = {r.target: r for r in check_targets(rules, rules.checks.redis_quota, timeline,
                                                  now=NOON)}
    # Nothing hangs: redis-py's default socket timeout is infinite, so a silent server
    # would block this forever without the configured 1 s timeouts. (A loose bound: the
    # machine may be busy; speed belongs in benchmarks.)
    assert time.monotonic() - started < 10.0, "each bad target gives up on its timeout"
    assert results["good"].error is None and results["good"].metrics["used"] >= 0
    assert "connection refused" in str(results["refused"].error)
    assert "authentication failed" in str(results["wrong_password"].error)
    assert "timed out after 1 s" in str(results["tls_mismatch"].error)
    assert "TLS" in str(results["tls_mismatch"].error)
    assert "timed out after 1 s" in str(results["silent"].error)
    errors = {e["rule"]: e["reason"] for e in timeline.events.list(kinds=["error"])}
    assert set(errors) == {"refused", "wrong_password", "tls_mismatch", "silent"}
    for name, reason in errors.items():
        assert reason.startswith(f"check failed: {name}: ")
    stored = repr(timeline.events.list()) + repr(timeline.outbox.rows()) + repr(
        timeline.alerts.evaluations("refused")) + repr([r.error for r in results.values()])
    assert "hunter2pw" not in stored and "right-pw" not in stored


def _openssl_cert(workdir: Path, name: str) -> tuple[Path, Path, Path]:
    ca_key, ca = workdir / f"{name}-ca.key", workdir / f"{name}-ca.crt"
    key, csr, crt = workdir / f"{name}.key", workdir / f"{name}.csr", workdir / f"{name}.crt"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", f"/CN={name}-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return ca, crt, key




@pytest.mark.skipif(not shutil.which("openssl") or not shutil.which("redis-server"),
                    reason="needs openssl and a TLS-capable system redis-server")
def test_tls_with_private_ca_and_with_the_wrong_ca(tmp_path: Path, sqlite_url: str) -> None:
    ca, crt, key = _openssl_cert(tmp_path, "good")
    other_ca, _, _ = _openssl_cert(tmp_path, "other")
    port = free_port()
    proc = subprocess.Popen([redis_binary(), "--port", "0", "--tls-port", str(port),
                             "--tls-cert-file", str(crt), "--tls-key-file", str(key),
                             "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
                             "--save", "", "--bind", "127.0.0.1", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"rediss://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(url, ssl_ca_certs=str(ca)).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        rules = rules_for(target("tls_ok", url, tls=f"{{ca_file: '{ca}'}}"),
                          target("tls_bad_ca", url, tls=f"{{ca_file: '{other_ca}'}}"))
        results = {r.target: r for r in check_targets(rules, rules.checks.redis_quota,
                                                      Timeline(sqlite_url), now=NOON)}
        assert results["tls_ok"].error is None
        assert results["tls_ok"].metrics["monitor_commands"] == 1.0
        assert "TLS handshake failed" in str(results["tls_bad_ca"].error)
        assert "certificate verify failed" in str(results["tls_bad_ca"].error)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ----- Upstash Developer API ---------------------------------------------------------------


STATS = {"daily_net_commands": 7_400, "daily_read_requests": 5_000,
         "daily_write_requests": 2_400, "total_monthly_requests": 410_000,
         "total_monthly_bandwidth": 1_234_567, "current_storage": 98_304,
         "total_monthly_billing": 0, "dailyrequests": [{"x": "2026-01-15", "y": 7400}],
         "days": ["Thursday"]}
DATABASE = {"database_id": "db-1", "database_name": "cache", "type": "free",
            "state": "active", "db_request_limit": 500_000, "db_max_commands_per_second": 10_000}


@pytest.fixture
def upstash_api() -> Iterator[dict[str, Any]]:
    api: dict[str, Any] = {"requests": [], "status": 200}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            api["requests"].append((self.path, self.headers.get("Authorization")))
            routes = {"/v2/redis/stats/db-1": STATS, "/v2/redis/database/db-1": DATABASE}
            status = api["status"] if self.path in routes else 404
            body = json.dumps(routes.get(self.path, {"error": "not found"}) if status == 200
                              else {"error": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api["url"] = f"http://127.0.0.1:{server.server_address[1]}/v2"
    yield api
    server.shutdown()
    server.server_close()


def upstash_target(name: str, api: dict[str, Any], quota: str, db: str = "db-1") -> str:
    return (f"{{name: {name}, source: upstash, quota: {quota}, upstash: {{database_id: {db}, "
            f"email: ops@example.com, api_key: {{env: UPSTASH_TEST_KEY}}, "
            f"api_url: '{api['url']}'}}}}")


def test_upstash_usage_from_the_developer_api(upstash_api: dict[str, Any], sqlite_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTASH_TEST_KEY", "key-abc-123")
    rules = rules_for(upstash_target("monthly", upstash_api, "{preset: upstash_free}"),
                      upstash_target("daily", upstash_api, "{window: day, limit: 10000}"))
    results = {r.target: r for r in check_targets(rules, rules.checks.redis_quota,
                                                  Timeline(sqlite_url), now=NOON)}
    monthly, daily = results["monthly"], results["daily"]
    assert monthly.metrics["used"] == 410_000 and monthly.metrics["limit"] == 500_000
    assert daily.metrics["used"] == 7_400
    quota = {r: next(o for o in results[r].observations if o.labels["check"] == "quota")
             for r in results}
    state = next(o for o in monthly.observations if o.labels["check"] == "state")
    assert state.status == Status.OK and monthly.metrics["upstash_request_limit"] == 500_000
    assert quota["monthly"].severity == Severity.WARNING  # 82 % used
    assert quota["daily"].severity == Severity.WARNING    # 74 % used
    assert "(70 % of 500,000/month) this month (UTC)" in quota["monthly"].summary
    assert monthly.commands_spent == 0, "the Developer API is not a database command"
    expected_auth = "Basic " + base64.b64encode(b"ops@example.com:key-abc-123").decode()
    assert {auth for _, auth in upstash_api["requests"]} == {expected_auth}


def test_suspended_upstash_database_pages(upstash_api: dict[str, Any], sqlite_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTASH_TEST_KEY", "key-abc-123")
    monkeypatch.setitem(DATABASE, "state", "suspended")
    rules = rules_for(upstash_target("up", upstash_api, "{preset: upstash_free}"))
    (result,) = check_targets(rules, rules.checks.redis_quota, Timeline(sqlite_url), now=NOON)
    state = next(o for o in result.outcomes if o.observation.labels["check"] == "state")
    assert state.observation.severity == Severity.CRITICAL
    assert state.observation.summary == ("Expected the database to be active; the provider "
                                         "reports it suspended")
    assert state.state == AlertState.FIRING


@pytest.mark.parametrize(("status", "text"), [
    (401, "Upstash API rejected the credentials (HTTP 401)"),
    (503, "Upstash API error (HTTP 503)"),
])
def test_upstash_errors_name_the_target_not_the_key(upstash_api: dict[str, Any], status: int,
                                                    text: str, sqlite_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTASH_TEST_KEY", "key-abc-123")
    upstash_api["status"] = status
    rules = rules_for(upstash_target("up", upstash_api, "{preset: upstash_free}"))
    timeline = Timeline(sqlite_url)
    (result,) = check_targets(rules, rules.checks.redis_quota, timeline, now=NOON)
    assert result.error is not None and text in result.error
    assert result.error.startswith("up: Upstash database db-1")
    (event,) = timeline.events.list(kinds=["error"])
    assert text in event["reason"]
    assert "key-abc-123" not in repr(timeline.events.list()) + repr(timeline.outbox.rows())


def test_missing_secret_is_an_error_alert(upstash_api: dict[str, Any], sqlite_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPSTASH_TEST_KEY", raising=False)
    rules = rules_for(upstash_target("up", upstash_api, "{preset: upstash_free}"))
    (result,) = check_targets(rules, rules.checks.redis_quota, Timeline(sqlite_url), now=NOON)
    assert result.error == "up: environment variable UPSTASH_TEST_KEY is not set"


# ----- Dagster ---------------------------------------------------------------------------


def test_dagster_asset_one_run_many_partitions(redis_factory, tmp_path: Path) -> None:
    server = redis_factory()
    closed = free_port()
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(f"""
receivers: [{{name: console, type: console}}]
defaults: {{timezone: Europe/Berlin}}
checks:
  redis_quota:
    - {target("alpha", server.url)}
    - {target("beta", f"redis://127.0.0.1:{closed}/0", timeout="1s")}
""")
    rules = parse_rules(rules_file.read_text())
    defs = build_definitions(rules)
    assets, jobs = list(defs.assets or []), list(defs.jobs or [])
    schedules = list(defs.schedules or [])
    (schedule,) = schedules
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    resource = AlertJobsResource(rules_file=str(rules_file),
                                 database_url=f"sqlite:///{tmp_path / 'alerts.db'}")
    defs = dg.Definitions(assets=assets, jobs=jobs, schedules=schedules,
                          resources={"alert_jobs": resource})
    with dg.instance_for_test() as instance:
        (request,) = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance)).run_requests or []
        job = defs.resolve_job_def("redis_quota_job")
        result = job.execute_in_process(instance=instance, tags=request.tags)
        assert result.success
        mats = {m.partition: {k: v.value for k, v in m.metadata.items()}
                for m in result.asset_materializations_for_node("redis_quota")}
        assert set(mats) == {"alpha", "beta"}
        alpha = mats["alpha"]
        for key in ("used", "percent", "limit", "memory_used_bytes", "monitor_commands"):
            assert isinstance(alpha[key], float), key
        assert alpha["status"] == "ok" and alpha["monitor_commands"] == 1.0
        assert mats["beta"]["status"] == "error" and "connection refused" in mats["beta"][
            "summary"]
        (check,) = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert instance.get_materialized_partitions(ASSET_KEY) == {"alpha", "beta"}

        by_hand = job.execute_in_process(instance=instance, partition_key="alpha")
        assert [m.partition for m in by_hand.asset_materializations_for_node("redis_quota")] \
            == ["alpha"]
        (check,) = by_hand.get_asset_check_evaluations()
        assert check.passed


def test_cli_redis_check(redis_factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alert_jobs.cli.main import main

    server = redis_factory()
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(f"""
checks:
  redis_quota:
    - {target("cache", server.url, quota="{window: day, limit: 10}")}
    - {target("down", f"redis://127.0.0.1:{free_port()}/0", timeout="1s")}
""")
    base = ["--rules", str(rules_file), "--database-url", f"sqlite:///{tmp_path / 't.db'}"]
    load(server.client(), 50)
    assert main([*base, "redis", "check", "cache"]) == 0
    out = capsys.readouterr().out
    assert "monitor spent 1 command(s) on this check" in out
    assert "quota: critical, firing: Expected under 9 commands (90 % of 10/day)" in out
    assert main([*base, "redis", "check"]) == 1
    assert "ERROR down: redis://127.0.0.1:" in capsys.readouterr().out
    assert main([*base, "redis", "check", "nope"]) == 2
    assert "unknown redis_quota target(s) nope" in capsys.readouterr().err


def test_acl_user_allowed_only_info(redis_factory, sqlite_url: str) -> None:
    """Least privilege: a monitor user that may run INFO and nothing else is enough."""
    server = redis_factory()
    admin = server.client()
    admin.acl_setuser("monitor", enabled=True, passwords=["+mon-pw"], commands=["+info"])
    admin.acl_setuser("nobody", enabled=True, passwords=["+nob-pw"], commands=["+ping"])
    rules = rules_for(target("acl_ok", server.url, username="monitor", password="mon-pw"),
                      target("acl_denied", server.url, username="nobody", password="nob-pw"))
    results = {r.target: r for r in check_targets(rules, rules.checks.redis_quota,
                                                  Timeline(sqlite_url), now=NOON)}
    assert results["acl_ok"].error is None
    assert results["acl_ok"].commands_spent == 2  # AUTH + INFO
    assert "INFO refused" in str(results["acl_denied"].error)
    assert "no permissions to run the 'info' command" in str(results["acl_denied"].error)
    assert "nob-pw" not in str(results["acl_denied"].error)
