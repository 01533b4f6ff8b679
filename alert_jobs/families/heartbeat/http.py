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

import asyncio
import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.config import (
    RulesFile,
    RulesWatcher,
    SecretMissingError,
    SecretOrText,
    resolve,
)
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.config import HeartbeatSettings, valid_slug
from alert_jobs.families.heartbeat.ping_writer import PingWriter
from alert_jobs.families.heartbeat.run import (
    create_spec,
    declared_checks,
    declared_spec,
    evaluate_slug,
)
from alert_jobs.families.heartbeat.store import (
    CreateSpec,
    HeartbeatStore,
    Ping,
    TooManyChecksError,
)
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.ping")
METHODS = ["GET", "POST", "HEAD"]
#: How long a ping waits for its write before the answer is 503 (below the client's 5 s);
#: ``$ALERT_JOBS_PING_WRITE_TIMEOUT`` (seconds) changes it.
WRITE_TIMEOUT_SECONDS = float(os.environ.get("ALERT_JOBS_PING_WRITE_TIMEOUT") or 4.0)
_SIGNALS = {"": (Signal.SUCCESS, None), "start": (Signal.START, None),
            "fail": (Signal.FAIL, None),
            **{str(code): (Signal.SUCCESS if code == 0 else Signal.FAIL, code)
               for code in range(256)}}


@dataclass(frozen=True)
class PingTargets:
    """What a ping needs from the rules, computed once per rules snapshot (in the
    rules watcher's thread, not per request): each declared slug's token and how to
    create its row, and the heartbeat settings."""

    rules: RulesFile
    declared: dict[str, tuple[SecretOrText | None, CreateSpec]]
    body_limit: int
    keep: int
    auto_token: SecretOrText | None
    auto_create: CreateSpec | None

    @classmethod
    def of(cls, rules: RulesFile) -> PingTargets:
        tz = rules.defaults.timezone
        settings = rules.section(HeartbeatSettings)
        declared = {slug: (check.token, declared_spec(check, tz))
                    for slug, check in declared_checks(rules).items()}
        return cls(rules, declared, settings.body_limit, settings.ping_log_keep,
                   settings.auto_create.token, create_spec(rules))


def _targets_getter(get_rules: Callable[[], RulesFile]) -> Callable[[], PingTargets]:
    """The current :class:`PingTargets`: from the rules watcher when ``get_rules`` is one
    (derived in its thread), else recomputed whenever ``get_rules`` returns new rules."""
    derive = getattr(get_rules, "derive", None)
    if derive is not None:
        getter: Callable[[], PingTargets] = derive("heartbeat.ping_targets", PingTargets.of)
        return getter
    memo: list[PingTargets] = []

    def current() -> PingTargets:
        rules = get_rules()
        if not memo or memo[0].rules is not rules:
            memo[:] = [PingTargets.of(rules)]
        return memo[0]

    return current


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
    """The ping routes: the family's ``http_routes`` hook (``alert-jobs serve`` adds them).

    ``get_rules`` is the server's rules watcher (:class:`~alert_jobs.config.RulesWatcher`):
    it returns the current snapshot at once; the file is parsed in the background.
    """
    targets_now = _targets_getter(get_rules)
    writers: list[PingWriter] = []

    def writer() -> PingWriter:
        if not writers:  # the timeline is opened at the first ping, not at import
            writers.append(PingWriter(HeartbeatStore(get_timeline())).start())
        return writers[0]

    def stop_writer() -> None:
        """Write what is queued and end the thread, with the server (or test app)."""
        while writers:
            writers.pop().stop()

    if isinstance(get_rules, RulesWatcher):
        get_rules.on_stop(stop_writer)

    async def ping(request: Request) -> Response:
        slug = request.path_params["slug"]
        text = request.path_params.get("signal", "")
        try:
            signal, exit_code = _SIGNALS[text if not text.isdigit() else str(int(text))]
        except (KeyError, ValueError):
            return PlainTextResponse("unknown signal (use start, fail or an exit code "
                                     "0-255)\n", status_code=400)
        try:
            targets = targets_now()
        except Exception:  # no good rules at all (the factory itself fails)
            log.exception("no usable rules")
            return PlainTextResponse("rules file invalid; see the server log\n",
                                     status_code=503)
        limit = targets.body_limit
        headers = {"Ping-Body-Limit": str(limit)}
        ok_slug = valid_slug(slug)
        create: CreateSpec | None
        declared = targets.declared.get(slug) if ok_slug else None
        if declared is not None:
            token, create = declared
        else:
            token, create = targets.auto_token, targets.auto_create if ok_slug else None
            if create is None:
                store = HeartbeatStore(get_timeline())
                row = await run_in_threadpool(store.get, slug) if ok_slug else None
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
        future = writer().submit(Ping(
            slug, signal, utcnow(), rid=rid, exit_code=exit_code,
            body=data.decode("utf-8", "replace"), remote_addr=client,
            user_agent=request.headers.get("user-agent", ""), keep=targets.keep,
            create=create))
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                result = await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()  # still queued: never written; taken: written, answered late
            log.warning("ping for %s not stored within %g s; answering 503", slug,
                        WRITE_TIMEOUT_SECONDS)
            return PlainTextResponse("busy: ping not stored, retry\n", status_code=503,
                                     headers=headers)
        if isinstance(result, TooManyChecksError):
            return PlainTextResponse(f"{result}\n", status_code=429, headers=headers)
        if isinstance(result, Exception):
            return PlainTextResponse("ping not stored (database error), retry\n",
                                     status_code=503, headers=headers)
        if result is None:
            return PlainTextResponse("not found\n", status_code=404, headers=headers)
        task = None
        if result.needs_engine:  # an alert opens or closes: decide and send now
            task = BackgroundTask(_evaluate_and_deliver, targets.rules, get_timeline(), slug)
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
