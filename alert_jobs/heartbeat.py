"""Ping a heartbeat from a job: ``alert_jobs.heartbeat.ping("nightly_backup")``.

The client never raises into the caller's job and waits at most ``timeout`` seconds:
monitoring must not be the reason a backup fails. It returns whether the ping was
accepted, and logs (without the token) why not. It needs only httpx: importing it costs a
job nothing else (an import-linter contract keeps it so), which is why it sits here and
not in the heartbeat family's package.

    from alert_jobs.heartbeat import monitored

    with monitored("nightly_backup"):   # /start, then success, or /fail on an exception
        run_backup()
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

log = logging.getLogger("alert_jobs.heartbeat")
URL_ENV = "ALERT_JOBS_PING_URL"
TOKEN_ENV = "ALERT_JOBS_PING_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8787"


def ping(slug: str, signal: str | int = "", *, base_url: str | None = None,
         token: str | None = None, rid: str | None = None, body: str | bytes | None = None,
         timeout: float = 5.0) -> bool:
    """Send one ping; ``signal`` is "" (success), "start", "fail" or an exit code.

    ``base_url`` defaults to ``$ALERT_JOBS_PING_URL`` (else the local ``alert-jobs
    serve``), ``token`` to ``$ALERT_JOBS_PING_TOKEN``. True if the server accepted it.
    """
    base = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    path = f"/ping/{slug}" + (f"/{signal}" if str(signal) != "" else "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"rid": rid} if rid else {}
    try:
        if body is None:
            response = httpx.get(base + path, params=params, headers=headers, timeout=timeout)
        else:
            response = httpx.post(base + path, params=params, headers=headers, content=body,
                                  timeout=timeout)
    except Exception as exc:  # never into the caller's job
        log.warning("heartbeat ping %s failed: %s", path, type(exc).__name__)
        return False
    if response.status_code != 200:
        log.warning("heartbeat ping %s refused: HTTP %s", path, response.status_code)
        return False
    return True


@contextmanager
def monitored(slug: str, *, base_url: str | None = None, token: str | None = None,
              timeout: float = 5.0) -> Iterator[str]:
    """Ping start, then success, or fail if the block raises (the error propagates).
    Yields the run id that pairs them, so durations are exact even when runs overlap.
    The run id and the failure body are its own (no ``rid``/``body`` arguments)."""
    rid = uuid.uuid4().hex
    ping(slug, "start", rid=rid, base_url=base_url, token=token, timeout=timeout)
    try:
        yield rid
    except BaseException as exc:
        ping(slug, "fail", rid=rid, body=f"{type(exc).__name__}: {exc}"[:2000],
             base_url=base_url, token=token, timeout=timeout)
        raise
    ping(slug, "", rid=rid, base_url=base_url, token=token, timeout=timeout)
