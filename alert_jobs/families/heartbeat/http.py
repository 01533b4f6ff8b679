"""The ping receiver of ``alert-jobs serve`` (Healthchecks' URL scheme, by slug).

``GET|POST|HEAD /ping/<slug>`` success, ``/ping/<slug>/start``, ``/ping/<slug>/fail``,
``/ping/<slug>/<exit-code>`` (0 = success, 1–255 = failure). Optional ``?rid=`` pairs a
start with its finish; an optional body (the job's log tail) is stored up to
``heartbeats.body_limit`` bytes. Refusals write nothing: unknown slug 404 (unless
auto-create is on), wrong or missing token 403, body too large 413.

A check's token comes as ``Authorization: Bearer <token>`` or ``X-Ping-Token`` (never
in the URL, which access logs print); it is compared in constant time and never stored
or logged.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesError, RulesFile, SecretMissingError, SecretOrText, resolve
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.config import HeartbeatCheck, HeartbeatSettings, valid_slug
from alert_jobs.families.heartbeat.run import create_spec, declared_checks, evaluate_slug
from alert_jobs.families.heartbeat.store import (
    CreateSpec,
    HeartbeatStore,
    TooManyChecksError,
    config_hash,
    schedule_of,
)
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.ping")
RULES_TTL_SECONDS = 2.0
METHODS = ["GET", "POST", "HEAD"]


class _RulesCache:
    """The rules file, re-read at most every few seconds; the last good copy survives a
    broken edit (pings keep working while someone fixes the file)."""

    def __init__(self, load: Callable[[], RulesFile], ttl: float = RULES_TTL_SECONDS):
        self.load, self.ttl = load, ttl
        self.rules: RulesFile | None = None
        self.declared: dict[str, HeartbeatCheck] = {}
        self.loaded_at = 0.0
        self.lock = threading.Lock()

    def get(self) -> tuple[RulesFile | None, dict[str, HeartbeatCheck]]:
        """The rules and their heartbeat checks by slug (computed once per load)."""
        with self.lock:
            if self.rules is None or time.monotonic() - self.loaded_at > self.ttl:
                try:
                    rules = self.load()
                    self.rules, self.declared = rules, declared_checks(rules)
                except (RulesError, ValueError) as exc:
                    log.error("rules file invalid, keeping the last good copy: %s", exc)
                self.loaded_at = time.monotonic()
            return self.rules, self.declared


def _token_ok(expected: SecretOrText | None, request: Request) -> bool:
    if expected is None:
        return True
    try:
        want = resolve(expected)
    except SecretMissingError as exc:  # names the variable, never a value
        log.error("refusing pings: the heartbeat token's %s", exc)
        return False
    auth = request.headers.get("authorization", "")
    given = (auth[7:] if auth.lower().startswith("bearer ") else "") \
        or request.headers.get("x-ping-token", "")
    return hmac.compare_digest(given.encode(), want.encode())


def ping_routes(get_timeline: Callable[[], Timeline],
                get_rules: Callable[[], RulesFile]) -> list[Route]:
    """The ping routes: the family's ``http_routes`` hook (``alert-jobs serve`` adds them)."""
    cache = _RulesCache(get_rules)

    async def ping(request: Request) -> Response:
        slug = request.path_params["slug"]
        signal_text = request.path_params.get("signal", "")
        exit_code: int | None = None
        if signal_text == "":
            signal = Signal.SUCCESS
        elif signal_text in ("start", "fail"):
            signal = Signal(signal_text)
        elif signal_text.isdigit() and int(signal_text) <= 255:
            exit_code = int(signal_text)
            signal = Signal.SUCCESS if exit_code == 0 else Signal.FAIL
        else:
            return PlainTextResponse("unknown signal (use start, fail or an exit code "
                                     "0-255)\n", status_code=400)
        rules, declared = cache.get()
        if rules is None:
            return PlainTextResponse("rules file invalid; see the server log\n",
                                     status_code=503)
        limit = rules.section(HeartbeatSettings).body_limit
        headers = {"Ping-Body-Limit": str(limit)}
        check = declared.get(slug) if valid_slug(slug) else None
        store = HeartbeatStore(get_timeline())
        create: CreateSpec | None
        if check is not None:
            token = check.token
            create = CreateSpec(schedule_of(check, rules.defaults.timezone), 0,
                                rule=check.name, declared=True,
                                config_hash=config_hash(check, rules.defaults.timezone),
                                manual_resume=check.manual_resume)
        else:
            token = rules.section(HeartbeatSettings).auto_create.token
            create = create_spec(rules) if valid_slug(slug) else None
            if create is None:
                row = await run_in_threadpool(store.get, slug) if valid_slug(slug) else None
                if row is None or row.declared:
                    return PlainTextResponse("not found\n", status_code=404, headers=headers)
        if not _token_ok(token, request):
            return PlainTextResponse("forbidden\n", status_code=403, headers=headers)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return PlainTextResponse("body too large\n", status_code=413, headers=headers)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                return PlainTextResponse("body too large\n", status_code=413, headers=headers)
        rid = request.query_params.get("rid") or None
        if rid is not None and len(rid) > 64:
            return PlainTextResponse("rid too long (64 characters at most)\n", status_code=400)
        client = request.client.host if request.client else ""
        try:
            result = await run_in_threadpool(
                store.ping, slug, signal, utcnow(), rid=rid, exit_code=exit_code,
                body=data.decode("utf-8", "replace"), remote_addr=client,
                user_agent=request.headers.get("user-agent", ""),
                keep=rules.section(HeartbeatSettings).ping_log_keep, create=create)
        except TooManyChecksError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=429, headers=headers)
        if result is None:
            return PlainTextResponse("not found\n", status_code=404, headers=headers)
        task = None
        if result.needs_engine:  # an alert opens or closes: decide and send now
            task = BackgroundTask(_evaluate_and_deliver, rules, get_timeline(), slug)
        text = "OK (ignored: paused)\n" if result.kind == "ignored" else "OK\n"
        return PlainTextResponse(text, headers=headers, background=task)

    return [
        Route("/ping/{slug}", ping, methods=METHODS),
        Route("/ping/{slug}/{signal}", ping, methods=METHODS),
    ]


def _evaluate_and_deliver(rules: RulesFile, timeline: Timeline, slug: str) -> None:
    """After the response: the sensor would do the same within a tick if this fails."""
    try:
        report = evaluate_slug(rules, timeline, slug)
        if report.outcomes:
            deliver(rules, timeline)
    except Exception:
        log.exception("evaluating heartbeat %s after its ping failed", slug)
