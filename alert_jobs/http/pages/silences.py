"""``/silences``: the silences a responder has set, and a form to set one.

* ``GET /silences``: active silences, pending ones (they start later) and those that
  ended in the last day, each with the active alerts it mutes now (a pending one: would
  mute), and an Expire button on those not yet ended;
* ``GET /silences/new``: the form, prefilled from repeated ``matcher`` query parameters
  (the alert page links here that way);
* ``POST /silences``: ``action=preview`` shows the alerts the silence would mute and
  writes nothing; ``action=create`` adds it (a ``silenced`` event, actor = the user,
  source ``page``) and goes back to the list;
* ``POST /silences/<id>/expire``: ends it now (an ``unsilenced`` event). The id must be
  a silence's whole id: the store's expire also takes a prefix, for people typing ids.

Bad input re-renders the form, as typed, with every reason (400); nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from alert_jobs.core.durations import DurationError, parse_duration
from alert_jobs.core.model import AlertRecord, Matcher, MatcherError, Silence, alert_labels
from alert_jobs.core.muting import SilenceIndex, muted_alerts
from alert_jobs.http.auth import current_user
from alert_jobs.http.pages.context import SOURCE, Pages, posted
from alert_jobs.http.pages.render import page, refusal
from alert_jobs.store import TimelineError, utcnow

#: Ended silences stay on the page this long (muted), so "who lifted it?" has an answer.
RECENT = timedelta(hours=24)
#: A broad silence may mute thousands of alerts; the page names this many per silence.
SHOWN_ALERTS = 50
DEFAULT_ENDS = "2h"
TIME_HINT = "YYYY-MM-DDTHH:MM (UTC) or an ISO time with an offset (2026-11-30T14:00+01:00)"


@dataclass(frozen=True)
class Draft:
    """The form as typed: every answer shows it again, unchanged."""

    matchers: str = ""
    starts: str = ""
    ends: str = DEFAULT_ENDS
    comment: str = ""

    @classmethod
    def of(cls, form: dict[str, str]) -> Draft:
        return cls(form.get("matchers", ""), form.get("starts", ""),
                   form.get("ends", ""), form.get("comment", ""))


@dataclass
class Parsed:
    """A draft read: the silence it describes, or the reasons it describes none."""

    matchers: tuple[Matcher, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    comment: str = ""
    problems: list[str] = field(default_factory=list)


def parse_matchers(text: str, problems: list[str]) -> tuple[Matcher, ...]:
    """One matcher per non-blank line; a bad line is named by its number."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append(Matcher.parse(line))
        except MatcherError as exc:
            problems.append(f"Matcher line {number}: {exc}")
    if not found and not problems:
        problems.append("Give at least one matcher, one per line: name=value, name!=value, "
                        "name=~regex or name!~regex (a silence without one would mute "
                        "every alert).")
    return tuple(found)


def parse_moment(text: str, what: str) -> datetime:
    """A ``datetime-local`` value (``YYYY-MM-DDTHH:MM``, read as UTC) or an ISO time."""
    try:
        moment = datetime.fromisoformat(text.strip())
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-01:00 is past year 9999 in UTC
        raise ValueError(f"{what} {text.strip()!r} is not a time: write {TIME_HINT}.") from None


def parse_ends(text: str, starts_at: datetime) -> datetime:
    """A duration from the start (``2h``, ``30m``, ``1d``) or a time."""
    raw = text.strip()
    if not raw:
        raise ValueError("Say when the silence ends: a duration from its start (2h, 30m, 1d) "
                         f"or a time, {TIME_HINT}.")
    try:
        length = parse_duration(raw)
    except DurationError:
        try:
            return parse_moment(raw, "The end")
        except ValueError:
            raise ValueError(f"The end {raw!r} is neither a duration from the start (2h, "
                             f"30m, 1d) nor a time ({TIME_HINT}).") from None
    if length <= timedelta(0):
        raise ValueError(f"The duration {raw!r} must be longer than zero.")
    return starts_at + length


def read_draft(draft: Draft, now: datetime) -> Parsed:
    """Check everything at once, so one answer lists every mistake."""
    parsed = Parsed(comment=draft.comment.strip())
    parsed.matchers = parse_matchers(draft.matchers, parsed.problems)
    try:
        starts_at = parse_moment(draft.starts, "The start") if draft.starts.strip() else now
        ends_at = parse_ends(draft.ends, starts_at)
        # A start already past (a datetime-local value has whole minutes) means now, as
        # in Alertmanager: a silence cannot mute what already happened.
        starts_at = max(starts_at, now)
        if ends_at <= starts_at:
            raise ValueError(f"The silence would end ({ends_at:%Y-%m-%d %H:%M} UTC) before "
                             f"it starts ({starts_at:%Y-%m-%d %H:%M} UTC): give a later end.")
        parsed.starts_at, parsed.ends_at = starts_at, ends_at
    except ValueError as exc:
        parsed.problems.append(str(exc))
    except OverflowError:
        parsed.problems.append(f"The end {draft.ends.strip()!r} is too far away.")
    if not parsed.comment:
        parsed.problems.append("Say why in the comment: whoever sees the silence next "
                               "needs to know what it is for and whether it may go.")
    return parsed


