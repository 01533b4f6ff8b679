"""``alert-jobs serve``: one Starlette app with every route the server answers.

* ``/a/<token>``: signed action links (:mod:`alert_jobs.http.actions`);
* every response carries security headers, and the access log never shows a whole
  token (:mod:`alert_jobs.http.security`);
* ``/healthz``: the timeline database answers, with its schema version, and whether the
  rules in use are the file's (``"rules": "ok"``) or the last good copy kept while the
  file is broken (``"fallback"``, with the number of problems; the log names them);
* every check family's own routes (its ``http_routes``): heartbeat pings
  (``/ping/<slug>…``), alert quality for Prometheus (``/metrics``), the SLO budget
  report (``/slo/budget``), the monthly alert review (``/quality/review``);
* the responder's pages (:mod:`alert_jobs.http.pages`): ``/alerts``, ``/alerts/<fp>``,
  ``/silences``, ``/heartbeats``, ``/login``;
* Alertmanager's API v2 (:mod:`alert_jobs.http.alertmanager`) under ``/api/v2/``, with
  its own bearer-token or basic auth.

Everything but pings, signed links, ``/healthz``, ``/metrics`` and the sign-in page
needs a signed-in user (:class:`~alert_jobs.http.auth.RequireSignIn`, default-deny).

The rules come from one :class:`~alert_jobs.config.RulesWatcher` per app: requests read
its current snapshot; the file is looked at and parsed in its background thread, never
on the request path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile, RulesWatcher, default_rules_path
from alert_jobs.http.actions import action_routes
from alert_jobs.http.alertmanager import ApiAuth, api_routes
from alert_jobs.http.auth import Auth, AuthSettings, RequireSignIn
from alert_jobs.http.pages import Pages, page_routes
from alert_jobs.http.security import SecurityHeaders, redact_access_log
from alert_jobs.runtime.family import installed_families
from alert_jobs.store import Timeline, shared_timeline


def create_app(timeline_factory: Callable[[], Timeline] | None = None,
               rules_factory: Callable[[], RulesFile] | None = None, *,
               rules_path: str | os.PathLike[str] | None = None,
               watcher: RulesWatcher | None = None,
               auth: AuthSettings | None = None,
               api_auth: ApiAuth | None = None) -> Starlette:
    """The ASGI app. Rules come from ``watcher``, else a watcher of ``rules_path``, else
    one polling ``rules_factory`` (tests hand rules in this way), else the default
    rules file. Factories make it testable with a temporary database and rules. Who
    may sign in comes from ``auth``, else the environment
    (:meth:`AuthSettings.from_env`, which raises ``AuthSettingsError`` naming the bad
    variable). Who may call the Alertmanager API comes from ``api_auth``, else
    ``$ALERT_JOBS_API_TOKENS`` and the same accounts."""
    get_timeline = timeline_factory or shared_timeline  # one engine and pool per process
    redact_access_log()
    if watcher is None:
        if rules_factory is not None and rules_path is None:
            watcher = RulesWatcher(load=rules_factory)
        else:
            watcher = RulesWatcher(rules_path or default_rules_path())
    rules = watcher

    async def healthz(request: Request) -> Response:
        snap = rules.snapshot
        extra: dict[str, object] = {"rules": snap.status}
        if snap.fallback:  # how many, not what: the server's log names them
            extra["rules_problems"] = len(snap.problems())
        try:
            version = get_timeline().schema_version()
        except Exception as exc:
            return JSONResponse({"ok": False, "error": type(exc).__name__, **extra},
                                status_code=503)
        return JSONResponse({"ok": True, "schema_version": version, **extra})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rules.start()
        try:
            yield
        finally:
            rules.stop()

    family_routes = [route for family in installed_families() if family.http_routes
                     for route in family.http_routes(get_timeline, rules)]
    signin = Auth(auth if auth is not None else AuthSettings.from_env(), get_timeline)
    pages = Pages(signin, get_timeline, rules)
    api = api_auth if api_auth is not None else ApiAuth.from_env(signin.settings.accounts)
    api.throttle = signin.throttle  # one count of failed sign-ins, pages and API alike
    app = Starlette(routes=[
        Route("/healthz", healthz),
        *action_routes(get_timeline, rules),
        *page_routes(pages),
        *api_routes(api, get_timeline, rules),
        *family_routes,
    ], middleware=[Middleware(SecurityHeaders), Middleware(RequireSignIn, auth=signin)],
        lifespan=lifespan)
    app.state.rules = rules
    app.state.auth = signin
    return app
