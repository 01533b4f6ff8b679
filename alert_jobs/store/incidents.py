"""``alert_incidents``: what happened in an incident, so the monthly review can learn.

The ML guide wants every alert trackable — when it went off, who was involved, how it
was verified to be real, whether it was a false positive, how it was mitigated and what
was done to avoid it next time — and the python guide's review asks whether the runbook
was sufficient and which incidents had no alert. The timeline already records when and
who acked; this table keeps the rest:

* one record per **alert episode** (``fingerprint`` + ``episode``), created by the first
  answer from the resolve message's "how did it go?" link, ``alert-jobs incident set``
  or the alert's page; every changed field is also an ``incident`` event in
  ``alert_events`` with its actor, source and time (the record says *what is true now*,
  the events *who said it when*);
* one record per **incident no rule caught** (``fingerprint`` NULL,
  ``alert-jobs incident add``): title, start, how it was detected, the services'
  labels — the review suggests "add an alert" beside the rules near it.

Like ``alert_episodes``, retention never trims it.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.store import schema
from alert_jobs.store.db import Database, utcnow
from alert_jobs.store.events import event_row, write_events

_t = schema.incidents

#: What a responder says about an incident (each an ``incident`` event when it changes).
FIELDS = ("verified", "false_positive", "mitigation", "follow_ups", "runbook_sufficient",
          "runbook_missing", "title", "ended_at", "detected_by", "labels")
#: The answers the review counts, with how each reads in the timeline.
LABELS = {"verified": "verified", "false_positive": "false positive",
          "mitigation": "mitigation", "follow_ups": "follow-ups",
          "runbook_sufficient": "runbook sufficient", "runbook_missing": "runbook missing",
          "title": "title", "ended_at": "ended", "detected_by": "detected by",
          "labels": "labels"}
#: Event kinds whose actors were "involved" in an episode (besides incident edits).
ACTING_KINDS = ("acked", "unacked", "snoozed", "outcome", "incident", "escalated_ack",
                "silenced")


#: Longest follow-up (a link or a ticket id) and most follow-ups on one record.
MAX_FOLLOW_UP, MAX_FOLLOW_UPS = 500, 50
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class IncidentError(ValueError):
    """A record that cannot be written as asked (unknown field, bad value)."""


@dataclass(frozen=True)
class EpisodeFacts:
    """What the timeline knows about one firing episode: the record's title, labels
    and times come from here, so every way in (link, page, CLI) describes it alike."""

    fingerprint: str
    episode: int
    rule: str
    labels: dict[str, str]
    fired_at: datetime
    acked_at: datetime | None
    resolved_at: datetime | None

    @property
    def title(self) -> str:
        return f"{self.rule} firing"


@dataclass(frozen=True)
class Incident:
    id: int
    fingerprint: str | None
    episode: int | None
    rule: str | None
    title: str
    labels: dict[str, str]
    started_at: datetime
    ended_at: datetime | None
    detected_by: str | None
    verified: str | None
    false_positive: bool | None
    mitigation: str | None
    follow_ups: list[str]
    runbook_sufficient: bool | None
    runbook_missing: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    actors: list[str] = field(default_factory=list)  # filled by :meth:`IncidentStore.get`

    @property
    def has_alert(self) -> bool:
        return self.fingerprint is not None


def _record(row: Any) -> Incident:
    data = dict(row._mapping)
    data["labels"] = dict(data.get("labels") or {})
    data["follow_ups"] = list(data.get("follow_ups") or [])
    return Incident(**data)


def _shown(value: Any) -> str:
    if value is None:
        return "(cleared)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return str(value)


def _check(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise IncidentError(f"unknown incident field(s): {', '.join(unknown)} "
                            f"(known: {', '.join(FIELDS)})")
    out = dict(changes)
    for key in ("false_positive", "runbook_sufficient"):
        if out.get(key) is not None and not isinstance(out[key], bool):
            raise IncidentError(f"{key} must be yes or no")
    if "follow_ups" in out:
        ups = out["follow_ups"] or []
        if not isinstance(ups, list) or not all(isinstance(u, str) and u.strip()
                                                for u in ups):
            raise IncidentError("follow_ups must be a list of links or ticket ids")
        out["follow_ups"] = list(dict.fromkeys(u.strip() for u in ups))
        for up in out["follow_ups"]:
            if len(up) > MAX_FOLLOW_UP or any(c.isspace() for c in up):
                raise IncidentError(f"follow-up {_clip(up)!r} is not one link or ticket id "
                                    f"(no spaces, at most {MAX_FOLLOW_UP} characters)")
        if len(out["follow_ups"]) > MAX_FOLLOW_UPS:
            raise IncidentError(f"at most {MAX_FOLLOW_UPS} follow-ups")
    if "title" in out and not str(out["title"] or "").strip():
        raise IncidentError("an incident needs a title")
    for key in ("verified", "mitigation", "runbook_missing", "detected_by"):
        if key in out and out[key] is not None:
            text = str(out[key]).strip()
            if len(text) > 4000:
                raise IncidentError(f"{key} is longer than 4,000 characters")
            out[key] = text or None
    return out


def check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The changes as they would be stored; :class:`IncidentError` saying what is wrong
    (forms and the CLI check before they write, with the store's own rules)."""
    return _check(changes)


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    """``k=v`` items (each may hold several separated by commas: ``service=checkout,
    team=payments``) → labels; :class:`IncidentError` naming the bad item."""
    labels: dict[str, str] = {}
    for pair in pairs:
        for item in pair.split(","):
            if not item.strip():
                continue
            name, sep, value = item.partition("=")
            name, value = name.strip(), value.strip().strip('"')
            if not sep or not _LABEL_NAME.fullmatch(name) or not value:
                raise IncidentError(f"label {item.strip()!r} is not name=value (a name is "
                                    "letters, digits and _, not starting with a digit)")
            labels[name] = value
    return labels


