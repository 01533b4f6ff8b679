"""``alert-jobs serve``: one Starlette app with every route the server answers.

* ``/ping/<slug>…``: heartbeat pings (:mod:`alert_jobs.http.pings`);
* ``/a/<token>``: signed action links (:mod:`alert_jobs.http.actions`);
* ``/metrics``: alert quality for Prometheus (:mod:`alert_jobs.http.metrics`);
* ``/healthz``: the timeline database answers, with its schema version.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile, load_rules
from alert_jobs.http.actions import action_routes
from alert_jobs.http.metrics import metrics_routes
from alert_jobs.http.pings import ping_routes
from alert_jobs.store import Timeline, shared_timeline


def create_app(timeline_factory: Callable[[], Timeline] | None = None,
               rules_factory: Callable[[], RulesFile] | None = None) -> Starlette:
    """The ASGI app. Factories make it testable with a temporary database and rules."""
    get_timeline = timeline_factory or shared_timeline  # one engine and pool per process
    get_rules = rules_factory or load_rules

    async def healthz(request: Request) -> Response:
        try:
            version = get_timeline().schema_version()
        except Exception as exc:
            return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "schema_version": version})

    return Starlette(routes=[
        Route("/healthz", healthz),
        *action_routes(get_timeline, get_rules),
        *metrics_routes(get_timeline),
        *ping_routes(get_timeline, get_rules),
    ])
