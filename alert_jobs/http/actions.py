"""Signed action links: ``GET /a/<token>`` shows what the link will do, ``POST`` does it.

Chat tools fetch links to preview them, so acting on GET would ack alerts nobody saw.
A link acts on the alert episode its message was sent for, once
(:mod:`alert_jobs.store.link_uses`, checked in the action's own transaction):

* a forged, altered (even in base64's spare bits) or expired token: 403, nothing changes;
* the episode ended (resolved since, or fired again since): 410, "this alert has
  resolved since; open the current one", with a read-only view of the current alert
  (a short-lived ``view`` token, so the page is no way to act on the new incident);
* the link was used before, or (ack) someone already acked: 409 naming who and when;
* the form: a name is required (400 otherwise: a person, not "link", did it), and a
  CSRF token is double-submitted (hidden field + ``alert_jobs_csrf`` cookie, SameSite
  Lax, HttpOnly, path ``/a/``): a POST whose field and cookie differ gets 403. Lax, not
  Strict: links are opened from web mail and chat, i.e. from another site, and a Strict
  cookie is not sent on such a navigation, so each page opened would mint a new token
  and overwrite the cookie, and the form of a page opened earlier would be refused.
  Lax still keeps the cookie off cross-site POSTs, which is what the token guards.

Three links do more than one click (:func:`_special`):

* ``disable`` (firing messages): the form asks who, why (required) and for how long
  (1 h, 1 day, 7 days, until enabled); it disables the rule once (a ``disabled`` event
  with the expiry), and the result page offers a signed ``enable`` link to undo it;
* ``enable``: enables the rule again, once; bound to no episode;
* ``incident`` (resolve messages, "how did it go?"): the episode's incident record form
  (:mod:`alert_jobs.http.incident_form`); usable again while it lasts, each POST updates
  the record; a bad answer is a 400 page naming it, and nothing is written.

Every accepted action is a timeline event with its actor and ``source="link"``. The
pages are jinja2 templates in ``templates/`` on ``base.html``; the template engine
escapes every value shown.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesError, RulesFile
from alert_jobs.core.model import AlertRecord
from alert_jobs.http.auth.guard import FormRefused, read_limited
from alert_jobs.http.incident_form import (
    IncidentFormError,
    incident_form_html,
    parse_incident_form,
)
from alert_jobs.notify.html import escape
from alert_jobs.notify.links import (
    DISABLE,
    ENABLE,
    INCIDENT,
    VIEW,
    LinkAction,
    LinkError,
    enable_link,
    link_secret,
    verify,
    view_token,
)
from alert_jobs.runtime.actions import ack_alert
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, TimelineError, utcnow
from alert_jobs.store.incidents import IncidentError
from alert_jobs.store.link_uses import LIVE, AlreadyDone, LinkGone, LinkUse, is_current

LABELS = {
    "ack": "Acknowledge",
    "snooze_1h": "Snooze for 1 hour",
    "snooze_6h": "Snooze for 6 hours",
    "actionable": "Mark actionable",
    "false_positive": "Mark false positive",
    "noise": "Mark noise",
    "duplicate": "Mark duplicate",
    DISABLE: "Disable this rule",
    ENABLE: "Enable this rule again",
    INCIDENT: "How did it go?",
}
#: A disable link's "for how long" answers: (form value, label, duration; None: until
#: someone enables it).
DISABLE_FOR: tuple[tuple[str, str, timedelta | None], ...] = (
    ("1h", "1 hour", timedelta(hours=1)), ("1d", "1 day", timedelta(days=1)),
    ("7d", "7 days", timedelta(days=7)), ("", "until enabled again", None))
ENTER_WHY = "Say why the rule is disabled: the timeline and whoever enables it read it."
OUTCOMES = {"actionable": "actionable", "false_positive": "false-positive", "noise": "noise",
            "duplicate": "duplicate"}
#: Actions that only make sense while the alert is active (outcomes may follow a resolve).
ACTIVE_ONLY = frozenset({"ack", "snooze_1h", "snooze_6h"})
CSRF_COOKIE = "alert_jobs_csrf"
CSRF_FIELD = "csrf"
ENTER_NAME = "Enter your name: the timeline records who did this."

_TEMPLATES = Environment(loader=PackageLoader("alert_jobs.http", "templates"), autoescape=True,
                         undefined=StrictUndefined, finalize=escape, trim_blocks=True,
                         lstrip_blocks=True)


def _page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    """``templates/<template>`` rendered with ``context`` (which needs a ``title``)."""
    return HTMLResponse(_TEMPLATES.get_template(template).render(context), status_code=status)


def _message(title: str, message: str, status: int = 200) -> HTMLResponse:
    """A page that says one sentence: a refusal, an error, or what was done."""
    return _page("message.html", status, title=title, message=message)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "an unknown time"


def link_use(action: LinkAction) -> LinkUse:
    return LinkUse(action.token_id, action.action, action.episode, action.fired_at,
                   active_only=action.action in ACTIVE_ONLY)


def _set_csrf(response: HTMLResponse, csrf: str, request: Request) -> HTMLResponse:
    response.set_cookie(CSRF_COOKIE, csrf, path="/a/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


def _disable_form(alert: AlertRecord, request: Request, *, status: int = 200,
                  error: str = "", by: str = "", note: str = "", chosen: str = "1d"
                  ) -> HTMLResponse:
    csrf = _csrf_token(request)
    return _set_csrf(_page("disable.html", status, title=LABELS[DISABLE], alert=alert,
                           csrf=csrf, error=error, by=by, note=note, chosen=chosen,
                           durations=[(v, label) for v, label, _ in DISABLE_FOR]),
                     csrf, request)


def _enable_form(alert: AlertRecord, timeline: Timeline, request: Request, *,
                 status: int = 200, error: str = "") -> HTMLResponse:
    setting = timeline.rule_settings.get(alert.rule)
    if setting is None or not setting.disabled:
        state = "It is enabled now."
    else:
        span = f"until {_when(setting.until)}" if setting.until else "until enabled"
        state = (f"It was disabled by {setting.changed_by} at {_when(setting.changed_at)}, "
                 f"{span}" + (f": {setting.note}" if setting.note else "") + ".")
    csrf = _csrf_token(request)
    return _set_csrf(_page("enable.html", status, title=LABELS[ENABLE], rule=alert.rule,
                           state=state, csrf=csrf, error=error), csrf, request)


def _episode_times(alert: AlertRecord, action: LinkAction) -> tuple[datetime, datetime | None]:
    """When the link's episode started and (if the alert is still in it) ended."""
    started = (datetime.fromtimestamp(action.fired_at, UTC) if action.fired_at
               else alert.fired_at or utcnow())
    same = alert.episode == action.episode
    ended = alert.resolved_at if same and not alert.state.is_active else None
    return started, ended


