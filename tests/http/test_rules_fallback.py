"""A broken rules file never stops pings or deliveries (issue #16, point 4).

Real processes: ``alert-jobs serve`` and ``alert-jobs deliver`` as subprocesses, a real
Dagster run; the last good copy is the one the Dagster side keeps under $DAGSTER_HOME.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from alert_jobs.config import last_good_path, load_rules_or_last_good
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.delivery_job import deliver_outbox_job
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow
from tests.conftest import HttpReceiver, free_port

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
defaults: {receivers: [console]}
checks:
  heartbeat:
    - {name: nightly_backup, period: 1d, grace: 1h}
"""
BROKEN = GOOD + "    - {name: etl, period: often}\nbogus_key: 1\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return tmp_path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "alert_jobs.cli.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "ALERT_JOBS_LINK_SECRET": "x" * 24,
            "ALERT_JOBS_PING_WRITE_TIMEOUT": "60"}  # a loaded CI machine must not 503


@pytest.fixture
def rules(home: Path) -> Path:
    """A rules file that was good once (so a last good copy exists), now broken."""
    path = home / "alerts.yaml"
    path.write_text(GOOD)
    assert not load_rules_or_last_good(path).from_last_good  # saves the copy
    assert last_good_path(path).exists()
    path.write_text(BROKEN)
    return path


class Serve:
    def __init__(self, proc: subprocess.Popen[str], base: str, err_path: Path):
        self.proc, self.base, self.err_path = proc, base, err_path

    def stderr(self) -> str:
        return self.err_path.read_text()


@pytest.fixture
def serve(db_url: str, rules: Path, home: Path) -> Iterator[Serve]:
    port = free_port()
    err_path = home / "serve.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            _cli("--rules", str(rules), "--database-url", db_url, "serve", "--port",
                 str(port)), env=_env(), stdout=subprocess.DEVNULL, stderr=err, text=True)
    served = Serve(proc, f"http://127.0.0.1:{port}", err_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, served.stderr()
            try:
                if httpx.get(served.base + "/healthz", timeout=5).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, served.stderr()
            time.sleep(0.1)
        yield served
    finally:
        proc.kill()
        proc.wait()


def _wait(probe, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not probe():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_serve_on_a_broken_file_uses_the_last_good_rules_and_picks_up_the_fix(
        serve: Serve, rules: Path, db_url: str) -> None:
    err = serve.stderr()
    assert "WARNING: rules file" in err and "last good copy" in err
    assert "bogus_key" in err and "period" in err  # every problem, named
    health = httpx.get(serve.base + "/healthz").json()
    assert health["rules"] == "fallback" and health["ok"] is True
    assert health["rules_problems"] == 2  # counted; named in the log, not on the wire
    for _ in range(5):
        assert httpx.get(serve.base + "/ping/nightly_backup").status_code == 200
    timeline = Timeline(db_url)
    store = HeartbeatStore(timeline)
    row = store.get("nightly_backup")
    assert row is not None and row.n_pings == 5 and len(store.pings("nightly_backup")) == 5
    # the broken file's new check is not known yet: the last good rules are in use
    assert httpx.get(serve.base + "/ping/etl").status_code == 404
    rules.write_text(GOOD + "    - {name: etl, period: 1h}\n")  # fixed, with a new check
    _wait(lambda: httpx.get(serve.base + "/healthz").json()["rules"] == "ok")
    assert "rules_problems" not in httpx.get(serve.base + "/healthz").json()
    assert httpx.get(serve.base + "/ping/etl").status_code == 200
    assert store.get("etl") is not None
    # broken again while running: the good rules stay, healthz says fallback
    rules.write_text(BROKEN)
    _wait(lambda: httpx.get(serve.base + "/healthz").json()["rules"] == "fallback")
    assert httpx.get(serve.base + "/ping/etl").status_code == 200
    assert serve.proc.poll() is None
    timeline.dispose()


def test_serve_without_a_last_good_copy_fails_clearly(home: Path, db_url: str) -> None:
    path = home / "alerts.yaml"
    path.write_text(BROKEN)  # never good: nothing to fall back to
    done = subprocess.run(_cli("--rules", str(path), "--database-url", db_url, "serve",
                               "--port", str(free_port())),
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "bogus_key" in done.stderr and "no last good copy" in done.stderr
    assert "Traceback" not in done.stderr


def _queue_a_message(db_url: str, hook_url: str, rules: Path) -> None:
    """One firing alert whose notification waits in the outbox for ``hook``."""
    good = GOOD.replace("defaults: {receivers: [console]}",
                        f"defaults: {{receivers: [hook]}}\nreceivers:\n"
                        f"  - {{name: hook, type: webhook, url: '{hook_url}'}}")
    rules.write_text(good)
    assert not load_rules_or_last_good(rules).from_last_good
    rules.write_text(good + "bogus_key: 1\n")
    Timeline(db_url).alerts.process(
        Observation("dead_letters", Status.ALERT, {}, 1.0, summary="Expected 0, got 1"),
        RulePolicy(rule="dead_letters", receivers=("hook",)), now=utcnow())


def test_deliver_on_a_broken_file_delivers_with_the_last_good_rules(
        home: Path, db_url: str, http_receiver: HttpReceiver) -> None:
    rules = home / "alerts.yaml"
    _queue_a_message(db_url, http_receiver.url, rules)
    done = subprocess.run(_cli("--rules", str(rules), "--database-url", db_url, "deliver"),
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "WARNING: rules file" in done.stderr and "bogus_key" in done.stderr
    assert "delivering on its last good copy" in done.stderr
    assert len(http_receiver.requests) == 1  # the message went out
    assert "dead_letters" in http_receiver.requests[0].body.decode()


def test_deliver_without_a_last_good_copy_exits_2_and_sends_nothing(
        home: Path, db_url: str, http_receiver: HttpReceiver) -> None:
    rules = home / "alerts.yaml"
    _queue_a_message(db_url, http_receiver.url, rules)
    last_good_path(rules).unlink()
    done = subprocess.run(_cli("--rules", str(rules), "--database-url", db_url, "deliver"),
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "bogus_key" in done.stderr and "no last good copy" in done.stderr
    assert http_receiver.requests == []
    assert [r for r in Timeline(db_url).outbox.rows() if r["delivered_at"] is None]


def _warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id)
            if e.level == logging.WARNING]


def test_a_dagster_run_on_the_last_good_rules_says_so_in_its_log(
        home: Path, http_receiver: HttpReceiver) -> None:
    rules = home / "alerts.yaml"
    db = f"sqlite:///{home / 'alerts.db'}"
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(rules), database_url=db)}
    with dg.instance_for_test() as instance:  # its own DAGSTER_HOME: the copy lands there
        _queue_a_message(db, http_receiver.url, rules)
        broken = deliver_outbox_job.execute_in_process(resources=resources,
                                                       instance=instance)
        assert broken.success and len(http_receiver.requests) == 1
        said = [w for w in _warnings(instance, broken.run_id) if "LAST GOOD COPY" in w]
        assert len(said) == 1 and "bogus_key" in said[0] and str(rules) in said[0]
        rules.write_text(last_good_path(rules).read_text())  # fixed: no such warning
        fixed = deliver_outbox_job.execute_in_process(resources=resources,
                                                      instance=instance)
        assert fixed.success
        assert not [w for w in _warnings(instance, fixed.run_id) if "LAST GOOD" in w]
