"""Signed action links: ``GET /a/<token>`` shows what the link will do, ``POST`` does it.

Chat tools fetch links to preview them, so acting on GET would ack alerts nobody saw.
Every accepted action is a timeline event with its actor and ``source="link"``; a
forged, altered or expired token gets 403 and changes nothing. The pages are jinja2
templates in ``templates/`` (``action.html``, ``message.html``, both on ``base.html``);
the template engine escapes every value shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesError, RulesFile
from alert_jobs.notify.html import escape
from alert_jobs.notify.links import LinkAction, LinkError, link_secret, verify
from alert_jobs.runtime.actions import ack_alert
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, TimelineError, utcnow

LABELS = {
    "ack": "Acknowledge",
    "snooze_1h": "Snooze for 1 hour",
    "snooze_6h": "Snooze for 6 hours",
    "actionable": "Mark actionable",
    "false_positive": "Mark false positive",
    "noise": "Mark noise",
    "duplicate": "Mark duplicate",
}
OUTCOMES = {"actionable": "actionable", "false_positive": "false-positive", "noise": "noise",
            "duplicate": "duplicate"}



_TEMPLATES = Environment(loader=PackageLoader("alert_jobs.http", "templates"), autoescape=True,
                         undefined=StrictUndefined, finalize=escape, trim_blocks=True,
                         lstrip_blocks=True)


def _page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    """``templates/<template>`` rendered with ``context`` (which needs a ``title``)."""
    return HTMLResponse(_TEMPLATES.get_template(template).render(context), status_code=status)


def _message(title: str, message: str, status: int = 200) -> HTMLResponse:
    """A page that says one sentence: a refusal, an error, or what was done."""
    return _page("message.html", status, title=title, message=message)


def action_routes(get_timeline: Callable[[], Timeline],
                  get_rules: Callable[[], RulesFile]) -> list[Route]:
    """Routes for :func:`alert_jobs.http.app.create_app`."""

    def check(request: Request) -> LinkAction:
        secret = link_secret()
        if secret is None:
            raise LinkError("action links are not configured on this server")
        return verify(request.path_params["token"], secret, utcnow())

    async def show(request: Request) -> Response:
        try:
            action = check(request)
        except LinkError as exc:
            return _message("Link refused", str(exc), 403)
        alert = await run_in_threadpool(get_timeline().alerts.get, action.fingerprint)
        if alert is None:
            return _message("Unknown alert", "This alert no longer exists.", 404)
        return _page("action.html", title=LABELS[action.action], alert=alert)

    async def act(request: Request) -> Response:
        try:
            action = check(request)
        except LinkError as exc:
            return _message("Link refused", str(exc), 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        by = (form.get("by") or [""])[0].strip()[:128] or "link"
        timeline = get_timeline()
        alert = timeline.alerts.get(action.fingerprint)
        if alert is None:
            return _message("Unknown alert", "This alert no longer exists.", 404)
        try:
            rules = get_rules()
        except RulesError:
            rules = RulesFile()
        try:
            # Database work and delivery are blocking (delivery runs its own event loop):
            # keep them off the server's loop.
            done = await run_in_threadpool(perform, action, rules, timeline, by)
        except TimelineError as exc:
            return _message("Nothing to do", str(exc), 409)
        await run_in_threadpool(deliver, rules, timeline)  # tell PagerDuty about it now
        return _message("Done", done)

    return [Route("/a/{token}", show, methods=["GET"]),
            Route("/a/{token}", act, methods=["POST"])]


def perform(action: LinkAction, rules: RulesFile, timeline: Timeline, by: str) -> str:
    """Do what the link says; returns the sentence the page shows."""
    fp, now = action.fingerprint, utcnow()
    if action.action == "ack":
        ack_alert(rules, timeline, fp, by=by, source="link", now=now)
        return f"Acknowledged by {by}."
    if action.action in ("snooze_1h", "snooze_6h"):
        hours = 1 if action.action == "snooze_1h" else 6
        until = now + timedelta(hours=hours)
        timeline.actions.snooze(fp, until=until, by=by, source="link", now=now)
        return f"Snoozed until {until:%Y-%m-%d %H:%M} UTC by {by}."
    outcome = OUTCOMES[action.action]
    alert = timeline.alerts.get(fp)
    if alert is not None and alert.state.is_active and not alert.is_acked:
        ack_alert(rules, timeline, fp, by=by, outcome=outcome, source="link", now=now)
        return f"Acknowledged and marked {outcome} by {by}."
    timeline.actions.record_outcome(fp, outcome=outcome, by=by, source="link", now=now)
    return f"Marked {outcome} by {by}."
