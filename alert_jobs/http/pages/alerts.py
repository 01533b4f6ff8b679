"""``/alerts``: what is active now, grouped by state and severity; ``/alerts/<fp>``: one
alert's story (every timeline event, with actor, source and Dagster run) and what a
responder can do about it — acknowledge, unacknowledge, snooze, say what it was, or
silence alerts like it (the silence form, prefilled with its labels).

Every action is a POST with the session's CSRF token, is written to the timeline with
the signed-in user as actor and ``source="page"``, and redirects back to the alert's
page (post/redirect/get: a reload does not act twice). An ack is delivered at once, so
an incident tool (PagerDuty) hears about it, as it does from a signed link.

The page's **Incident** section shows the record of the alert's latest episode (how it
was verified, false positive, mitigation, follow-ups, runbook) with the questions as a
form (``POST /alerts/<fp>/incident``, the episode in a hidden field so an answer given
while the alert fires again still lands on the episode that was shown), and links the
records of earlier episodes (``/incidents/<id>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from alert_jobs.core.durations import DurationError, parse_duration, short_duration
from alert_jobs.core.model import AckOutcome, AlertRecord, Matcher, MatcherError
from alert_jobs.http.auth import current_user
from alert_jobs.http.incident_form import (
    IncidentFormError,
    incident_form_html,
    parse_incident_form,
)
from alert_jobs.http.pages.alert_views import SHOWN, alert_rows, counts, grouped, matching
from alert_jobs.http.pages.context import SOURCE, Pages, posted
from alert_jobs.http.pages.render import page, refusal, when
from alert_jobs.notify.links import rule_links
from alert_jobs.runtime.actions import ack_alert
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import TimelineError, utcnow
from alert_jobs.store.incidents import Incident, IncidentError

SNOOZE_CHOICES = ("1h", "6h", "24h")
MAX_SNOOZE = timedelta(days=30)
#: What the alert page says after an action (``?done=``), so a reload shows no form resend.
DONE = {"ack": "Acknowledged.", "unack": "Acknowledgement removed: it can page again.",
        "snooze": "Snoozed.", "outcome": "Outcome recorded.",
        "incident": "Incident record saved."}
EVENTS_SHOWN = 500


def parse_filter(text: str) -> list[Matcher]:
    """``team="payments", severity=~"critical|warning"`` (braces optional, as in
    Alertmanager's UI) → matchers; raises :class:`MatcherError` naming the bad one."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    parts, current, quote_ = [], "", ""
    for char in text:
        if quote_:
            quote_ = "" if char == quote_ else quote_
        elif char in "\"'":
            quote_ = char
        elif char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [Matcher.parse(part) for part in parts if part.strip()]


def all_url(text: str) -> str:
    return "/alerts?" + urlencode({"filter": text, "all": "1"} if text else {"all": "1"})


def silence_form_url(record: AlertRecord) -> str:
    """The new-silence form, prefilled with this alert's rule and labels."""
    matchers = [f'alertname="{record.rule}"',
                *(f'{k}="{v}"' for k, v in sorted(record.labels.items()))]
    return "/silences/new?" + urlencode([("matcher", m) for m in matchers])


@dataclass
class Shown:
    """What the alert page shows besides the alert: its events and incident records."""

    events: list[dict[str, object]] = field(default_factory=list)
    row: object = None
    incident: Incident | None = None  # the latest episode's record
    earlier: list[Incident] = field(default_factory=list)  # other episodes' records


def routes(pages: Pages) -> list[Route]:
    async def alert_list(request: Request) -> Response:
        text = request.query_params.get("filter", "").strip()
        try:
            matchers = parse_filter(text)
        except MatcherError as exc:
            return refusal(request, "Bad filter", f"{exc}. A filter is label matchers "
                           'separated by commas, e.g. team="payments", severity=~"critical|'
                           'warning".', 400)
        show_all = request.query_params.get("all") == "1"

        def build() -> Response:
            now = utcnow()
            timeline = pages.get_timeline()
            active = timeline.alerts.list()
            shown = matching(active, matchers) if matchers else active
            rows = alert_rows(timeline, pages.rules(), now, alerts=shown, active=active)
            sections = grouped(rows, None if show_all else SHOWN)
            return page(request, "alerts.html", title="Alerts", sections=sections,
                        counts=counts(rows, sections), active=len(active), filter=text,
                        show_all=show_all, all_url=all_url(text))

        try:  # the queries and the template, off the server's event loop
            return await run_in_threadpool(build)
        except Exception as exc:  # the database is down: say so, do not crash
            return refusal(request, "Timeline unavailable",
                           f"The timeline database did not answer ({type(exc).__name__}).",
                           503)

    def load(fp: str) -> tuple[AlertRecord | None, Shown]:
        timeline = pages.get_timeline()
        record = timeline.alerts.get(fp)
        if record is None:
            return None, Shown()
        shown = Shown(events=timeline.events.list(fingerprint=fp, limit=EVENTS_SHOWN),
                      row=alert_rows(timeline, pages.rules(), utcnow(), alerts=[record])[0])
        if record.episode >= 1:
            shown.incident = timeline.incidents.for_episode(fp, record.episode)
            shown.earlier = [i for i in timeline.incidents.list(fingerprint=fp)
                             if i.episode != record.episode]
        return record, shown

    async def alert_page(request: Request) -> Response:
        fp = request.path_params["fingerprint"]
        record, shown = await run_in_threadpool(load, fp)
        if record is None:
            return unknown(request, fp)
        done = DONE.get(request.query_params.get("done", ""), "")
        form = Markup(incident_form_html(
            incident=shown.incident, config=pages.rules().incidents,
            action=f"/alerts/{quote(fp)}/incident", ask_by=False,
            extra_hidden={"csrf": current_user(request).csrf,
                          "episode": str(record.episode)})) if record.episode >= 1 else ""
        links = rule_links(pages.rules(), record.rule, record.fingerprint,
                           episode=record.episode, fired_at=record.fired_at, now=utcnow())
        return page(request, "alert.html", title=f"{record.rule}", alert=record, row=shown.row,
                    events=shown.events, done=done, run_url=pages.run_url, rule_links=links,
                    silence_url=silence_form_url(record), outcomes=[str(o) for o in AckOutcome],
                    snooze_choices=SNOOZE_CHOICES, events_shown=EVENTS_SHOWN,
                    incident=shown.incident, earlier=shown.earlier, incident_form=form)

    def unknown(request: Request, fp: str) -> Response:
        return refusal(request, "Unknown alert",
                       f"No alert has the fingerprint {fp!r}: it may have been mistyped, or "
                       "the link is from another server. See the list of alerts.", 404)

    def back(fp: str, done: str) -> Response:
        return RedirectResponse(f"/alerts/{quote(fp)}?done={done}", 303)

    async def act(request: Request, form: dict[str, str]) -> Response:
        fp, action = request.path_params["fingerprint"], request.path_params["action"]
        timeline, rules, user = pages.get_timeline(), pages.rules(), current_user(request)
        record = await run_in_threadpool(timeline.alerts.get, fp)
        if record is None:
            return unknown(request, fp)
        note = form.get("note", "").strip()[:2000]
        now = utcnow()
        try:
            if action == "ack":
                if record.acked_at is not None:
                    return refusal(request, "Already acknowledged",
                                   f"{record.acked_by or 'Someone'} acknowledged it at "
                                   f"{when(record.acked_at)}; nothing changed.", 409)
                outcome = form.get("outcome") or None
                if outcome is not None and outcome not in {str(o) for o in AckOutcome}:
                    return bad_outcome(request, outcome)
                await run_in_threadpool(lambda: ack_alert(
                    rules, timeline, fp, by=user.name, note=note, outcome=outcome,
                    source=SOURCE, now=now))
                await run_in_threadpool(deliver, rules, timeline)  # tell PagerDuty now
            elif action == "unack":
                await run_in_threadpool(lambda: timeline.actions.unack(
                    fp, by=user.name, source=SOURCE, now=now))
            elif action == "snooze":
                text = form.get("duration", "").strip()
                try:
                    delta = parse_duration(text)
                except (DurationError, OverflowError) as exc:
                    return refusal(request, "Cannot snooze", f"{exc}. Use a duration such "
                                   "as 30m, 1h or 6h.", 400)
                if not timedelta(0) < delta <= MAX_SNOOZE:
                    return refusal(request, "Cannot snooze",
                                   f"A snooze lasts more than 0 and at most "
                                   f"{short_duration(MAX_SNOOZE)}; {text!r} does not. For "
                                   "longer, silence it (with a comment saying why).", 400)
                await run_in_threadpool(lambda: timeline.actions.snooze(
                    fp, until=now + delta, by=user.name, note=note, source=SOURCE, now=now))
            elif action == "outcome":
                outcome = form.get("outcome", "")
                if outcome not in {str(o) for o in AckOutcome}:
                    return bad_outcome(request, outcome)
                await run_in_threadpool(lambda: timeline.actions.record_outcome(
                    fp, outcome=outcome, by=user.name, source=SOURCE, now=now))
            else:
                return refusal(request, "Unknown action",
                               f"{action!r} is not something this page can do.", 404)
        except TimelineError as exc:  # not active, already acked, …: nothing changed
            return refusal(request, "Nothing changed", f"{str(exc)[:1].upper()}"
                           f"{str(exc)[1:]}.", 409)
        return back(fp, action)

    async def answer(request: Request, form: dict[str, str]) -> Response:
        """The incident questions for one episode, answered by the signed-in user."""
        fp, user = request.path_params["fingerprint"], current_user(request)
        timeline = pages.get_timeline()
        record = await run_in_threadpool(timeline.alerts.get, fp)
        if record is None:
            return unknown(request, fp)
        raw = form.get("episode", "").strip()
        if not raw.isdigit() or not 1 <= int(raw) <= record.episode:
            return refusal(request, "Nothing recorded",
                           f"This alert has no episode {raw[:20]!r} (it has fired "
                           f"{record.episode} time(s)). Nothing changed.", 400)
        try:
            _, changes = parse_incident_form({**form, "by": user.name},
                                             pages.rules().incidents)
        except IncidentFormError as exc:
            return refusal(request, "Nothing recorded", f"{exc} Nothing changed.", 400)
        try:
            await run_in_threadpool(lambda: timeline.incidents.answer(
                fp, int(raw), changes, by=user.name, source=SOURCE))
        except IncidentError as exc:
            return refusal(request, "Nothing recorded", f"{exc}. Nothing changed.", 400)
        return RedirectResponse(f"/alerts/{quote(fp)}?done=incident#incident", 303)

    def bad_outcome(request: Request, outcome: str) -> Response:
        return refusal(request, "Unknown outcome",
                       f"{outcome!r} is not an outcome; use one of "
                       f"{', '.join(str(o) for o in AckOutcome)}. Nothing changed.", 400)

    return [Route("/alerts", alert_list, methods=["GET"]),
            Route("/alerts/{fingerprint}", alert_page, methods=["GET"]),
            Route("/alerts/{fingerprint}/incident", posted(answer), methods=["POST"]),
            Route("/alerts/{fingerprint}/{action}", posted(act), methods=["POST"])]
