"""A deliverer killed mid-batch costs one short lease, not the batch (issue #16).

Real parts: a real ``alert-jobs deliver`` process killed with SIGKILL, a real slow HTTP
receiver on 127.0.0.1 that counts each message it gets, SQLite and PostgreSQL.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.notify.contract import sample_group
from alert_jobs.runtime.batch import LEASE_ENV, delivery_lease
from alert_jobs.runtime.commands import UsageError
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import Timeline, utcnow
from tests.conftest import in_memory_instance, make_receiver

MESSAGES = 200
LEASE_S = 2.0  # short, so the test waits seconds; the default is 30


class SlowReceiver:
    """A webhook endpoint on 127.0.0.1 that answers 200 after ``delay`` seconds and
    counts every request that reached it, per ``dedup_key`` (counted on arrival: a
    message whose sender died before the answer still reached the receiver)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.hits: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits[json.loads(body)["dedup_key"]] += 1
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def total(self) -> int:
        with self.lock:
            return sum(self.hits.values())


def serving(delay: float) -> Iterator[SlowReceiver]:
    """A :class:`SlowReceiver` answering after ``delay`` seconds, served until the end."""
    receiver = SlowReceiver(delay=delay)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    yield from serving(0.1)


def queue(timeline: Timeline, n: int, tag: str = "m") -> list[str]:
    keys = [f"hook:{tag}:{i:04d}" for i in range(n)]
    for key in keys:
        assert timeline.outbox.enqueue("hook", "firing", key, dict(sample_group(dedup_key=key)))
    return keys


