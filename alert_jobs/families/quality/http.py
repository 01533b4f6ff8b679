"""The quality family's routes in ``alert-jobs serve``.

* ``GET /metrics``: alert quality for Prometheus (public, for the scraper). Every scrape
  reads the timeline, so any number of ``serve`` processes agree.
* ``GET /quality/review`` and ``GET /quality/review/<YYYY-MM>``: the monthly alert
  review, the same page the ``alert_quality_monthly`` asset writes
  (:func:`~alert_jobs.families.quality.review.monthly_review`), computed from the
  timeline on each request, so the running month is always up to date
  (``/quality/review`` is the current UTC month). The server asks for a signed-in user
  (it is not among the public paths).

A month that is not ``YYYY-MM`` is a 400 that says so; a database that is down is a 503
that says so, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.families.quality.metrics import CONTENT_TYPE, render
from alert_jobs.families.quality.report import to_html
from alert_jobs.families.quality.review import monthly_review
from alert_jobs.runtime.month_pages import month_routes
from alert_jobs.store import Timeline

REVIEW_PATH = "/quality/review"


def routes(get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:
    """The family's ``http_routes`` hook: ``/metrics`` and the review."""
    return [*metrics_routes(get_timeline, get_rules), *review_routes(get_timeline, get_rules)]


def metrics_routes(get_timeline: Callable[[], Timeline],
                   get_rules: Callable[[], RulesFile] | None = None) -> list[Route]:
    """The ``/metrics`` route."""

    async def metrics(request: Request) -> Response:
        try:
            text = await run_in_threadpool(render, get_timeline())
        except Exception as exc:  # a scrape must say the database is down, not crash
            return PlainTextResponse(f"# timeline unavailable: {type(exc).__name__}\n",
                                     status_code=503)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics, methods=["GET"])]


def review_routes(get_timeline: Callable[[], Timeline],
                  get_rules: Callable[[], RulesFile]) -> list[Route]:
    """``/quality/review`` and ``/quality/review/<YYYY-MM>``."""
    return month_routes(REVIEW_PATH, lambda month: to_html(
        monthly_review(get_rules(), get_timeline(), month)))
