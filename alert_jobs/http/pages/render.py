"""Rendering the responder pages: one jinja2 environment, one layout, shared filters.

Every page extends ``templates/pages/layout.html`` (navigation, the signed-in user, a
sign-out form, a stylesheet inline: the server's CSP loads nothing from elsewhere and
runs no script). Templates get the user and their CSRF token without each handler
passing them; every value is escaped by the template engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from alert_jobs.core.durations import short_duration

NAV = [("/alerts", "Alerts"), ("/silences", "Silences"), ("/heartbeats", "Heartbeats"),
       ("/incidents", "Incidents"),
       ("/quality/review", "Alert quality"), ("/slo/budget", "SLO budgets")]


def when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    delta = (now or datetime.now(UTC)) - moment
    if delta < timedelta(0):
        return f"in {short_duration(-delta)}"
    if delta < timedelta(seconds=60):
        return "just now"
    return f"{short_duration(delta)} ago"


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) >= 1 else f"{value:.4g}"


TEMPLATES = Environment(loader=PackageLoader("alert_jobs.http", "templates/pages"),
                        autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                        lstrip_blocks=True)
TEMPLATES.filters.update(when=when, ago=ago, number=number)


def page(request: Request, template: str, *, title: str, status: int = 200,
         **context: Any) -> HTMLResponse:
    """``templates/pages/<template>`` as a response, with the layout's context."""
    user = getattr(request.state, "user", None)
    html = TEMPLATES.get_template(template).render(
        title=title, user=user, csrf=user.csrf if user else "", nav=NAV,
        path=request.url.path, now=datetime.now(UTC), **context)
    return HTMLResponse(html, status_code=status)


def refusal(request: Request, title: str, reason: str, status: int) -> HTMLResponse:
    """A 4xx page that says why, in one paragraph, with the way back."""
    return page(request, "message.html", title=title, message=reason, status=status)
