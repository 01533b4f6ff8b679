"""``alert-jobs serve``: one Starlette app with every route the server answers.

* ``/a/<token>``: signed action links (:mod:`alert_jobs.http.actions`);
* every response carries security headers, and the access log never shows a whole
  token (:mod:`alert_jobs.http.security`);
* ``/healthz``: the timeline database answers, with its schema version;
* every check family's own routes (its ``http_routes``): heartbeat pings
  (``/ping/<slug>…``), alert quality for Prometheus (``/metrics``).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile, load_rules
from alert_jobs.http.actions import action_routes
from alert_jobs.http.security import SecurityHeaders, redact_access_log
from alert_jobs.runtime.family import installed_families
from alert_jobs.store import Timeline, shared_timeline


def create_app(timeline_factory: Callable[[], Timeline] | None = None,
               rules_factory: Callable[[], RulesFile] | None = None) -> Starlette:
    """The ASGI app. Factories make it testable with a temporary database and rules."""
    get_timeline = timeline_factory or shared_timeline  # one engine and pool per process
    get_rules = rules_factory or load_rules
    redact_access_log()

    async def healthz(request: Request) -> Response:
        try:
            version = get_timeline().schema_version()
        except Exception as exc:
            return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "schema_version": version})

    family_routes = [route for family in installed_families() if family.http_routes
                     for route in family.http_routes(get_timeline, get_rules)]
    return Starlette(routes=[
        Route("/healthz", healthz),
        *action_routes(get_timeline, get_rules),
        *family_routes,
    ], middleware=[Middleware(SecurityHeaders)])