@dataclass(frozen=True)
class Listed:
    """One silence on the page, with the active alerts it mutes (or would)."""

    silence: Silence
    state: str  # "active", "pending" or "ended"
    alerts: Sequence[AlertRecord] = ()
    more: int = 0


def listed(silences: Sequence[Silence], alerts: Sequence[AlertRecord],
           now: datetime) -> dict[str, list[Listed]]:
    """The page's three lists: each alert is matched against the index once, not
    against every silence."""
    live = [s for s in silences if s.ends_at > now]
    index = SilenceIndex(live)
    muting: dict[str, list[AlertRecord]] = {s.id: [] for s in live}
    label_sets = [alert_labels(alert, alert.severity) for alert in alerts]
    for alert, found in zip(alerts, index.matching_all(label_sets), strict=True):
        for silence in found:
            muting[silence.id].append(alert)
    lists: dict[str, list[Listed]] = {"active": [], "pending": [], "ended": []}
    for silence in silences:
        if silence.ends_at <= now:
            lists["ended"].append(Listed(silence, "ended"))
            continue
        state = "active" if silence.is_active(now) else "pending"
        hits = muting[silence.id]
        lists[state].append(Listed(silence, state, hits[:SHOWN_ALERTS],
                                   max(0, len(hits) - SHOWN_ALERTS)))
    lists["active"].sort(key=lambda item: item.silence.ends_at)
    lists["ended"].sort(key=lambda item: item.silence.ends_at, reverse=True)
    return lists


def routes(pages: Pages) -> list[Route]:
    def form_page(request: Request, draft: Draft, *, status: int = 200,
                  problems: Sequence[str] = (), preview: Parsed | None = None,
                  would_mute: Sequence[AlertRecord] = ()) -> Response:
        return page(request, "silence_new.html", title="New silence", status=status,
                    draft=draft, problems=problems, preview=preview,
                    would_mute=would_mute[:SHOWN_ALERTS],
                    more=max(0, len(would_mute) - SHOWN_ALERTS), time_hint=TIME_HINT)

    async def show_list(request: Request) -> Response:
        now = utcnow()
        timeline = pages.get_timeline()

        def load() -> tuple[list[Silence], list[AlertRecord]]:
            return (timeline.silences.list(ended_after=now - RECENT, now=now),
                    timeline.alerts.list())

        silences, alerts = await run_in_threadpool(load)
        known = {s.id for s in silences}
        notices = [(f"Silence {request.query_params[key]} {verb}.")
                   for key, verb in (("created", "created"), ("expired", "expired"))
                   if request.query_params.get(key) in known]
        lists = listed(silences, alerts, now)
        return page(request, "silences.html", title="Silences", notices=notices,
                    active=lists["active"], pending=lists["pending"], ended=lists["ended"])

    async def show_form(request: Request) -> Response:
        prefill = [m.strip() for m in request.query_params.getlist("matcher") if m.strip()]
        return form_page(request, Draft(matchers="\n".join(prefill)))

    async def submit(request: Request, form: dict[str, str]) -> Response:
        draft, action = Draft.of(form), form.get("action", "")
        if action not in ("preview", "create"):
            return form_page(request, draft, status=400, problems=[
                "Press Preview or Create (this form said neither)."])
        parsed = read_draft(draft, utcnow())
        if parsed.problems:
            return form_page(request, draft, status=400, problems=parsed.problems)
        starts_at, ends_at = parsed.starts_at, parsed.ends_at
        assert starts_at is not None and ends_at is not None  # no problems: both were read
        timeline, user = pages.get_timeline(), current_user(request)
        if action == "preview":
            silence = Silence("preview", parsed.matchers, starts_at, ends_at, user.name,
                              parsed.comment)
            alerts = await run_in_threadpool(timeline.alerts.list)
            return form_page(request, draft, preview=parsed,
                             would_mute=muted_alerts(silence, alerts))
        try:
            created = await run_in_threadpool(lambda: timeline.silences.add(
                parsed.matchers, starts_at=starts_at, ends_at=ends_at,
                created_by=user.name, comment=parsed.comment, source=SOURCE))
        except TimelineError as exc:  # the store's own checks; the form's are the same
            return form_page(request, draft, status=400, problems=[str(exc)])
        return RedirectResponse(f"/silences?created={created.id}", 303)

    async def expire(request: Request, form: dict[str, str]) -> Response:
        silence_id = request.path_params["silence_id"]
        timeline = pages.get_timeline()
        found = await run_in_threadpool(timeline.silences.get, silence_id)
        if found is None:
            return refusal(request, "No such silence",
                           f"There is no silence with the id {silence_id!r} (it may have "
                           "been deleted, or the link is wrong). Nothing changed.", 404)
        await run_in_threadpool(lambda: timeline.silences.expire(
            found.id, by=current_user(request).name, source=SOURCE))
        return RedirectResponse(f"/silences?expired={found.id}", 303)

    return [Route("/silences", show_list, methods=["GET"]),
            Route("/silences", posted(submit), methods=["POST"]),
            Route("/silences/new", show_form, methods=["GET"]),
            Route("/silences/{silence_id}/expire", posted(expire), methods=["POST"])]


__all__ = ["Draft", "listed", "read_draft", "routes"]