def _incident_page(alert: AlertRecord, action: LinkAction, timeline: Timeline,
                   rules: RulesFile, request: Request, *, status: int = 200, error: str = "",
                   saved: str = "") -> HTMLResponse:
    csrf = _csrf_token(request)
    incident = timeline.incidents.for_episode(alert.fingerprint, action.episode)
    form = incident_form_html(incident=incident, config=rules.incidents,
                              action=request.url.path, extra_hidden={CSRF_FIELD: csrf})
    started, ended = _episode_times(alert, action)
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return _set_csrf(_page("incident.html", status, title=LABELS[INCIDENT], rule=alert.rule,
                           labels=labels, fired=_when(started),
                           ended=_when(ended) if ended else "", error=error, saved=saved,
                           form=Markup(form)), csrf, request)


def _gone(alert: AlertRecord) -> HTMLResponse:
    """410 for a link whose episode ended, pointing at the current state of the alert."""
    secret = link_secret()
    assert secret is not None  # the token was just verified with it
    if alert.state in LIVE:
        now_text = f"It fired again at {_when(alert.fired_at)} and is {alert.state} now."
    elif alert.resolved_at is not None:
        now_text = f"It resolved at {_when(alert.resolved_at)}; it is {alert.state} now."
    else:
        now_text = f"It is {alert.state} now."
    return _page("gone.html", 410, title="This link's alert has ended",
                 message="This alert has resolved since; open the current one.",
                 now_text=now_text, current=f"/a/{view_token(alert.fingerprint, secret, utcnow())}")


def _done_before(exc: AlreadyDone) -> HTMLResponse:
    return _message("Already done", f"{str(exc)[:1].upper()}{str(exc)[1:]}.", 409)


def _view(alert: AlertRecord) -> HTMLResponse:
    facts = [("Fired at", _when(alert.fired_at)), ("Episode", str(alert.episode))]
    if alert.resolved_at is not None and not alert.state.is_active:
        facts.append(("Resolved at", _when(alert.resolved_at)))
    if alert.acked_at is not None:
        facts.append(("Acknowledged", f"by {alert.acked_by or 'someone'} at "
                                      f"{_when(alert.acked_at)}"))
    if alert.snoozed_until is not None and alert.snoozed_until > utcnow():
        facts.append(("Snoozed until", _when(alert.snoozed_until)))
    return _page("alert.html", title=f"Alert {alert.rule}", alert=alert, facts=facts,
                 command=f"alert-jobs ack {alert.fingerprint[:12]} --by YOU")


