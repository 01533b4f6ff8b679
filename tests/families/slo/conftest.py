"""A real Prometheus for the SLO family's Prometheus source, scraping counters we control.

``prometheus`` (one per test session and xdist worker) starts Debian's ``prometheus``
binary on a free 127.0.0.1 port with a fresh TSDB, scraping a tiny local ``/metrics``
target every second. The target's counters grow at rates the tests set, as integer
counters do in a real service: ``value(t) = floor(∫ rate dt)``, so a test knows how many
events happened between any two moments (:meth:`CounterTarget.value_at`).

Prometheus is ready in well under a second, but its scrape manager applies discovered
targets on a fixed 5-second tick, so the first sample lands about 5 s after start. The
fixture does not wait for it: tests that need scraped history call
:meth:`PrometheusServer.wait_history`, and tests that need none (errors, timeouts) run
meanwhile.

Where there is no binary (``prometheus`` on PATH or ``/usr/bin/prometheus``), a
``PROMETHEUS_URL`` is used instead; such a server does not scrape our target, so the
tests that need the counters skip (``PrometheusServer.target`` is None). With neither,
every test that uses the fixture skips with the reason.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import free_port
from tests.processes import stop_process

#: Seconds between scrapes (and rule evaluations): Prometheus' smallest usual value.
SCRAPE_INTERVAL = 1.0

SKIP_REASON = ("Debian package prometheus is not installed; `apt-get install prometheus` "
               "or set PROMETHEUS_URL")


def prometheus_binary() -> str | None:
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None


# ----- the scrape target ---------------------------------------------------------------


@dataclass
class Series:
    """A counter whose rate changes at given moments: ``[(since, per_second), …]``."""

    name: str
    labels: str  # 'code="200"'
    segments: list[tuple[float, float]]

    def value_at(self, moment: float) -> int:
        """Events counted up to ``moment`` (unix seconds), as the target exposes them."""
        events = 0.0
        for i, (since, rate) in enumerate(self.segments):
            until = self.segments[i + 1][0] if i + 1 < len(self.segments) else math.inf
            if moment > since:
                events += rate * (min(moment, until) - since)
        return math.floor(events + 1e-9)


@dataclass
class CounterTarget:
    """``/metrics`` in Prometheus' text format, computed from the clock on each scrape."""

    url: str = ""
    series: dict[str, Series] = field(default_factory=dict)
    scrapes: int = 0
    first_request: float | None = None
    scheduled: float = 0.0  # the moment the last scrape stood for
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scrape_moment(self, now: float) -> float:
        """The moment a scrape arriving at ``now`` stands for: one interval after the
        last one's, the first at its arrival.

        Prometheus stamps a sample with its scrape's start. This server is a thread of
        the test process; while another test there holds the GIL (a long C call) a
        request can wait most of a second, and a value computed at arrival is not the
        value at the sample's timestamp: ``increase()`` over 3 s counted 82 events for
        132 in a CI run. Counting to the scheduled moment keeps every sample exact for
        any lateness under an interval (a constant offset from the first arrival cancels
        out of every difference); a scrape that arrives more than an interval after its
        moment means Prometheus skipped one, and the count restarts from the clock."""
        with self.lock:
            if self.first_request is None:
                self.first_request = self.scheduled = now
            else:
                self.scheduled += SCRAPE_INTERVAL
                if now - self.scheduled >= SCRAPE_INTERVAL:
                    steps = round((now - self.first_request) / SCRAPE_INTERVAL)
                    self.scheduled = self.first_request + steps * SCRAPE_INTERVAL
            return self.scheduled

    def counter(self, name: str, labels: str, rate: float, *, since: float | None = None
                ) -> Series:
        """Add a counter growing at ``rate`` per second from ``since`` (now)."""
        key = f"{name}{{{labels}}}"
        with self.lock:
            self.series[key] = Series(name, labels, [(since or time.time(), rate)])
            return self.series[key]

    def set_rate(self, series: Series, rate: float, *, since: float | None = None) -> None:
        with self.lock:
            series.segments.append((since or time.time(), rate))

    def exposition(self, now: float) -> str:
        lines: list[str] = []
        with self.lock:
            self.scrapes += 1
            typed: set[str] = set()
            for s in self.series.values():
                if s.name not in typed:
                    typed.add(s.name)
                    lines.append(f"# TYPE {s.name} counter")
                lines.append(f"{s.name}{{{s.labels}}} {s.value_at(now)}")
        return "\n".join(lines) + "\n"


