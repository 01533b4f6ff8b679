"""Alertmanager's silence endpoints: ``GET/POST /api/v2/silences`` and
``GET/DELETE /api/v2/silence/{id}``, over the timeline's silences.

Semantics follow Alertmanager's ``api/v2/api.go`` and ``silence/silence.go``:

* ``filter`` keeps silences having, for every filter matcher, a matcher with the same
  name, operator and value (it compares matchers; it does not match labels);
  ``active``/``pending``/``expired`` (all true by default) pick the states; the answer
  is sorted active (ending soonest first), pending (starting soonest), expired (most
  recent first). Expired silences are listed for :data:`RETENTION` after their end, as
  Alertmanager keeps them (``--data.retention``); ``GET /silence/{id}`` finds any.
* ``POST`` with an ``id`` updates that silence: in place when history is unchanged,
  else the old one is expired and a new one made (a new id in the answer); an unknown id
  is 404 ``silence not found``. A start in the past becomes now; the end must be after
  the start and not in the past.
* ``DELETE`` expires (idempotent: an expired silence answers 200 again).

The timeline's actor is the API caller (token name or account); ``createdBy`` is what
the body says, as in Alertmanager, where anyone may type any name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Matcher, Silence
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.http.alertmanager.errors import ApiError, api, read_json
from alert_jobs.http.alertmanager.shapes import (
    bad,
    format_time,
    matchers_from_json,
    matchers_json,
    parse_bool,
    parse_matchers,
    parse_time,
)
from alert_jobs.store import Timeline
from alert_jobs.store.db import TimelineError, utcnow
from alert_jobs.store.silences import SilenceNotFound

SOURCE = "api"
#: How long an expired silence is still listed (Alertmanager's default retention).
RETENTION = timedelta(hours=120)
#: Bounds on free text, so a silence stays a readable line in the timeline and pages.
MAX_CREATED_BY = 128
MAX_COMMENT = 10_000


def state(silence: Silence, now: datetime) -> str:
    if now < silence.starts_at:
        return "pending"
    return "active" if now < silence.ends_at else "expired"


def gettable(silence: Silence, updated_at: datetime | None, now: datetime) -> dict[str, Any]:
    """A ``gettableSilence``."""
    return {
        "id": silence.id,
        "status": {"state": state(silence, now)},
        "updatedAt": format_time(updated_at or silence.starts_at),
        "matchers": matchers_json(silence.matchers),
        "startsAt": format_time(silence.starts_at),
        "endsAt": format_time(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "annotations": {},
    }


def _sort_key(silence: Silence, now: datetime) -> tuple[int, float]:
    st = state(silence, now)
    if st == "active":
        return 0, silence.ends_at.timestamp()
    if st == "pending":
        return 1, silence.starts_at.timestamp()
    return 2, -silence.ends_at.timestamp()


def has_filter_matchers(silence: Silence, filters: list[Matcher]) -> bool:
    return all(f in silence.matchers for f in filters)


class Postable:
    """A ``postableSilence`` read and checked; every refusal is a 400 naming the field."""

    def __init__(self, body: Any, now: datetime):
        if not isinstance(body, dict):
            raise bad("the body must be a postableSilence object")
        self.matchers = matchers_from_json(body.get("matchers"))
        if all(m.matches({}) for m in self.matchers):
            raise bad("at least one matcher must not match the empty string (such a "
                      "silence would mute every alert)")
        self.id = body.get("id") or None
        if self.id is not None and not isinstance(self.id, str):
            raise bad("id must be a string")
        self.starts_at = parse_time(body.get("startsAt"), "startsAt")
        self.ends_at = parse_time(body.get("endsAt"), "endsAt")
        self.created_by = _text(body, "createdBy", MAX_CREATED_BY)
        self.comment = _text(body, "comment", MAX_COMMENT)
        if self.starts_at >= self.ends_at:
            raise bad("Failed to create silence: start time must be before end time")
        if self.ends_at < now:
            raise bad("Failed to create silence: end time can't be in the past")


def _text(body: dict[str, Any], field: str, limit: int) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{field} is required (a non-empty string)")
    if len(value) > limit:
        raise bad(f"{field} is longer than {limit} characters")
    return value


def routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:

    async def list_silences(request: Request, caller: str) -> Response:
        params = request.query_params
        filters = parse_matchers(params.getlist("filter"))
        wanted = {name for name in ("active", "pending", "expired")
                  if parse_bool(params.get(name), name)}

        def read() -> list[dict[str, Any]]:
            store = get_timeline().silences
            now = utcnow()
            silences = store.list(ended_after=now - RETENTION, now=now)
            chosen = sorted((s for s in silences
                             if state(s, now) in wanted and has_filter_matchers(s, filters)),
                            key=lambda s: _sort_key(s, now))
            updated = store.updated_at(s.id for s in chosen)
            return [gettable(s, updated.get(s.id), now) for s in chosen]

        return JSONResponse(await run_in_threadpool(read))

    async def post_silence(request: Request, caller: str) -> Response:
        body = await read_json(request)

        def write() -> str:
            now = utcnow()
            posted = Postable(body, now)
            store = get_timeline().silences
            try:
                if posted.id is None:
                    silence = store.add(posted.matchers, starts_at=max(posted.starts_at, now),
                                        ends_at=posted.ends_at, created_by=posted.created_by,
                                        comment=posted.comment, source=SOURCE, actor=caller,
                                        now=now)
                else:
                    silence = store.replace(
                        posted.id, posted.matchers, starts_at=posted.starts_at,
                        ends_at=posted.ends_at, created_by=posted.created_by,
                        comment=posted.comment, actor=caller, source=SOURCE, now=now)
            except SilenceNotFound:
                raise ApiError(404, "silence not found") from None
            except TimelineError as exc:
                raise bad(str(exc)) from None
            return silence.id

        return JSONResponse({"silenceID": await run_in_threadpool(write)})

    async def get_silence(request: Request, caller: str) -> Response:
        silence_id = request.path_params["silence_id"]

        def read() -> dict[str, Any] | None:
            store = get_timeline().silences
            silence = store.get(silence_id)
            if silence is None:
                return None
            return gettable(silence, store.updated_at([silence.id]).get(silence.id), utcnow())

        found = await run_in_threadpool(read)
        if found is None:
            raise ApiError(404, "silence not found")
        return JSONResponse(found)

    async def delete_silence(request: Request, caller: str) -> Response:
        silence_id = request.path_params["silence_id"]

        def expire() -> bool:
            store = get_timeline().silences
            if store.get(silence_id) is None:  # exact id: expire() also takes a prefix
                return False
            store.expire(silence_id, by=caller, source=SOURCE)
            return True

        if not await run_in_threadpool(expire):
            raise ApiError(404, "silence not found")
        return Response(status_code=200)

    return [
        Route("/api/v2/silences", api(auth, list_silences), methods=["GET"]),
        Route("/api/v2/silences", api(auth, post_silence), methods=["POST"]),
        Route("/api/v2/silence/{silence_id}", api(auth, get_silence), methods=["GET"]),
        Route("/api/v2/silence/{silence_id}", api(auth, delete_silence), methods=["DELETE"]),
    ]
