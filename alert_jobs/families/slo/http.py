"""``GET /slo/budget`` and ``GET /slo/budget/<YYYY-MM>``: the SLO budget report, served.

The same page the ``slo_budget_report`` asset writes beside the monthly alert review,
rendered from the timeline on each request, so any number of ``serve`` processes agree
and the running month is always up to date (``/slo/budget`` is the current UTC month).
A month that is not ``YYYY-MM`` is a 400 that says so; a database that is down is a 503,
never a crash. The page shows no secret (no SLI query, no source URL).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.families.slo.report import build_report, to_html
from alert_jobs.runtime.month_pages import month_routes
from alert_jobs.store import Timeline

PATH = "/slo/budget"


def report_routes(get_timeline: Callable[[], Timeline],
                  get_rules: Callable[[], RulesFile]) -> list[Route]:
    """The family's ``http_routes`` hook (``alert-jobs serve``)."""
    return month_routes(PATH, lambda month: to_html(
        build_report(get_rules(), get_timeline(), month)))
