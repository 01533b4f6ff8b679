"""The ping receiver over real HTTP on 127.0.0.1, against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs import heartbeat as client
from alert_jobs.cli.main import main
from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.families.heartbeat import http as ping_http
from alert_jobs.families.heartbeat.run import evaluate_due
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.http.app import create_app
from alert_jobs.store import Timeline, utcnow
from tests.conftest import free_port, served_app

http = httpx.Client(timeout=60)

RULES = """
defaults: {receivers: [console]}
checks:
  heartbeat:
    - name: nightly_backup
      period: 1d
      grace: 1h
      max_duration: 30m
      token: {env: HB_TEST_TOKEN}
      labels: {team: ops}
    - name: etl
      slug: etl-hourly
      period: 1h
      grace: 5m
heartbeats:
  body_limit: 100
  ping_log_keep: 5
"""


class Served:
    def __init__(self, base: str, timeline: Timeline, rules: dict[str, RulesFile]):
        self.base, self.timeline, self.rules = base, timeline, rules
        self.store = HeartbeatStore(timeline)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return http.get(self.base + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return http.post(self.base + path, **kw)

    def counts(self) -> tuple[int, int]:
        rows = self.store.rows()
        return len(rows), sum(len(self.store.pings(r.state.slug, 1000)) for r in rows)


def serve(timeline: Timeline, get_rules: Callable[[], RulesFile]) -> Iterator[str]:
    app = create_app(lambda: timeline, get_rules)
    with served_app(app) as base:
        yield base


@pytest.fixture
def served(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("HB_TEST_TOKEN", "s3cret-token")
    # a loaded CI machine must not turn a slow write into a 503 (the client waits 60 s)
    monkeypatch.setattr(ping_http, "WRITE_TIMEOUT_SECONDS", 60.0)
    timeline = Timeline(db_url)
    holder = {"rules": parse_rules(RULES)}
    for base in serve(timeline, lambda: holder["rules"]):
        yield Served(base, timeline, holder)
    timeline.dispose()


AUTH = {"Authorization": "Bearer s3cret-token"}


def test_success_start_fail_and_exit_codes_are_recorded(served: Served) -> None:
    assert served.get("/ping/etl-hourly").status_code == 200
    assert served.get("/ping/etl-hourly/start?rid=r1").status_code == 200
    response = served.post("/ping/etl-hourly/0?rid=r1", content=b"done: 12 rows")
    assert response.status_code == 200 and response.headers["Ping-Body-Limit"] == "100"
    assert served.get("/ping/etl-hourly/fail").status_code == 200
    assert served.get("/ping/etl-hourly/3").status_code == 200
    assert served.get("/ping/etl-hourly/256").status_code == 400
    assert served.get("/ping/etl-hourly/bogus").status_code == 400
    pings = served.store.pings("etl-hourly")
    assert [(p["kind"], p["exit_code"]) for p in pings] == [
        ("fail", 3), ("fail", None), ("success", 0), ("start", None), ("success", None)]
    paired = pings[2]
    assert paired["rid"] == "r1" and paired["body"] == "done: 12 rows"
    assert paired["duration_seconds"] is not None and paired["remote_addr"] == "127.0.0.1"
    row = served.store.get("etl-hourly")
    assert row is not None and row.rule == "etl" and row.declared


def test_refusals_write_nothing(served: Served) -> None:
    assert served.get("/ping/nightly_backup", headers=AUTH).status_code == 200
    before = served.counts()
    assert served.get("/ping/unknown-job").status_code == 404
    assert served.get("/ping/Not A Slug").status_code == 404
    assert served.get("/ping/nightly_backup").status_code == 403  # token missing
    assert served.get("/ping/nightly_backup",
                      headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert served.get("/ping/nightly_backup/fail",
                      headers={"X-Ping-Token": "wrong"}).status_code == 403
    assert served.post("/ping/etl-hourly", content=b"x" * 101).status_code == 413
    # a chunked body (no Content-Length) is cut off at the limit, too
    chunks = iter([b"x" * 60, b"y" * 60])
    assert served.post("/ping/etl-hourly", content=chunks).status_code == 413
    assert served.counts() == before
    assert served.get("/ping/nightly_backup", headers={"X-Ping-Token": "s3cret-token"}
                      ).status_code == 200


def test_token_never_reaches_the_database(served: Served) -> None:
    served.post("/ping/nightly_backup", headers=AUTH, content=b"ok")
    for p in served.store.pings("nightly_backup"):
        assert "s3cret-token" not in repr(p)
    for e in served.timeline.events.list(limit=1000):
        assert "s3cret-token" not in repr(e)


def test_auto_create_on_first_ping_and_its_limit(served: Served) -> None:
    assert served.get("/ping/new-job").status_code == 404
    served.rules["rules"] = parse_rules(RULES + "  auto_create: {enabled: true, period: 2h, "
                                                "max_checks: 3}\n")
    time.sleep(2.1)  # the rules watcher looks for new rules every second
    assert served.get("/ping/new-job").status_code == 200
    row = served.store.get("new-job")
    assert row is not None and row.rule == "heartbeat" and not row.declared
    assert row.state.schedule.period == timedelta(hours=2)
    assert served.get("/ping/etl-hourly").status_code == 200  # declared: not counted against
    assert served.get("/ping/third").status_code == 200  # etl-hourly, new-job, third
    assert served.get("/ping/fourth").status_code == 429
    assert served.store.get("fourth") is None


def test_ping_log_is_bounded_per_check(served: Served) -> None:
    for _ in range(45):
        assert served.get("/ping/etl-hourly").status_code == 200
    kept = served.store.pings("etl-hourly", 1000)
    assert 5 <= len(kept) < 5 + 20  # pruned to the last 5 every 20 pings
    row = served.store.get("etl-hourly")
    assert row is not None and row.n_pings == 45


def test_fail_ping_alerts_at_once_and_success_resolves(served: Served) -> None:
    assert served.get("/ping/etl-hourly/1").status_code == 200
    alert = _wait_for(served, lambda: [a for a in served.timeline.alerts.list()
                                       if a.labels.get("problem") == "failed"])
    assert alert[0].rule == "etl" and alert[0].labels["heartbeat"] == "etl-hourly"
    assert served.get("/ping/etl-hourly").status_code == 200
    _wait_for(served, lambda: not served.timeline.alerts.list())
    kinds = [e["kind"] for e in served.timeline.events.list(rule="etl")]
    assert "firing" in kinds and "resolved" in kinds


def _wait_for(served: Served, probe: Callable[[], Any]) -> Any:
    for _ in range(300):
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("background evaluation did not happen")


def test_missing_ping_goes_down_via_the_sensor_logic_and_ping_recovers(served: Served) -> None:
    assert served.get("/ping/etl-hourly").status_code == 200
    rules = served.rules["rules"]
    now = utcnow()
    early = evaluate_due(rules, served.timeline, now=now + timedelta(minutes=64))
    assert early.outcomes == []  # deadline is 1h05m after the ping: never before
    late = evaluate_due(rules, served.timeline, now=now + timedelta(minutes=66))
    assert [o.observation.labels["problem"] for o in late.outcomes] == ["missing"]
    again = evaluate_due(rules, served.timeline, now=now + timedelta(minutes=67))
    assert again.outcomes == [] and again.evaluated == 0  # next look: REOBSERVE later
    assert served.get("/ping/etl-hourly").status_code == 200
    _wait_for(served, lambda: not served.timeline.alerts.list())


def test_client_ping_never_raises_and_reports(served: Served) -> None:
    assert client.ping("etl-hourly", base_url=served.base) is True
    assert client.ping("nightly_backup", "start", base_url=served.base,
                       token="s3cret-token", rid="x") is True
    assert client.ping("nightly_backup", base_url=served.base, token="nope") is False
    t0 = time.monotonic()
    assert client.ping("etl-hourly", base_url=f"http://127.0.0.1:{free_port()}",
                       timeout=0.5) is False  # nothing listens there
    assert time.monotonic() - t0 < 10
    assert client.ping("etl-hourly", base_url="not a url") is False
    with client.monitored("etl-hourly", base_url=served.base) as rid:
        assert rid
    with pytest.raises(ZeroDivisionError), client.monitored("etl-hourly",
                                                            base_url=served.base):
        _ = 1 / 0
    kinds = [p["kind"] for p in served.store.pings("etl-hourly")]
    assert kinds[:4] == ["fail", "start", "success", "start"]


def test_cli_ping(served: Served, capsys: pytest.CaptureFixture[str],
                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert main(["ping", "etl-hourly", "--url", served.base]) == 0
    assert main(["ping", "etl-hourly", "--exit-code", "2", "--url", served.base]) == 0
    body = tmp_path / "log.txt"
    body.write_text("tail of the log")
    assert main(["ping", "nightly_backup", "--url", served.base, "--token-env",
                 "HB_TEST_TOKEN", "--body-file", str(body)]) == 0
    assert main(["ping", "nope", "--url", served.base]) == 1
    assert main(["ping", "etl-hourly", "--exit-code", "300", "--url", served.base]) == 2
    monkeypatch.delenv("HB_TEST_TOKEN")
    assert main(["ping", "nightly_backup", "--url", served.base, "--token-env",
                 "HB_TEST_TOKEN"]) == 2
    err = capsys.readouterr().err
    assert "failed" in err and "HB_TEST_TOKEN is not set" in err
    assert served.store.pings("nightly_backup")[0]["body"] == "tail of the log"


def test_cli_heartbeat_list_pause_resume(served: Served, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(RULES)
    db = ["--database-url", served.timeline.url, "--rules", str(rules_file)]
    served.get("/ping/etl-hourly")
    assert main([*db, "heartbeat", "list"]) == 0
    assert "etl-hourly" in capsys.readouterr().out
    assert main([*db, "heartbeat", "pause", "etl-hourly"]) == 0
    row = served.store.get("etl-hourly")
    assert row is not None and str(row.state.status) == "paused"
    assert main([*db, "heartbeat", "resume", "etl-hourly"]) == 0
    assert main([*db, "heartbeat", "pause", "nope"]) == 2
    assert main([*db, "heartbeat", "pings", "etl-hourly"]) == 0
    assert "success" in capsys.readouterr().out


def test_slug_moving_to_another_rule_resolves_its_old_alert(db_url: str) -> None:
    """An auto-created check later declared in the file (or a renamed rule) must not
    leave its alert under the old rule firing forever; the new rule takes over."""
    from alert_jobs.families.heartbeat.check import Signal
    from alert_jobs.families.heartbeat.run import create_spec

    timeline = Timeline(db_url)
    store = HeartbeatStore(timeline)
    base = ("defaults: {receivers: [console]}\n"
            "heartbeats:\n  auto_create: {enabled: true, period: 1h, grace: 5m}\n")
    auto = parse_rules(base)
    now = utcnow()
    store.ping("job-x", Signal.SUCCESS, now - timedelta(hours=2), create=create_spec(auto))
    evaluate_due(auto, timeline, now=now)
    assert [(a.rule, a.labels["problem"]) for a in timeline.alerts.list()] == [
        ("heartbeat", "missing")]
    declared = parse_rules(base + "checks:\n  heartbeat:\n"
                                  "    - {name: job_x, slug: job-x, period: 1h, grace: 5m}\n")
    evaluate_due(declared, timeline, now=now + timedelta(seconds=30))
    assert [(a.rule, a.labels["problem"]) for a in timeline.alerts.list()] == [("job_x", "missing")]
    renamed = parse_rules(base + "checks:\n  heartbeat:\n"
                                 "    - {name: job_y, slug: job-x, period: 1h, grace: 5m}\n")
    evaluate_due(renamed, timeline, now=now + timedelta(seconds=60))
    assert [(a.rule, a.labels["problem"]) for a in timeline.alerts.list()] == [("job_y", "missing")]
    store.ping("job-x", Signal.SUCCESS, now + timedelta(seconds=70))
    evaluate_due(renamed, timeline, now=now + timedelta(seconds=90))
    assert timeline.alerts.list() == []
    timeline.dispose()


def test_nul_bytes_in_body_or_rid_never_lose_the_ping(served: Served) -> None:
    """A binary log tail (or a %00 in the run id) is stored, not a 500: PostgreSQL text
    cannot hold NUL, and losing the job's success ping would page for nothing."""
    assert served.get("/ping/etl-hourly/start?rid=a%00b").status_code == 200
    response = served.post("/ping/etl-hourly/0?rid=a%00b", content=b"tail\x00\xff end")
    assert response.status_code == 200
    (finish, start) = served.store.pings("etl-hourly")[:2]
    assert finish["body"] == "tail\ufffd\ufffd end" and finish["rid"] == start["rid"]
    assert finish["duration_seconds"] is not None  # the finish paired with its start


