"""What every response of ``alert-jobs serve`` carries, and what its access log hides.

* :class:`SecurityHeaders`: the action pages hold signed tokens in their URL, so they
  must not leak it (``Referrer-Policy: no-referrer``: a click on a runbook link would
  otherwise send the token to another site), must not be framed (clickjacking the
  "Acknowledge" button: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), and
  load nothing from anywhere (``default-src 'none'``; the one inline ``style`` attribute
  is allowed, scripts are not). ``nosniff`` keeps JSON and text from being run as HTML.
* :func:`redact_access_log`: uvicorn's access log prints each request's path, and the
  path of an action link *is* its token. The filter shortens ``/a/<token>`` to
  ``/a/<first 8 characters>…`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = {
    "referrer-policy": "no-referrer",
    "content-security-policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
_RAW = [(name.encode(), value.encode()) for name, value in HEADERS.items()]


class SecurityHeaders:
    """ASGI middleware: add :data:`HEADERS` to every HTTP response (not overriding any
    the route set itself)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((n, v) for n, v in _RAW if n not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


ACCESS_LOGGER = "uvicorn.access"
_TOKEN_PATH = re.compile(r"(/a/)([^/?#\s\"]{8})[^/?#\s\"]+")


def redact(text: str) -> str:
    """``/a/eyJhY2si….sig`` → ``/a/eyJhY2si…``: enough to tell links apart in a log,
    too little to use one."""
    return _TOKEN_PATH.sub(lambda m: f"{m.group(1)}{m.group(2)}…", text)


class RedactTokens(logging.Filter):
    """Rewrites action-link tokens in a log record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args: dict[str, Any] = dict(record.args)
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        return True


def redact_access_log() -> None:
    """Install :class:`RedactTokens` on uvicorn's access logger, once per process.
    A logger's filters survive uvicorn's own logging set-up (``dictConfig`` replaces
    handlers, not filters), so installing it when the app is built is enough."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