def _csrf_token(request: Request) -> str:
    """The browser's CSRF token if it has a well-formed one (other open link pages keep
    working), else a new one."""
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if 32 <= len(token) <= 64 and token.isascii() else secrets.token_urlsafe(32)


def _form(alert: AlertRecord, action: LinkAction, request: Request, *, status: int = 200,
          error: str = "") -> HTMLResponse:
    csrf = _csrf_token(request)
    response = _page("action.html", status, title=LABELS[action.action], alert=alert,
                     csrf=csrf, error=error)
    response.set_cookie(CSRF_COOKIE, csrf, path="/a/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


def action_routes(get_timeline: Callable[[], Timeline],
                  get_rules: Callable[[], RulesFile]) -> list[Route]:
    """Routes for :func:`alert_jobs.http.app.create_app`."""

    def _rules() -> RulesFile:
        try:
            return get_rules()
        except RulesError:
            return RulesFile()

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
        timeline = get_timeline()
        alert = await run_in_threadpool(timeline.alerts.get, action.fingerprint)
        if alert is None:
            return _message("Unknown alert", "This alert no longer exists.", 404)
        if action.action == VIEW:
            return _view(alert)
        if action.action == INCIDENT:
            return await run_in_threadpool(_incident_page, alert, action, timeline,
                                           _rules(), request)
        if action.action != ENABLE and not is_current(alert, link_use(action)):
            return _gone(alert)
        used = await run_in_threadpool(timeline.actions.link_used, action.token_id)
        if used is not None:
            return _done_before(AlreadyDone(
                f"this link was already used by {used[0]} at {_when(used[1])}; "
                "nothing changed", *used))
        if action.action == DISABLE:
            return _disable_form(alert, request)
        if action.action == ENABLE:
            return await run_in_threadpool(_enable_form, alert, timeline, request)
        return _form(alert, action, request)

    async def act(request: Request) -> Response:
        try:
            action = check(request)
        except LinkError as exc:
            return _message("Link refused", str(exc), 403)
        if action.action == VIEW:
            return _message("Read-only link", "This link only shows the alert.", 405)
        try:  # the pages' limit (64 KiB): the incident link stays usable for days
            body = await read_limited(request)
        except FormRefused as exc:
            return _message("Form refused", str(exc), exc.status)
        form = parse_qs(body.decode("utf-8", "replace"))
        if any("\x00" in v for values in form.values() for v in values):
            return _message("Form refused", "The form holds a NUL character, which no "
                            "field may contain. Nothing changed.", 400)
        sent = (form.get(CSRF_FIELD) or [""])[0]
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (sent and cookie and hmac.compare_digest(sent.encode(), cookie.encode())):
            return _message("Form refused", "This form did not come from this server's page "
                            "(or its cookie is gone): open the link again.", 403)
        by = (form.get("by") or [""])[0].strip()[:128]
        timeline = get_timeline()
        alert = await run_in_threadpool(timeline.alerts.get, action.fingerprint)
        if alert is None:
            return _message("Unknown alert", "This alert no longer exists.", 404)
        rules = _rules()
        if action.action in (DISABLE, ENABLE, INCIDENT):
            fields = {k: v[0] for k, v in form.items() if v}
            return await run_in_threadpool(_special, action, alert, fields, rules, timeline,
                                           request)
        if not by:
            return _form(alert, action, request, status=400, error=ENTER_NAME)
        try:
            # Database work and delivery are blocking (delivery runs its own event loop):
            # keep them off the server's loop.
            done = await run_in_threadpool(perform, action, rules, timeline, by)
        except LinkGone as exc:
            return _gone(exc.record)
        except AlreadyDone as exc:
            return _done_before(exc)
        except TimelineError as exc:
            return _message("Nothing to do", str(exc), 409)
        await run_in_threadpool(deliver, rules, timeline)  # tell PagerDuty about it now
        return _message("Done", done)

    return [Route("/a/{token}", show, methods=["GET"]),
            Route("/a/{token}", act, methods=["POST"])]


def _special(action: LinkAction, alert: AlertRecord, form: dict[str, str], rules: RulesFile,
             timeline: Timeline, request: Request) -> Response:
    """POST of a disable, enable or incident link (see the module's docstring)."""
    by = form.get("by", "").strip()[:128]
    if action.action == INCIDENT:
        try:
            by, changes = parse_incident_form(form, rules.incidents)
        except IncidentFormError as exc:
            return _incident_page(alert, action, timeline, rules, request, status=400,
                                  error=str(exc))
        try:  # the episode's rule, labels and times, as the page and the CLI describe it
            timeline.incidents.answer(alert.fingerprint, action.episode, changes, by=by,
                                      source="link")
        except IncidentError as exc:
            return _incident_page(alert, action, timeline, rules, request, status=400,
                                  error=str(exc))
        return _incident_page(alert, action, timeline, rules, request,
                              saved=f"Saved: thank you, {by}. You can change the answers "
                                    "below until the link expires.")
    if action.action == ENABLE:
        if not by:
            return _enable_form(alert, timeline, request, status=400, error=ENTER_NAME)
        try:
            timeline.rule_settings.set_disabled(alert.rule, False, by=by, source="link",
                                                fingerprint=alert.fingerprint,
                                                link=link_use(action))
        except AlreadyDone as exc:
            return _done_before(exc)
        return _message("Done", f"Rule {alert.rule} enabled again by {by}.")
    note = form.get("note", "").strip()[:500]
    chosen = form.get("for", "")
    durations = {v: d for v, _, d in DISABLE_FOR}
    again = {"by": by, "note": note, "chosen": chosen}
    if not by:
        return _disable_form(alert, request, status=400, error=ENTER_NAME, **again)
    if not note:
        return _disable_form(alert, request, status=400, error=ENTER_WHY, **again)
    if chosen not in durations:
        return _disable_form(alert, request, status=400, error="Choose for how long: "
                             + ", ".join(label for _, label, _ in DISABLE_FOR) + ".",
                             **{**again, "chosen": "1d"})
    now = utcnow()
    span = durations[chosen]
    until = now + span if span is not None else None
    setting = timeline.rule_settings.get(alert.rule, now)
    if setting is not None and setting.disabled:
        return _done_before(AlreadyDone(
            f"rule {alert.rule} was already disabled by {setting.changed_by} at "
            f"{_when(setting.changed_at)}; nothing changed", setting.changed_by,
            setting.changed_at))
    try:
        timeline.rule_settings.set_disabled(alert.rule, True, by=by, note=note, source="link",
                                            now=now, until=until,
                                            fingerprint=alert.fingerprint,
                                            link=link_use(action))
    except LinkGone as exc:
        return _gone(exc.record)
    except AlreadyDone as exc:
        return _done_before(exc)
    ttl = max(rules.defaults.action_link_ttl, span or timedelta(0)) + timedelta(hours=1)
    enable = enable_link(rules.defaults.action_base_url, alert.fingerprint, now=now, ttl=ttl)
    base = rules.defaults.action_base_url.rstrip("/")
    enable_path = enable[len(base):] if base and enable.startswith(base) else enable
    span_text = f"until {_when(until)}" if until else "until someone enables it"
    return _page("disabled.html", title="Done", rule=alert.rule, enable=enable_path,
                 message=f"Rule {alert.rule} disabled {span_text} by {by}: {note}")


def perform(action: LinkAction, rules: RulesFile, timeline: Timeline, by: str) -> str:
    """Do what the link says, once, on its episode; returns the sentence the page shows.
    Raises :class:`LinkGone` or :class:`AlreadyDone` (and changes nothing) otherwise."""
    fp, now, use = action.fingerprint, utcnow(), link_use(action)
    if action.action == "ack":
        ack_alert(rules, timeline, fp, by=by, source="link", now=now, link=use)
        return f"Acknowledged by {by}."
    if action.action in ("snooze_1h", "snooze_6h"):
        hours = 1 if action.action == "snooze_1h" else 6
        until = now + timedelta(hours=hours)
        timeline.actions.snooze(fp, until=until, by=by, source="link", now=now, link=use)
        return f"Snoozed until {until:%Y-%m-%d %H:%M} UTC by {by}."
    outcome = OUTCOMES[action.action]
    alert = timeline.alerts.get(fp)
    if alert is not None and alert.state in LIVE and not alert.is_acked:
        ack_alert(rules, timeline, fp, by=by, outcome=outcome, source="link", now=now,
                  link=use)
        return f"Acknowledged and marked {outcome} by {by}."
    timeline.actions.record_outcome(fp, outcome=outcome, by=by, source="link", now=now,
                                    link=use)
    return f"Marked {outcome} by {by}."
