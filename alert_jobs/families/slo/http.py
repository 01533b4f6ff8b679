"""``GET /slo/budget`` and ``GET /slo/budget/<YYYY-MM>``: the SLO budget report, served.

The same page the ``slo_budget_report`` asset writes beside the monthly alert review,
rendered from the timeline on each request, so any number of ``serve`` processes agree
and the running month is always up to date (``/slo/budget`` is the current UTC month).
A month that is not ``YYYY-MM`` is a 400 that says so; a database that is down is a 503,
never a crash. The page shows no secret (no SLI query, no source URL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.core.months import current_month, month_bounds
from alert_jobs.families.slo.report import build_report, to_html
from alert_jobs.store import Timeline

PATH = "/slo/budget"


def report_routes(get_timeline: Callable[[], Timeline],
                  get_rules: Callable[[], RulesFile]) -> list[Route]:
    """The family's ``http_routes`` hook (``alert-jobs serve``)."""

    def render(month: str) -> str:
        return to_html(build_report(get_rules(), get_timeline(), month))

    async def budget(request: Request) -> Response:
        month = request.path_params.get("month") or current_month(datetime.now(UTC))
        try:
            month_bounds(month)
        except ValueError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        try:
            page = await run_in_threadpool(render, month)
        except Exception as exc:  # the database is down: say so, do not crash
            return PlainTextResponse(f"timeline unavailable: {type(exc).__name__}\n",
                                     status_code=503)
        return HTMLResponse(page)

    return [Route(PATH, budget, methods=["GET"]),
            Route(PATH + "/{month}", budget, methods=["GET"])]
