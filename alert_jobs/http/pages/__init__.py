"""The responder's pages (``alert-jobs serve``): alerts, one alert's story, silences,
heartbeats, incidents, behind sign-in (:mod:`alert_jobs.http.auth`). Server-rendered jinja2
templates in ``templates/pages``; no JavaScript."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import Route

from alert_jobs.http.pages.context import Pages


def page_routes(pages: Pages) -> list[Route]:
    from alert_jobs.http.pages import alerts, heartbeats, incidents, login, silences

    async def home(request: object) -> RedirectResponse:
        return RedirectResponse("/alerts", 303)

    return [Route("/", home, methods=["GET"]),
            *login.login_routes(pages.auth), *login.logout_routes(pages.auth),
            *alerts.routes(pages), *silences.routes(pages), *heartbeats.routes(pages),
            *incidents.routes(pages)]


__all__ = ["Pages", "page_routes"]
