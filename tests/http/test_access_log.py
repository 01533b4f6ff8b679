"""``alert-jobs serve``'s access log never shows a whole action-link token.

A real ``alert-jobs serve`` process, its output captured as an operator's log would
be: the path of an action link *is* its token, and uvicorn logs every path.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from alert_jobs.config import parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.http.security import RedactTokens, redact
from alert_jobs.notify.links import SECRET_ENV
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, utcnow
from tests.conftest import free_port, submit_link_form
from tests.http.test_action_links import RULES, SECRET


def test_redact_keeps_eight_characters() -> None:
    line = '127.0.0.1:5 - "POST /a/WyJhY2siLCI2ZDQy.j2P-hTfo4r7R HTTP/1.1" 200'
    assert redact(line) == '127.0.0.1:5 - "POST /a/WyJhY2si… HTTP/1.1" 200'
    assert redact("GET /healthz") == "GET /healthz" and redact("/a/short") == "/a/short"
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"',
                               ("127.0.0.1:5", "GET", "/a/WyJhY2siLCI2ZDQy.j2P-hTfo"), None)
    assert RedactTokens().filter(record) and record.getMessage() == (
        '127.0.0.1:5 - "GET /a/WyJhY2si…"')


def test_serve_access_log_shows_no_whole_token(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv(SECRET_ENV, SECRET)
    rules_path = tmp_path / "alerts.yaml"
    rules_path.write_text(RULES.format(base=f"http://127.0.0.1:{port}"))
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    timeline = Timeline(db_url)
    rules = parse_rules(rules_path.read_text())
    obs = Observation("dead_letters", Status.ALERT, {}, 3.0, summary="3 dead letters")
    process_observations(rules, rules.rule("dead_letters"), timeline, [(obs, "")],
                         now=utcnow() - timedelta(minutes=1), run_id=None)
    deliver(rules, timeline)  # the run that queued the message sends it, as in production
    (alert,) = timeline.outbox.rows()[-1]["payload"]["alerts"]
    ack = alert["actions"]["ack"].removeprefix(f"http://127.0.0.1:{port}")
    token = ack.removeprefix("/a/")
    assert len(token) > 40

    log = tmp_path / "serve.log"
    env = {**os.environ, SECRET_ENV: SECRET, "PYTHONIOENCODING": "utf-8"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "alert_jobs.cli.main", "--database-url", db_url,
             "--rules", str(rules_path), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        done = submit_link_form(base, ack, "alice")  # a GET and a POST of the link
        assert done.status_code == 200, done.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    timeline.dispose()

    text = log.read_text(encoding="utf-8")
    # Positive control: the requests are in the access log, paths and all.
    assert '"GET /healthz HTTP/1.1" 200' in text, text
    assert f'"GET /a/{token[:8]}… HTTP/1.1" 200' in text, text
    assert f'"POST /a/{token[:8]}… HTTP/1.1" 200' in text, text
    assert token not in text and token[:9] not in text.replace(f"/a/{token[:8]}…", "")
