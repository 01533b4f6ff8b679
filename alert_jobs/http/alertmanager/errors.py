"""Alertmanager's answers: JSON bodies, errors as a JSON string (its ``BadRequest`` and
``InternalServerError`` responses are ``type: string``), and a bounded JSON reader."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alert_jobs.http.alertmanager.auth import TOKENS_ENV, ApiAuth, Throttled

CHALLENGE = 'Bearer realm="alert-jobs", Basic realm="alert-jobs"'
#: The largest body accepted (Prometheus sends alerts in batches of 64 by default).
MAX_BODY = 4 * 1024 * 1024


class ApiError(Exception):
    """A request the API refuses: ``status`` and the reason, as Alertmanager words it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> Response:
    return JSONResponse(message, status_code=status)


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's JSON body; :class:`ApiError` (413 or 400) when too large or not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # [[[[…: too deep
        raise ApiError(400, f"body is not valid JSON: {exc}") from None


Handler = Callable[[Request, str], Awaitable[Response]]


def api(auth: ApiAuth, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that runs ``handler(request, caller)`` for an authenticated caller only
    (401 otherwise, never open by default) and turns :class:`ApiError` into its answer."""

    async def endpoint(request: Request) -> Response:
        if not auth.configured:
            return error(401, f"the Alertmanager API is off: set ${TOKENS_ENV} (bearer "
                              "tokens) or ALERT_JOBS_USERS (basic auth)")
        try:
            caller = await run_in_threadpool(auth.caller, request)
        except Throttled as exc:
            response = error(429, str(exc))
            response.headers["Retry-After"] = str(exc.seconds)
            return response
        if caller is None:
            response = error(401, "authentication required: a bearer token from "
                                  f"${TOKENS_ENV} or basic auth with an account")
            response.headers["WWW-Authenticate"] = CHALLENGE
            return response
        try:
            return await handler(request, caller)
        except ApiError as exc:
            return error(exc.status, exc.message)

    return endpoint
