"""``/incidents``: what happened this month, with and without an alert.

* ``GET /incidents?month=YYYY-MM`` (default: this UTC month): the incidents that
  started that month, those an alert caught (one per described episode) and those no
  rule caught;
* ``GET /incidents/new`` and ``POST /incidents``: record an incident no rule caught
  (title, start, optional end, how it was detected, the services' labels ``k=v, k=v``);
  bad input shows the form again as typed, with every reason (400), and writes nothing;
* ``GET /incidents/<id>``: the record, the questions as a form (``POST`` to the same
  address), and its timeline; ``GET /incidents/<id>.md``: the record as markdown, the
  start of a postmortem (:mod:`alert_jobs.runtime.postmortem`).

Every change is an ``incident`` event with the signed-in user as actor and source
``page``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from alert_jobs.http.auth import current_user
from alert_jobs.http.incident_form import (
    IncidentFormError,
    incident_form_html,
    parse_incident_form,
)
from alert_jobs.http.pages.context import SOURCE, Pages, posted
from alert_jobs.http.pages.render import page, refusal
from alert_jobs.http.pages.silences import TIME_HINT, parse_moment
from alert_jobs.runtime.postmortem import episode_events, postmortem_markdown
from alert_jobs.store import utcnow
from alert_jobs.store.incidents import Incident, IncidentError, month_range, parse_labels

MAX_TITLE = 300
#: Ids past the column's range are no incident (not a database error).
MAX_ID = 2**31 - 1
DONE = {"added": "Incident recorded. Answer the questions below when you know more.",
        "saved": "Incident record saved."}


@dataclass(frozen=True)
class NewDraft:
    """The new-incident form as typed: an answer with problems shows it again."""

    title: str = ""
    start: str = ""
    end: str = ""
    detected_by: str = ""
    labels: str = ""

    @classmethod
    def of(cls, form: dict[str, str]) -> NewDraft:
        return cls(*(form.get(k, "") for k in ("title", "start", "end", "detected_by",
                                               "labels")))


@dataclass(frozen=True)
class NewIncident:
    title: str
    started_at: datetime
    ended_at: datetime | None
    detected_by: str
    labels: dict[str, str]


def read_new(draft: NewDraft, now: datetime) -> tuple[NewIncident | None, list[str]]:
    """Every problem at once, so one answer lists every mistake."""
    problems: list[str] = []
    title = " ".join(draft.title.split())
    if not title:
        problems.append("Give the incident a title.")
    elif len(title) > MAX_TITLE:
        problems.append(f"The title is longer than {MAX_TITLE} characters.")
    started: datetime | None = None
    ended: datetime | None = None
    if not draft.start.strip():
        problems.append(f"Say when it started: {TIME_HINT}.")
    else:
        try:
            started = parse_moment(draft.start, "The start")
            if started > now + timedelta(minutes=5):
                problems.append("The start is in the future: record an incident once it "
                                "has started.")
        except ValueError as exc:
            problems.append(str(exc))
    if draft.end.strip():
        try:
            ended = parse_moment(draft.end, "The end")
            if started is not None and ended < started:
                problems.append("The end is before the start.")
        except ValueError as exc:
            problems.append(str(exc))
    detected_by = draft.detected_by.strip()
    if not detected_by:
        problems.append("Say how it was detected (a customer report, a dashboard, someone "
                        "noticing): the review asks why no alert did.")
    elif len(detected_by) > 4000:
        problems.append("How it was detected is longer than 4,000 characters.")
    labels: dict[str, str] = {}
    try:
        labels = parse_labels([draft.labels])
    except IncidentError as exc:
        problems.append(f"{str(exc)[:1].upper()}{str(exc)[1:]}: write the labels as "
                        "service=checkout, team=payments.")
    if problems or started is None:
        return None, problems
    return NewIncident(title, started, ended, detected_by, labels), []


def routes(pages: Pages) -> list[Route]:
    async def incident_list(request: Request) -> Response:
        now = utcnow()
        try:
            month, since, until = month_range(request.query_params.get("month", ""), now)
        except ValueError as exc:
            return refusal(request, "Bad month", f"{exc}.", 400)
        found = await run_in_threadpool(lambda: pages.get_timeline().incidents.list(
            since=since, until=until))
        prev = f"{since - timedelta(days=1):%Y-%m}"
        nxt = f"{until:%Y-%m}" if until <= now else ""
        return page(request, "incidents.html", title=f"Incidents · {month}", month=month,
                    prev=prev, next=nxt, with_alert=[i for i in found if i.has_alert],
                    without_alert=[i for i in found if not i.has_alert])

    def new_form(request: Request, draft: NewDraft, *, status: int = 200,
                 problems: Sequence[str] = ()) -> Response:
        return page(request, "incident_new.html", title="Record an incident without an alert",
                    status=status, draft=draft, problems=problems, time_hint=TIME_HINT)

    async def show_new(request: Request) -> Response:
        return new_form(request, NewDraft())

    async def create(request: Request, form: dict[str, str]) -> Response:
        draft = NewDraft.of(form)
        parsed, problems = read_new(draft, utcnow())
        if parsed is None:
            return new_form(request, draft, status=400, problems=problems)
        user = current_user(request)
        try:
            added = await run_in_threadpool(lambda: pages.get_timeline().incidents.add(
                parsed.title, parsed.started_at, by=user.name, source=SOURCE,
                detected_by=parsed.detected_by, labels=parsed.labels,
                ended_at=parsed.ended_at))
        except IncidentError as exc:  # the store's own checks; the form's are the same
            return new_form(request, draft, status=400, problems=[str(exc)])
        return RedirectResponse(f"/incidents/{added.id}?done=added", 303)

    def missing(request: Request, incident_id: int) -> Response:
        return refusal(request, "No such incident",
                       f"There is no incident #{incident_id} (the link may be wrong). "
                       "See the list of incidents.", 404)

    def load(incident_id: int) -> tuple[Incident | None, list[dict[str, object]]]:
        if incident_id > MAX_ID:
            return None, []
        timeline = pages.get_timeline()
        found = timeline.incidents.get(incident_id)
        return (found, episode_events(timeline, found)) if found else (None, [])

    async def show(request: Request) -> Response:
        incident_id = request.path_params["incident_id"]
        found, events = await run_in_threadpool(load, incident_id)
        if found is None:
            return missing(request, incident_id)
        form = Markup(incident_form_html(
            incident=found, config=pages.rules().incidents,
            action=f"/incidents/{found.id}", ask_by=False,
            extra_hidden={"csrf": current_user(request).csrf}))
        return page(request, "incident.html", title=f"Incident #{found.id}: {found.title}",
                    i=found, form=form, events=events,
                    done=DONE.get(request.query_params.get("done", ""), ""))

    async def save(request: Request, form: dict[str, str]) -> Response:
        incident_id = request.path_params["incident_id"]
        user, timeline = current_user(request), pages.get_timeline()
        found = (await run_in_threadpool(timeline.incidents.get, incident_id)
                 if incident_id <= MAX_ID else None)
        if found is None:
            return missing(request, incident_id)
        try:
            _, changes = parse_incident_form({**form, "by": user.name},
                                             pages.rules().incidents)
            await run_in_threadpool(lambda: timeline.incidents.update(
                incident_id, changes, by=user.name, source=SOURCE))
        except (IncidentFormError, IncidentError) as exc:
            return refusal(request, "Nothing recorded",
                           f"{str(exc).rstrip('.')}. Nothing changed.", 400)
        return RedirectResponse(f"/incidents/{incident_id}?done=saved", 303)

    async def markdown(request: Request) -> Response:
        incident_id = request.path_params["incident_id"]
        found, events = await run_in_threadpool(load, incident_id)
        if found is None:
            return missing(request, incident_id)
        return Response(postmortem_markdown(found, events),
                        media_type="text/markdown; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="incident-{found.id}.md"'})

    return [Route("/incidents", incident_list, methods=["GET"]),
            Route("/incidents", posted(create), methods=["POST"]),
            Route("/incidents/new", show_new, methods=["GET"]),
            Route("/incidents/{incident_id:int}.md", markdown, methods=["GET"]),
            Route("/incidents/{incident_id:int}", show, methods=["GET"]),
            Route("/incidents/{incident_id:int}", posted(save), methods=["POST"])]


__all__ = ["NewDraft", "read_new", "routes"]