def _target_handler(target: CounterTarget) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = target.exposition(target.scrape_moment(time.time())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that hung up mid-answer (Prometheus stopping at a test's end) is not
        an error: printed, its traceback landed in a later test's captured stderr."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


# ----- Prometheus ----------------------------------------------------------------------


@dataclass
class PrometheusServer:
    """A Prometheus API at ``url``; ``target`` is None when it does not scrape ours."""

    url: str
    target: CounterTarget | None
    first_scrape: float | None = None

    def query(self, expr: str, at: float | None = None) -> Any:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def need_target(self) -> CounterTarget:
        if self.target is None:
            pytest.skip("PROMETHEUS_URL's server does not scrape this test's counters; "
                        "these tests need the local prometheus binary")
        return self.target

    def wait_history(self, seconds: float) -> float:
        """Wait until ``seconds`` of scraped history exist after the first scrape; return
        the latest moment that lies half a scrape interval after a scrape.

        Queries at such moments are the stable ones: a window ``(t − w, t]`` of a whole
        number of intervals then holds exactly ``w`` samples, whatever the few
        milliseconds of jitter in scrape times, and its edges are half an interval from
        the nearest sample, well inside ``increase()``'s "extrapolate to the edge when
        the gap is under 1.1 × the sample interval" rule."""
        self.need_target()
        deadline = time.monotonic() + 30
        while self.first_scrape is None:
            found = self.query('timestamp(up{job="target"})')
            if found:
                self.first_scrape = float(found[0]["value"][1])
            elif time.monotonic() > deadline:
                pytest.fail("Prometheus did not scrape the counter target within 30 s")
            else:
                time.sleep(0.1)
        ready = self.first_scrape + seconds + 0.6
        if time.time() < ready:
            time.sleep(ready - time.time())
        return self.aligned(time.time())

    def aligned(self, moment: float) -> float:
        """The latest time ≤ ``moment`` that is half an interval after a scrape, and at
        least 0.3 s in the past (so that scrape's sample is stored)."""
        assert self.first_scrape is not None
        moment -= 0.3
        phase = (moment - self.first_scrape - SCRAPE_INTERVAL / 2) % SCRAPE_INTERVAL
        return round(moment - phase, 3)


def _start(binary: str, workdir: Path, target: CounterTarget) -> tuple[subprocess.Popen[bytes],
                                                                        str, Path]:
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL:g}s\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL:g}s\n"
        "scrape_configs:\n"
        "  - job_name: target\n"
        "    static_configs:\n"
        f"      - targets: ['{target.url}']\n", encoding="utf-8")
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"prometheus did not become ready at {url}:\n{tail}")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping :class:`CounterTarget` every second (see the module
    docstring), with counters already running from the start:
    ``demo_requests_total{code="200"}`` at 40/s and ``{code="500"}`` at 4/s (never
    changed), and ``slo_requests_total`` with ``code="200"`` at 40/s and ``code="500"``
    at 0/s, whose error rate the end-to-end SLO test raises (its history is being
    scraped while the other tests run)."""
    binary = prometheus_binary()
    if binary is None:
        external = os.environ.get("PROMETHEUS_URL")
        if not external:
            pytest.skip(SKIP_REASON)
        yield PrometheusServer(url=external.rstrip("/"), target=None)
        return
    target = CounterTarget()
    server, target.url = _serve(_target_handler(target))
    start = time.time()
    target.counter("demo_requests_total", 'code="200"', 40, since=start)
    target.counter("demo_requests_total", 'code="500"', 4, since=start)
    target.counter("slo_requests_total", 'code="200"', 40, since=start)
    target.counter("slo_requests_total", 'code="500"', 0, since=start)
    proc, url, log = _start(binary, tmp_path_factory.mktemp("prometheus"), target)
    try:
        _wait_ready(proc, url, log)
        yield PrometheusServer(url=url, target=target)
    finally:
        stop_process(proc, timeout=10)
        server.shutdown()
        server.server_close()


# ----- stand-ins for a Prometheus that misbehaves --------------------------------------


@dataclass
class StubRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class PrometheusStub:
    """A local HTTP server at ``url`` answering every GET with ``status`` and ``body``
    (JSON), recording each request: for what a real Prometheus cannot be made to do
    (check a bearer token, refuse it)."""

    url: str = ""
    status: int = 200
    body: Any = None
    #: Answers by PromQL expression (``query`` parameter); others get ``body``.
    bodies: dict[str, Any] = field(default_factory=dict)
    requests: list[StubRequest] = field(default_factory=list)


def _stub_handler(stub: PrometheusStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
            stub.requests.append(StubRequest(parts.path, params, dict(self.headers.items())))
            answer = stub.bodies.get(params.get("query", ""), stub.body)
            body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(stub.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def prometheus_stub() -> Iterator[PrometheusStub]:
    stub = PrometheusStub()
    server, address = _serve(_stub_handler(stub))
    stub.url = f"http://{address}"
    yield stub
    server.shutdown()
    server.server_close()
