"""A monthly report served by ``alert-jobs serve``: ``<path>`` (the current UTC month)
and ``<path>/<YYYY-MM>``, rendered from the timeline on each request, so any number of
``serve`` processes agree and the running month is always up to date. A month that is
not ``YYYY-MM`` is a 400 that says so; a database that is down is a 503, never a crash.
The SLO budget report and the monthly alert review are served this way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.core.months import current_month, month_bounds


def month_routes(path: str, render: Callable[[str], str]) -> list[Route]:
    """``GET path`` and ``GET path/<YYYY-MM>``: ``render(month)``'s HTML (blocking work,
    run off the event loop)."""

    async def page(request: Request) -> Response:
        month = request.path_params.get("month") or current_month(datetime.now(UTC))
        try:
            month_bounds(month)
        except ValueError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        try:
            html = await run_in_threadpool(render, month)
        except Exception as exc:  # the database is down: say so, do not crash
            return PlainTextResponse(f"timeline unavailable: {type(exc).__name__}\n",
                                     status_code=503)
        return HTMLResponse(html)

    return [Route(path, page, methods=["GET"]), Route(path + "/{month}", page, methods=["GET"])]
