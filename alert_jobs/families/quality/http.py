"""``GET /metrics``: alert quality for Prometheus (rendered by the quality family).

Every scrape reads the timeline, so any number of ``serve`` processes agree; a
database that is down is a 503 that says so, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.families.quality.metrics import CONTENT_TYPE, render
from alert_jobs.store import Timeline


def metrics_routes(get_timeline: Callable[[], Timeline],
                   get_rules: Callable[[], RulesFile] | None = None) -> list[Route]:
    """The ``/metrics`` route: the family's ``http_routes`` hook (``alert-jobs serve``)."""

    async def metrics(request: Request) -> Response:
        try:
            text = await run_in_threadpool(render, get_timeline())
        except Exception as exc:  # a scrape must say the database is down, not crash
            return PlainTextResponse(f"# timeline unavailable: {type(exc).__name__}\n",
                                     status_code=503)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics, methods=["GET"])]