def test_monitored_passes_the_token_and_keeps_the_jobs_own_exception(served: Served
                                                                     ) -> None:
    """``monitored`` takes only what it can forward: a stray ``body=``/``rid=`` used to
    pass silently and then replace the job's own exception with a TypeError."""
    with pytest.raises(TypeError):
        client.monitored("nightly_backup", body="x").__enter__()  # type: ignore[call-arg]
    with pytest.raises(KeyError, match="the job's own"), client.monitored(
            "nightly_backup", base_url=served.base, token="s3cret-token", timeout=5):
        raise KeyError("the job's own")
    kinds = [(p["kind"], p["body"][:8]) for p in served.store.pings("nightly_backup")]
    assert kinds == [("fail", "KeyError"), ("start", "")]


def test_unset_token_variable_refuses_pings_and_names_the_variable(
        served: Served, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("HB_TEST_TOKEN")
    before = served.counts()
    with caplog.at_level("ERROR", logger="alert_jobs.ping"):
        assert served.get("/ping/nightly_backup", headers=AUTH).status_code == 403
    assert served.counts() == before
    assert "HB_TEST_TOKEN is not set" in caplog.text and "s3cret" not in caplog.text


def test_cli_ping_with_an_unreadable_body_file_still_pings(
        served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``job.sh; alert-jobs ping job --body-file job.log``: a missing log must not turn
    the job's ping into a traceback (and the check into a false "down")."""
    missing = tmp_path / "no-such.log"
    assert main(["ping", "etl-hourly", "--exit-code", "0", "--url", served.base,
                 "--body-file", str(missing)]) == 0
    assert f"cannot read --body-file {missing}" in capsys.readouterr().err
    (latest, *_) = served.store.pings("etl-hourly")
    assert latest["kind"] == "success" and latest["body"] == ""


def test_resume_refuses_a_check_that_is_not_paused(
        served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``resume`` resets a check to *new* (which never alerts): on a down check it used to
    resolve the alert and silence a dead job until its next ping."""
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(RULES)
    db = ["--database-url", served.timeline.url, "--rules", str(rules_file)]
    assert served.get("/ping/etl-hourly/fail").status_code == 200
    assert main([*db, "heartbeat", "resume", "etl-hourly"]) == 2
    assert "is not paused" in capsys.readouterr().err
    row = served.store.get("etl-hourly")
    assert row is not None and row.state.last_ping is not None  # untouched
    assert str(row.state.status) == "down"


def test_a_down_check_is_observed_again_so_repeats_and_unmutes_are_sent(db_url: str
                                                                       ) -> None:
    """The engine re-sends a firing alert after ``repeat_interval``, and tells of one whose
    rule was disabled when it fired once re-enabled, only when it observes it again; a
    down row used to leave the due index for good, so neither ever happened."""
    from alert_jobs.families.heartbeat.check import Signal

    timeline = Timeline(db_url)
    rules = parse_rules("defaults: {receivers: [console]}\nchecks:\n  heartbeat:\n"
                        "    - {name: job, period: 1h, grace: 5m, repeat_interval: 10m}\n"
                        "    - {name: quiet, period: 1h, grace: 5m}\n")
    t0 = utcnow()
    evaluate_due(rules, timeline, now=t0 - timedelta(hours=3))
    for slug in ("job", "quiet"):
        HeartbeatStore(timeline).ping(slug, Signal.SUCCESS, t0 - timedelta(hours=2))
    timeline.rule_settings.set_disabled("quiet", True, by="test")

    def sent(rule: str) -> int:
        return len([r for r in timeline.outbox.rows() if r["rule"] == rule])

    evaluate_due(rules, timeline, now=t0)
    assert (sent("job"), sent("quiet")) == (1, 0)  # quiet's alert fired muted
    timeline.rule_settings.set_disabled("quiet", False, by="test")
    evaluate_due(rules, timeline, now=t0 + timedelta(minutes=1))  # not looked at yet
    assert (sent("job"), sent("quiet")) == (1, 0)
    evaluate_due(rules, timeline, now=t0 + timedelta(minutes=6))
    assert (sent("job"), sent("quiet")) == (1, 1)  # quiet: no longer muted
    evaluate_due(rules, timeline, now=t0 + timedelta(minutes=12))
    assert sent("job") == 2  # repeat_interval elapsed
    timeline.dispose()
