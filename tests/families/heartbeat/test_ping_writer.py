"""The batching ping writer: many concurrent pings, few transactions, nothing lost; a
2xx answer only after the commit (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from alert_jobs.config import parse_rules
from alert_jobs.families.heartbeat import http as ping_http
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.ping_writer import PingWriter
from alert_jobs.families.heartbeat.run import create_spec
from alert_jobs.families.heartbeat.store import HeartbeatStore, Ping, TooManyChecksError
from alert_jobs.http.app import create_app
from alert_jobs.store import Timeline, utcnow
from tests.conftest import served_app

CHECKS = "".join(f"    - {{name: job_{i}, period: 1h}}\n" for i in range(20))
RULES = "defaults: {receivers: [console]}\nchecks:\n  heartbeat:\n" + CHECKS


@pytest.fixture
def timeline(db_url: str) -> Iterator[Timeline]:
    timeline = Timeline(db_url)
    yield timeline
    timeline.dispose()


def test_concurrent_pings_are_batched_and_all_stored(timeline: Timeline) -> None:
    store = HeartbeatStore(timeline)
    writer = PingWriter(store).start()
    spec = create_spec(parse_rules("heartbeats:\n  auto_create: {enabled: true, period: 1h}\n"))
    futures = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for i in range(50):
            f = writer.submit(Ping(f"job-{(k + i) % 7}", Signal.SUCCESS, utcnow(),
                                   create=spec, keep=1000))
            with lock:
                futures.append(f)
            f.result(timeout=60)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    assert all(f.result().kind == "success" for f in futures)  # type: ignore[union-attr]
    rows = store.rows()
    assert len(rows) == 7 and sum(r.n_pings for r in rows) == 800
    assert sum(len(store.pings(r.state.slug, 1000)) for r in rows) == 800
    assert writer.written == 800 and writer.batches < 800  # batching happened


def test_a_refused_ping_does_not_fail_its_batch(timeline: Timeline) -> None:
    store = HeartbeatStore(timeline)
    spec = create_spec(parse_rules(
        "heartbeats:\n  auto_create: {enabled: true, period: 1h, max_checks: 1}\n"))
    now = utcnow()
    results = store.ping_many([
        Ping("first", Signal.SUCCESS, now, create=spec),
        Ping("second", Signal.SUCCESS, now, create=spec),  # over max_checks
        Ping("unknown", Signal.SUCCESS, now),  # no create: not found
        Ping("first", Signal.START, now + timedelta(seconds=1), rid="r", create=spec),
        Ping("first", Signal.SUCCESS, now + timedelta(seconds=3), rid="r", create=spec),
    ])
    assert isinstance(results[1], TooManyChecksError) and results[2] is None
    kinds = [r.kind for r in results if r is not None and not isinstance(r, Exception)]
    assert kinds == ["success", "start", "success"]
    first = store.get("first")
    assert first is not None and first.n_pings == 3
    assert first.state.last_duration == timedelta(seconds=2)  # paired within the batch
    assert store.get("second") is None


def test_a_ping_cancelled_while_queued_is_never_written(tmp_path: Path) -> None:
    timeline = Timeline(f"sqlite:///{tmp_path / 'a.db'}")
    store = HeartbeatStore(timeline)
    spec = create_spec(parse_rules("heartbeats:\n  auto_create: {enabled: true}\n"))
    store.ping("warm", Signal.SUCCESS, utcnow(), create=spec)
    writer = PingWriter(store).start()
    with timeline.engine.connect() as blocker:  # holds the write lock: the writer waits
        tx = blocker.begin()  # BEGIN IMMEDIATE (the timeline's SQLite engine)
        taken = writer.submit(Ping("taken", Signal.SUCCESS, utcnow(), create=spec))
        while not taken.running():
            pass
        queued = writer.submit(Ping("queued", Signal.SUCCESS, utcnow(), create=spec))
        assert queued.cancel()  # the handler gave up on it (its 503)
        tx.rollback()
    assert taken.result(timeout=60) is not None
    writer.stop()
    assert store.get("taken") is not None and store.get("queued") is None
    timeline.dispose()


def test_http_answers_503_when_the_write_does_not_finish_in_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeline = Timeline(f"sqlite:///{tmp_path / 'a.db'}")
    rules = parse_rules(RULES)
    with served_app(create_app(lambda: timeline, lambda: rules)) as base:
        assert httpx.get(f"{base}/ping/job_1", timeout=30).status_code == 200
        monkeypatch.setattr(ping_http, "WRITE_TIMEOUT_SECONDS", 0.5)
        with timeline.engine.connect() as blocker:
            tx = blocker.begin()  # BEGIN IMMEDIATE: holds the write lock
            slow = httpx.get(f"{base}/ping/job_2", timeout=30)
            assert slow.status_code == 503 and "retry" in slow.text
            tx.rollback()
        monkeypatch.setattr(ping_http, "WRITE_TIMEOUT_SECONDS", 30.0)
        ok = httpx.get(f"{base}/ping/job_3", timeout=60)
        assert ok.status_code == 200
    store = HeartbeatStore(timeline)
    assert store.get("job_1") is not None and store.get("job_3") is not None
    with timeline.read() as conn:  # every 2xx ping is in the log
        n = conn.execute(sa.text("SELECT COUNT(*) FROM alert_heartbeat_pings "
                                 "WHERE slug IN ('job_1', 'job_3')")).scalar()
    assert n == 2
    timeline.dispose()


def test_the_ping_writer_ends_with_the_server(tmp_path: Path) -> None:
    """The writer thread is the server's: its shutdown ends it (nothing left behind in a
    process that builds several apps, e.g. tests or an embedding)."""
    timeline = Timeline(f"sqlite:///{tmp_path / 'a.db'}")
    rules = parse_rules(RULES)
    before = {t for t in threading.enumerate() if t.name == "ping-writer"}
    with served_app(create_app(lambda: timeline, lambda: rules)) as base:
        assert httpx.get(f"{base}/ping/job_1", timeout=30).status_code == 200
        ours = {t for t in threading.enumerate() if t.name == "ping-writer"} - before
        assert len(ours) == 1 and next(iter(ours)).is_alive()  # positive control
    writer = next(iter(ours))
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert HeartbeatStore(timeline).get("job_1") is not None
    timeline.dispose()
