"""Real Dagster and ``alert-jobs`` processes for tests that run the system as deployed.

A test that starts ``dagster-daemon``, ``dagster-webserver``, a gRPC code server or
``alert-jobs serve`` as separate processes needs the same few things: each process in
its own session (so a SIGKILL of its group takes its children, a run worker or a code
server, with it), its output in a log file whose tail goes into the failure message,
waits that poll and fail early when a process dies, and a local webhook receiver that
records when each notification arrived. They live here so that the tests share them
(``tests/test_topology.py``; ``tests/test_chaos.py`` has its own older copies of
:func:`stop`, :func:`webserver_up` and the arrival receiver).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest


def tool(name: str) -> str:
    """A console script of this venv (``dagster``, ``alert-jobs`` …) by absolute path."""
    return str(Path(sys.executable).with_name(name))


# ----- processes with logs ----------------------------------------------------------


@dataclass
class Processes:
    """Named processes started in ``folder`` with ``env``; ``<name>.log`` holds each one's
    output (appended across restarts, a marker line between them). A killed process
    leaves ``procs`` (it is expected to be dead) but its log stays in the tails."""

    folder: Path
    env: Mapping[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every process ever started
    #: extra text for failure messages (the outbox, say), computed when a wait fails
    context: Callable[[], str] = lambda: ""

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path(name).open("ab") as log:
            if log.tell():
                log.write(f"\n----- restarted at {time.strftime('%H:%M:%S')} -----\n".encode())
                log.flush()
            proc = subprocess.Popen(argv, env=dict(self.env), cwd=self.folder, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        if name not in self.names:
            self.names.append(name)
        return proc

    def tail(self, name: str, chars: int = 2500) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def tails(self, chars: int = 2500) -> str:
        """Every process's log tail, then the test's own context."""
        parts = [f"----- {name} log tail -----\n{self.tail(name, chars)}" for name in self.names]
        extra = self.context()
        return "\n".join(parts + ([extra] if extra else []))

    def kill(self, name: str) -> None:
        """SIGKILL the process's whole session (its run workers die with it), as a crash
        or an OOM kill of its container would."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, name: str) -> None:
        stop_process(self.procs[name], timeout=20)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def check_alive(self, doing: str) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while {doing}\n"
                            f"{self.tails()}")

    def wait_for(self, what: str, done: Callable[[], Any], timeout: float,
                 every: float = 0.5) -> Any:
        """Poll ``done()`` until it returns something truthy (returned); fail with every
        log tail after ``timeout`` seconds, or at once when a process exits."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive(f"waiting for {what}")
            result = done()
            if result:
                return result
            if time.monotonic() >= deadline:
                pytest.fail(f"not within {timeout:.0f} s: {what}\n{self.tails()}")
            time.sleep(every)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def webserver_up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/server_info", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def graphql(base: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    """The ``data`` of a query to the webserver's GraphQL API (errors raise)."""
    response = httpx.post(f"{base}/graphql", json={"query": query,
                                                   "variables": dict(variables or {})},
                          timeout=60)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


# ----- a webhook receiver that records arrivals --------------------------------------


@dataclass
class Page:
    at: float  # epoch seconds of arrival
    alertname: str
    status: str
    labels: dict[str, str]
    dedup_key: str


@dataclass
class ArrivalReceiver:
    """Alertmanager-webhook bodies posted to ``url``: one :class:`Page` per alert in
    each, with the time it arrived."""

    url: str = ""
    pages: list[Page] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, alertname: str, status: str = "firing") -> list[Page]:
        with self.lock:
            return [p for p in self.pages if p.alertname == alertname and p.status == status]

    def first(self, alertname: str, since: float = 0.0,
              labels: dict[str, str] | None = None) -> Page | None:
        """The first firing page of ``alertname`` since ``since`` (with ``labels``)."""
        want = labels or {}
        with self.lock:
            return next((p for p in self.pages if p.alertname == alertname
                         and p.status == "firing" and p.at >= since
                         and all(p.labels.get(k) == v for k, v in want.items())), None)

    def seen(self) -> list[str]:
        with self.lock:
            return [f"{p.alertname} {p.status} {p.labels}" for p in self.pages]


@contextlib.contextmanager
def arrival_receiver() -> Iterator[ArrivalReceiver]:
    receiver = ArrivalReceiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            at = time.time()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with receiver.lock:
                for alert in body.get("alerts", []):
                    labels = alert.get("labels", {})
                    receiver.pages.append(Page(at, labels.get("alertname", ""),
                                               alert.get("status", ""), labels,
                                               str(body.get("dedup_key", ""))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL the process group (what it
    started: a daemon's code servers and run workers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
