"""An incident as markdown, the start of a postmortem.

Whoever writes the postmortem should not copy times and names out of the timeline by
hand: :func:`postmortem_markdown` turns an incident record and its episode's timeline
events into a document — what fired, when it was acked and resolved, who acted, how it
was verified, the mitigation, follow-ups as links, whether the runbook was enough, and
the timeline as a table — that the CLI (``alert-jobs incident export``) and the page
(``/incidents/<id>.md``) hand out alike. Formatting only: :func:`episode_events` does
the one read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alert_jobs.core.durations import short_duration
from alert_jobs.store.incidents import Incident

if TYPE_CHECKING:
    from alert_jobs.store import Timeline

#: Events read for one episode, at most (a flapping alert's episode can have many).
MAX_EVENTS = 2000
Event = Mapping[str, Any]


def episode_events(timeline: Timeline, incident: Incident) -> list[dict[str, Any]]:
    """The events of the incident's episode, oldest first: every event of the alert
    from when it fired until it resolved, and the incident's own events whenever they
    were written (answers usually come after the resolve). For an incident without an
    alert: its own events."""
    if incident.fingerprint is None:
        events = timeline.events.list(kinds=["incident"], since=incident.created_at,
                                      limit=MAX_EVENTS)
        return [e for e in events if _incident_of(e) == incident.id]
    events = timeline.events.list(fingerprint=incident.fingerprint,
                                  since=incident.started_at, limit=MAX_EVENTS)
    ended = incident.ended_at
    return [e for e in events
            if _incident_of(e) == incident.id
            or (e["kind"] != "incident" and (ended is None or e["at"] <= ended))]


def _incident_of(event: Event) -> int | None:
    payload = event.get("payload") or {}
    value = payload.get("incident") if isinstance(payload, Mapping) else None
    return int(value) if isinstance(value, int) else None


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _yes_no(value: bool | None) -> str:
    return "not answered" if value is None else ("yes" if value else "no")


def cell(text: object) -> str:
    """Text that stays inside one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def follow_up_item(up: str) -> str:
    """A link as a markdown autolink; a ticket id (or anything else) as code."""
    if up.startswith(("https://", "http://")):
        return f"<{up}>"
    return f"`{up.replace('`', '')}`"


def _first(events: Sequence[Event], kind: str) -> Event | None:
    return next((e for e in events if e["kind"] == kind), None)


def _facts(incident: Incident, events: Sequence[Event]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("Incident", f"#{incident.id}")]
    labels = ", ".join(f"`{k}={v}`" for k, v in sorted(incident.labels.items())) or "none"
    if incident.fingerprint is not None:
        fired = _first(events, "firing")
        acked = _first(events, "acked")
        resolved = _first(events, "resolved")
        fired_at = fired["at"] if fired else incident.started_at
        resolved_at = resolved["at"] if resolved else incident.ended_at
        rows += [("Rule", f"`{incident.rule}`"),
                 ("Alert", f"`{incident.fingerprint}`, episode {incident.episode}"),
                 ("Labels", labels), ("Fired", _when(fired_at))]
        if acked is not None:
            rows.append(("Acknowledged", f"{_when(acked['at'])} by {acked['actor']} "
                                         f"({short_duration(acked['at'] - fired_at)} after "
                                         "it fired)"))
        else:
            rows.append(("Acknowledged", "not acknowledged"))
        if resolved_at is not None:
            took = short_duration(resolved_at - fired_at)
            rows.append(("Resolved", f"{_when(resolved_at)} ({took} after it fired)"))
        else:
            rows.append(("Resolved", "not resolved yet"))
    else:
        rows += [("Alert", "none: no rule caught it (consider adding an alert)"),
                 ("Labels", labels), ("Started", _when(incident.started_at)),
                 ("Detected by", incident.detected_by or "not said"),
                 ("Ended", _when(incident.ended_at) if incident.ended_at else "not said")]
    rows.append(("People involved", ", ".join(incident.actors) or incident.created_by))
    return rows


def postmortem_markdown(incident: Incident, events: Sequence[Event]) -> str:
    """The incident as a markdown document (``events``: :func:`episode_events`)."""
    lines = [f"# Postmortem: {' '.join(incident.title.split())}", "",
             "| | |", "|---|---|"]
    lines += [f"| {name} | {cell(value)} |" for name, value in _facts(incident, events)]
    runbook = _yes_no(incident.runbook_sufficient)
    lines += ["", "## Assessment", "",
              f"- **Verified how:** {incident.verified or 'not answered'}",
              f"- **False positive:** {_yes_no(incident.false_positive)}",
              f"- **Runbook sufficient:** {runbook}"]
    if incident.runbook_missing:
        lines += ["", "### What the runbook was missing", "", incident.runbook_missing]
    lines += ["", "## Mitigation", "", incident.mitigation or "_Not recorded._",
              "", "## Follow-ups", ""]
    lines += [f"- {follow_up_item(up)}" for up in incident.follow_ups] or ["_None recorded._"]
    lines += ["", "## Timeline", "", "| Time (UTC) | Who | What | Details |",
              "|---|---|---|---|"]
    for e in events:
        lines.append(f"| {e['at'].astimezone(UTC):%Y-%m-%d %H:%M:%S} | {cell(e['actor'])} | "
                     f"{cell(e['kind'])} | {cell(e['reason'])} |")
    if not events:
        lines.append("| — | — | — | no events |")
    return "\n".join(lines) + "\n"


def export(timeline: Timeline, incident: Incident) -> str:
    """The markdown of a stored incident (with everyone who acted)."""
    full = timeline.incidents.get(incident.id) or incident
    return postmortem_markdown(full, episode_events(timeline, full))


__all__ = ["episode_events", "export", "postmortem_markdown"]