def month_range(text: str, now: datetime) -> tuple[str, datetime, datetime]:
    """``YYYY-MM`` (empty: ``now``'s UTC month) → (the month, its first instant, the
    next month's first); ValueError saying what a month looks like."""
    raw = text.strip() or f"{now.astimezone(UTC):%Y-%m}"
    try:
        start = datetime.strptime(raw, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{raw[:20]!r} is not a month: write YYYY-MM, e.g. "
                         f"{now.astimezone(UTC):%Y-%m}") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return f"{start:%Y-%m}", start, end


class IncidentStore:
    """Incident records and their ``incident`` events, each change in one transaction."""

    def __init__(self, db: Database):
        self.db = db

    # ----- reads ---------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.id == incident_id)).first()
            return self._with_actors(conn, _record(row)) if row is not None else None

    def for_episode(self, fingerprint: str, episode: int) -> Incident | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.fingerprint == fingerprint,
                                                   _t.c.episode == episode)).first()
            return self._with_actors(conn, _record(row)) if row is not None else None

    def list(self, *, since: datetime | None = None, until: datetime | None = None,
             with_alert: bool | None = None, rule: str | None = None,
             fingerprint: str | None = None, limit: int = 1000) -> builtins.list[Incident]:
        """Incidents that started in [since, until), newest first; ``with_alert``
        False: only those no rule caught; ``fingerprint``: one alert's episodes."""
        q = sa.select(_t).order_by(_t.c.started_at.desc(), _t.c.id.desc()).limit(limit)
        if since is not None:
            q = q.where(_t.c.started_at >= since)
        if until is not None:
            q = q.where(_t.c.started_at < until)
        if with_alert is not None:
            q = q.where(_t.c.fingerprint.isnot(None) if with_alert
                        else _t.c.fingerprint.is_(None))
        if rule is not None:
            q = q.where(_t.c.rule == rule)
        if fingerprint is not None:
            q = q.where(_t.c.fingerprint == fingerprint)
        with self.db.read() as conn:
            return [_record(r) for r in conn.execute(q)]

    def episode(self, fingerprint: str, episode: int) -> EpisodeFacts | None:
        """The facts of one firing episode of an alert (``alert_episodes``), or ``None``
        when the alert never had that episode. The alert's current episode is known
        from the alert itself too (a fire drill's has no ``alert_episodes`` row)."""
        a, ep = schema.alerts, schema.episodes
        with self.db.read() as conn:
            alert = conn.execute(sa.select(a.c.rule, a.c.labels, a.c.episode, a.c.fired_at,
                                           a.c.acked_at, a.c.resolved_at)
                                 .where(a.c.fingerprint == fingerprint)).first()
            if alert is None or not 1 <= episode <= int(alert.episode or 0):
                return None
            row = conn.execute(sa.select(ep.c.fired_at, ep.c.first_ack_at, ep.c.resolved_at)
                               .where(ep.c.fingerprint == fingerprint,
                                      ep.c.episode == episode)).first()
        labels = dict(alert.labels or {})
        if row is not None:
            return EpisodeFacts(fingerprint, episode, alert.rule, labels, row.fired_at,
                                row.first_ack_at, row.resolved_at)
        if episode == alert.episode and alert.fired_at is not None:
            return EpisodeFacts(fingerprint, episode, alert.rule, labels, alert.fired_at,
                                alert.acked_at, alert.resolved_at)
        return None

    def _with_actors(self, conn: Connection, incident: Incident) -> Incident:
        """Everyone who acted: the incident's own events, and for an alert episode
        every acting event (ack, snooze, outcome, …) since it fired."""
        e = schema.events
        if incident.fingerprint is not None:
            q = sa.select(e.c.actor).where(
                e.c.fingerprint == incident.fingerprint, e.c.kind.in_(ACTING_KINDS),
                e.c.at >= incident.started_at)
            own = e.c.payload["incident"].as_integer() == incident.id
            # Other episodes' records are edited on the same fingerprint: not theirs.
            q = q.where(sa.or_(e.c.kind != "incident", own))
            if incident.ended_at is not None:
                q = q.where(sa.or_(e.c.at <= incident.ended_at, e.c.kind == "incident"))
        else:
            q = sa.select(e.c.actor).where(e.c.kind == "incident",
                                           e.c.payload["incident"].as_integer() == incident.id)
        seen: dict[str, None] = {incident.created_by: None}
        for actor in conn.execute(q.order_by(e.c.at, e.c.id)).scalars():
            if actor and actor != "system":
                seen[actor] = None
        return Incident(**{**incident.__dict__, "actors": list(seen)})

    # ----- writes --------------------------------------------------------------------

    def record(self, fingerprint: str, episode: int, changes: Mapping[str, Any], *,
               by: str, source: str, rule: str, title: str, labels: Mapping[str, str],
               started_at: datetime, ended_at: datetime | None = None,
               now: datetime | None = None) -> Incident:
        """Set fields of one alert episode's record (made on the first answer; ``title``,
        ``labels``, ``started_at``, ``ended_at`` describe the episode then). One
        ``incident`` event per field that changed; none when nothing did."""
        now = now or utcnow()
        clean = _check(changes)
        attempt = functools.partial(
            self._record, fingerprint, episode, clean, by=by, source=source, rule=rule,
            title=title, labels=labels, started_at=started_at, ended_at=ended_at, now=now)
        try:
            return attempt()
        except sa.exc.IntegrityError:
            # Two first answers at once (the link and the page): the other made the
            # record between our look and our insert; ours now updates it.
            return attempt()

    def _record(self, fingerprint: str, episode: int, clean: Mapping[str, Any], *, by: str,
                source: str, rule: str, title: str, labels: Mapping[str, str],
                started_at: datetime, ended_at: datetime | None, now: datetime) -> Incident:
        with self.db.tx() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.fingerprint == fingerprint,
                                                   _t.c.episode == episode)).first()
            if row is None:
                values = {"fingerprint": fingerprint, "episode": episode, "rule": rule,
                          "title": title, "labels": dict(labels), "started_at": started_at,
                          "ended_at": ended_at, "follow_ups": [], "created_by": by,
                          "created_at": now, "updated_at": now}
                incident_id = _insert(conn, values)
                current: dict[str, Any] = {**values, "id": incident_id}
            else:
                current = dict(row._mapping)
                if current["ended_at"] is None and ended_at is not None:
                    # The episode resolved since the record was made: a fact of the
                    # timeline, not an answer, so no event (it bounds who acted).
                    conn.execute(_t.update().where(_t.c.id == current["id"])
                                 .values(ended_at=ended_at))
                    current["ended_at"] = ended_at
            self._apply(conn, current, clean, by=by, source=source, now=now)
            fresh = conn.execute(sa.select(_t).where(_t.c.id == current["id"])).one()
        return _record(fresh)

    def answer(self, fingerprint: str, episode: int, changes: Mapping[str, Any], *,
               by: str, source: str, now: datetime | None = None) -> Incident:
        """:meth:`record` for an episode described by the timeline (its rule, labels,
        when it fired and resolved): what the link, the page and the CLI call."""
        facts = self.episode(fingerprint, episode)
        if facts is None:
            raise IncidentError(f"alert {fingerprint[:12]} has no episode {episode}")
        return self.record(fingerprint, episode, changes, by=by, source=source,
                           rule=facts.rule, title=facts.title, labels=facts.labels,
                           started_at=facts.fired_at, ended_at=facts.resolved_at, now=now)

    def add(self, title: str, started_at: datetime, *, by: str, source: str = "cli",
            detected_by: str = "", labels: Mapping[str, str] | None = None,
            ended_at: datetime | None = None, now: datetime | None = None,
            **fields: Any) -> Incident:
        """Record an incident no rule caught (an ``incident`` event says who added it)."""
        now = now or utcnow()
        if not title.strip():
            raise IncidentError("an incident needs a title")
        clean = _check(fields)
        values: dict[str, Any] = {
            "fingerprint": None, "episode": None, "rule": None, "title": title.strip(),
            "labels": dict(labels or {}), "started_at": started_at, "ended_at": ended_at,
            "detected_by": detected_by.strip() or None, "follow_ups": [], "created_by": by,
            "created_at": now, "updated_at": now}
        with self.db.tx() as conn:
            incident_id = _insert(conn, values)
            write_events(conn, [event_row(
                now, "incident", f"incident #{incident_id} without an alert added by {by}: "
                f"{values['title']}", actor=by, source=source,
                payload={"incident": int(incident_id), "field": "added"})])
            self._apply(conn, {**values, "id": incident_id}, clean, by=by, source=source,
                        now=now)
            fresh = conn.execute(sa.select(_t).where(_t.c.id == incident_id)).one()
        return _record(fresh)

    def update(self, incident_id: int, changes: Mapping[str, Any], *, by: str, source: str,
               now: datetime | None = None) -> Incident:
        """Set fields of an existing record, by id."""
        now = now or utcnow()
        clean = _check(changes)
        with self.db.tx() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.id == incident_id)).first()
            if row is None:
                raise IncidentError(f"no incident #{incident_id}")
            self._apply(conn, dict(row._mapping), clean, by=by, source=source, now=now)
            fresh = conn.execute(sa.select(_t).where(_t.c.id == incident_id)).one()
        return _record(fresh)

    @staticmethod
    def _apply(conn: Connection, current: dict[str, Any], changes: Mapping[str, Any], *,
               by: str, source: str, now: datetime) -> None:
        changed = {k: v for k, v in changes.items() if current.get(k) != v}
        if not changed:
            return
        conn.execute(_t.update().where(_t.c.id == current["id"])
                     .values(**changed, updated_at=now))
        which = f"incident #{current['id']}"
        write_events(conn, [event_row(
            now, "incident", f"{which}: {LABELS[key]}: {_shown(value)} (by {by})",
            fingerprint=current.get("fingerprint"), rule=current.get("rule"), actor=by,
            source=source, payload={"incident": int(current["id"]), "field": key,
                                    "episode": current.get("episode")})
            for key, value in changed.items()])


def _insert(conn: Connection, values: Mapping[str, Any]) -> int:
    key = conn.execute(_t.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def runbook_answers(incidents: Sequence[Incident]) -> tuple[int, int]:
    """(answers, "no" answers) to "was the runbook sufficient?"."""
    answered = [i for i in incidents if i.runbook_sufficient is not None]
    return len(answered), sum(1 for i in answered if i.runbook_sufficient is False)


__all__ = ["FIELDS", "EpisodeFacts", "Incident", "IncidentError", "IncidentStore",
           "check_changes", "month_range", "parse_labels", "runbook_answers"]