def deliver_process(rules: Path, db_url: str) -> subprocess.Popen[str]:
    """``alert-jobs deliver`` as its own process, with the test's short lease."""
    env = {**os.environ, LEASE_ENV: f"{LEASE_S:g}"}
    return subprocess.Popen([sys.executable, "-m", "alert_jobs.cli.main", "--rules", str(rules),
                             "--database-url", db_url, "deliver"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_mid_batch_costs_one_lease_and_loses_nothing(
        db_url: str, slow_receiver: SlowReceiver, tmp_path: Path) -> None:
    slow_receiver.delay = 0.2  # 13 waves of 16: the batch takes 2.6 s, room for the kill
    rules = tmp_path / "alerts.yaml"
    rules.write_text("receivers:\n  - {name: console, type: console}\n  - {name: hook, type: "
                     f"webhook, url: '{slow_receiver.url}', timeout: 10s}}\n")
    timeline = Timeline(db_url)
    keys = queue(timeline, MESSAGES)

    proc = deliver_process(rules, db_url)
    give_up = time.monotonic() + 120
    # Kill once three waves of 16 have reached the receiver and the first outcomes are
    # recorded: mid-batch (200 take ~2.6 s). A run that recorded nothing before the end
    # of its batch (the old code) never gets here and fails below.
    while ((slow_receiver.total() < 48 or timeline.outbox.backlog()["queued"] == MESSAGES)
           and proc.poll() is None and time.monotonic() < give_up):
        time.sleep(0.005)
    assert proc.poll() is None, f"deliver ended before the kill: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    killed_at = utcnow()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    reached = slow_receiver.total()
    assert reached < MESSAGES, "the kill landed after the batch: nothing to recover"

    rows = timeline.outbox.rows()
    marked = [r for r in rows if r["delivered_at"] is not None]
    unsent = [r for r in rows if r["delivered_at"] is None]
    # Marked as each send finished, not after the batch: the dead run's work is kept.
    assert 0 < len(marked) < MESSAGES
    # Leased for what was claimed (renewed while alive), not for the batch limit: every
    # row left behind is free again within one lease of the kill (was: 1,020 s).
    latest = max(r["claimed_until"] for r in unsent)
    assert latest <= killed_at + timedelta(seconds=LEASE_S + 0.5)
    # The retry sensor's count: nothing while the dead run's lease is live, all of them
    # (no longer hidden) once it ran out, so the next sensor tick launches a delivery.
    earliest = min(r["claimed_until"] for r in unsent)
    assert timeline.outbox.due_count(now=earliest - timedelta(milliseconds=1)) == 0
    assert timeline.outbox.due_count(now=latest + timedelta(milliseconds=1)) == len(unsent)

    while utcnow() <= latest:  # the next sensor tick after the lease ran out
        time.sleep(0.05)
    rerun = deliver_process(rules, db_url)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err[-2000:]
    assert f"sent {len(unsent)}," in out

    assert timeline.outbox.rows(pending_only=True) == [], "every message delivered"
    assert set(slow_receiver.hits) == set(keys), "0 lost"
    assert max(slow_receiver.hits.values()) <= 2, "at most one duplicate per message"
    duplicates = sum(n - 1 for n in slow_receiver.hits.values())
    assert duplicates <= reached - len(marked), "only messages in flight at the kill repeat"
    timeline.dispose()


def test_a_slow_live_deliverer_keeps_its_rows(db_url: str, slow_receiver: SlowReceiver) -> None:
    """Sends slower than the lease: renewal keeps them from a concurrent deliverer."""
    slow_receiver.delay = 0.8
    lease = timedelta(seconds=1)
    timeline, other = Timeline(db_url), Timeline(db_url)  # two workers, two engines
    keys = queue(timeline, 3)
    hook = {"hook": make_receiver("webhook", name="hook", url=slow_receiver.url,
                                  timeout="10s")}
    reports: list[Any] = []
    slow = threading.Thread(target=lambda: reports.append(
        deliver_due(timeline, hook, concurrency=1, lease=lease)))
    slow.start()  # one at a time: 3 × 0.8 s = 2.4 s, more than twice the lease
    while slow_receiver.total() == 0 and slow.is_alive():  # it has claimed all three
        time.sleep(0.01)
    stolen = 0
    while slow.is_alive():
        stolen += deliver_due(other, hook, lease=lease).sent
        time.sleep(0.1)
    slow.join()
    assert stolen == 0 and reports[0].sent == 3
    assert all(slow_receiver.hits[k] == 1 for k in keys) and len(slow_receiver.hits) == 3

    # Positive control: a claim that is not renewed is taken once its lease runs out.
    (late,) = queue(timeline, 1, tag="late")
    assert len(timeline.outbox.claim_due(lease=lease)) == 1
    assert deliver_due(other, hook, lease=lease).sent == 0, "lease live: left alone"
    time.sleep(lease.total_seconds() + 0.1)
    assert deliver_due(other, hook, lease=lease).sent == 1
    assert slow_receiver.hits[late] == 1
    timeline.dispose()
    other.dispose()


def test_renewal_reports_rows_taken_by_another_worker(db_url: str) -> None:
    timeline = Timeline(db_url)
    queue(timeline, 2)
    t0 = utcnow()
    mine = timeline.outbox.claim_due(now=t0, lease=timedelta(seconds=5))
    assert timeline.outbox.renew(mine, lease=timedelta(seconds=5),
                                 now=t0 + timedelta(seconds=2)) == {i.id for i in mine}
    # This worker stalled past its lease; another one claimed the rows.
    later = t0 + timedelta(seconds=30)
    theirs = timeline.outbox.claim_due(now=later, lease=timedelta(seconds=5))
    assert {i.id for i in theirs} == {i.id for i in mine}
    assert timeline.outbox.renew(mine, lease=timedelta(seconds=5), now=later) == set()
    assert timeline.outbox.record([]) == set()
    timeline.outbox.mark_delivered(mine[0], now=later)  # too late: not this worker's
    assert all(r["delivered_at"] is None for r in timeline.outbox.rows())
    timeline.outbox.mark_delivered(theirs[0], now=later)
    assert sum(r["delivered_at"] is not None for r in timeline.outbox.rows()) == 1
    timeline.dispose()


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf", "100000"])
def test_bad_lease_setting_is_refused_clearly(raw: str) -> None:
    with pytest.raises(UsageError, match=f"{LEASE_ENV} must be a number of seconds.*{raw!r}"):
        delivery_lease({LEASE_ENV: raw})


def test_lease_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert delivery_lease({}) == timedelta(seconds=30)
    assert delivery_lease({LEASE_ENV: " 45 "}) == timedelta(seconds=45)
    from alert_jobs.cli.main import main

    slow_receiver.delay = 0.2  # 13 waves of 16: the batch takes 2.6 s, room for the kill
    rules = tmp_path / "alerts.yaml"
    rules.write_text("receivers:\n  - {name: console, type: console}\n")
    db = ["--rules", str(rules), "--database-url", f"sqlite:///{tmp_path / 'a.db'}"]
    timeline = Timeline(f"sqlite:///{tmp_path / 'a.db'}")
    timeline.outbox.enqueue("console", "firing", "k1", dict(sample_group(dedup_key="k1")))
    monkeypatch.setenv(LEASE_ENV, "soon")
    assert main([*db, "deliver"]) == 2
    assert f"{LEASE_ENV} must be a number of seconds" in capsys.readouterr().err
    monkeypatch.setenv(LEASE_ENV, "5")
    assert main([*db, "deliver"]) == 0
    assert "sent 1," in capsys.readouterr().out
    timeline.dispose()


def test_retry_sensor_launches_a_run_for_a_dead_workers_rows(tmp_path: Path) -> None:
    import dagster as dg

    from alert_jobs.runtime.resources import AlertJobsResource
    from alert_jobs.sensors.outbox import outbox_retry_sensor

    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(db_url)
    queue(timeline, 3)
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(tmp_path / "none.yaml"),
                                                 database_url=db_url)}
    with in_memory_instance() as instance:
        def tick() -> dg.SensorResult | dg.SkipReason:
            return outbox_retry_sensor(dg.build_sensor_context(instance=instance,
                                                               resources=resources))

        timeline.outbox.claim_due(lease=timedelta(seconds=1))  # then the worker dies
        skipped = tick()
        assert isinstance(skipped, dg.SkipReason)
        assert skipped.skip_message == "nothing due; 3 being sent by a live delivery run"
        time.sleep(1.1)  # the dead worker's lease runs out; nobody renews it
        launched = tick()
        assert isinstance(launched, dg.SensorResult) and len(launched.run_requests or []) == 1
    timeline.dispose()
