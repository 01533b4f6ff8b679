"""A real Prometheus pushes to ``POST /api/v2/alerts``: its rule fires, then resolves, and
a real webhook receiver gets the firing and the resolve once each, with the Prometheus
labels and annotations, while Prometheus re-sends both every second.

Prometheus scrapes a gauge this test serves and flips (``errors_ratio``), evaluates its
rule every second and re-sends active alerts every second (``--rules.alert.resend-delay``),
with ``endsAt`` = last evaluation + 4 × max(evaluation interval, resend delay); a resolved
alert is sent with ``endsAt`` = the resolve time, again at every resend for 15 minutes.
Its discovery applies targets on a 5-second tick, so the first scrape and the first
push come about 5 s after start. Skips (saying why) without the Debian package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.core.model import AlertState
from alert_jobs.families.external.store import ExternalStore
from tests.conftest import HttpReceiver, free_port
from tests.families.external.support import (
    CALLER,
    TOKEN,
    messages,
    parse,
    rules_text,
    serve,
    wait_for,
)
from tests.processes import stop_process

SKIP = "Debian package prometheus is not installed (`apt-get install prometheus`)"

RULES = """
groups:
  - name: api
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: errors_ratio > 0.5
        labels: {severity: critical, team: payments}
        annotations:
          summary: "Error ratio {{ $value }} on {{ $labels.service }}"
          description: "More than half of the requests to {{ $labels.service }} fail."
          runbook_url: "https://runbooks.example.com/high-error-rate"
"""


def _binary() -> str | None:
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None


class Gauge:
    """``/metrics`` with one gauge whose value the test sets."""

    def __init__(self) -> None:
        self.value = 0.9
        gauge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = (f'# TYPE errors_ratio gauge\nerrors_ratio{{service="api"}} '
                        f"{gauge.value}\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()


@pytest.fixture
def gauge() -> Iterator[Gauge]:
    target = Gauge()
    yield target
    target.server.shutdown()


def _start(binary: str, workdir: Path, target: str, alertmanager: str
           ) -> tuple[subprocess.Popen[bytes], Path, str]:
    (workdir / "rules.yml").write_text(RULES, encoding="utf-8")
    config = workdir / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [rules.yml]
scrape_configs:
  - job_name: target
    static_configs: [{{targets: ['{target}']}}]
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{credentials: {TOKEN}}}
      static_configs: [{{targets: ['{alertmanager}']}}]
""", encoding="utf-8")
    log = workdir / "prometheus.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s",
             "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    return proc, log, f"http://127.0.0.1:{port}"


def _sent(prometheus: str) -> float:
    """Alerts Prometheus has sent to us so far (its own ``/metrics``)."""
    try:
        text = httpx.get(f"{prometheus}/metrics", timeout=2).text
    except httpx.TransportError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("prometheus_notifications_sent_total"))


def test_prometheus_fires_and_resolves_through_the_api(
        tmp_path: Path, http_receiver: HttpReceiver, gauge: Gauge) -> None:
    binary = _binary()
    if binary is None:
        pytest.skip(SKIP)
    rules = parse(rules_text(http_receiver))
    with serve(tmp_path, rules) as served:
        proc, log, prometheus = _start(binary, tmp_path, gauge.address,
                                       served.base.split("//", 1)[1])

        def pushes() -> float:
            return _sent(prometheus)

        try:
            firing = wait_for(lambda: messages(http_receiver), timeout=25,
                              what=f"the firing message (prometheus log: {log})")
            assert [m["status"] for m in firing] == ["firing"]
            sent = firing[0]["alerts"][0]
            assert sent["labels"] == {
                "alertname": "HighErrorRate", "severity": "critical", "team": "payments",
                "service": "api", "job": "target", "instance": gauge.address}
            assert sent["annotations"]["summary"] == "Error ratio 0.9 on api"
            assert sent["annotations"]["description"] == \
                "More than half of the requests to api fail."
            assert sent["annotations"]["runbook_url"] == \
                "https://runbooks.example.com/high-error-rate"
            assert "/graph?g0.expr=" in sent["annotations"]["dashboard_url"]  # generatorURL
            assert "Error ratio 0.9 on api" in firing[0]["text"]
            (kept,) = ExternalStore(served.timeline).all()
            assert kept.pushed_by == CALLER and not kept.timeout  # Prometheus sends endsAt

            # Prometheus keeps re-sending it every second: nothing new is delivered.
            seen = pushes()
            wait_for(lambda: pushes() >= seen + 3, timeout=10, what="three re-sends")
            assert len(messages(http_receiver)) == 1

            gauge.value = 0.1  # the rule stops matching at the next scrape + evaluation
            both = wait_for(lambda: len(messages(http_receiver)) >= 2
                            and messages(http_receiver), timeout=15, what="the resolve")
            assert both[1]["status"] == "resolved"
            resolved = both[1]["alerts"][0]
            assert resolved["labels"]["alertname"] == "HighErrorRate"
            assert resolved["labels"]["instance"] == gauge.address
            assert resolved["annotations"]["summary"] == "Error ratio 0.9 on api"

            # The resolved alert is re-sent too (for 15 minutes): nothing new either.
            seen = pushes()
            wait_for(lambda: pushes() >= seen + 2, timeout=10, what="re-sent resolves")
            assert [m["status"] for m in messages(http_receiver)] == ["firing", "resolved"]
        finally:
            stop_process(proc, timeout=10)
        (record,) = served.timeline.alerts.list(include_inactive=True)
        assert record.state == AlertState.RESOLVED
        events = [(e["kind"], e["actor"], e["source"]) for e in served.timeline.events.list()
                  if e["kind"] in ("firing", "resolved", "pushed")]
        assert events == [("firing", "system", "engine"), ("pushed", CALLER, "api"),
                          ("resolved", "system", "engine"), ("pushed", CALLER, "api")]
