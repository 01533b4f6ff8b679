"""The postmortem markdown: golden files for an alert episode and for an incident no
rule caught, and the episode's events read from a real timeline (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.runtime.postmortem import episode_events, export, postmortem_markdown
from alert_jobs.store import Timeline
from alert_jobs.store.incidents import Incident

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} changed; UPDATE_GOLDEN=1 to accept"


def incident(**overrides: Any) -> Incident:
    values: dict[str, Any] = dict(
        id=7, fingerprint="3f2a9c0d1e4b5a6978", episode=3, rule="dead_letters",
        title="dead_letters firing", labels={"team": "payments", "env": "prod"},
        started_at=T0, ended_at=T0 + timedelta(minutes=40), detected_by=None,
        verified="dashboard", false_positive=False,
        mitigation="Restarted the stuck consumer.\nThe queue drained in 5 minutes.",
        follow_ups=["https://tickets.example.com/OPS-12", "OPS-13"],
        runbook_sufficient=False, runbook_missing="how to find which consumer is stuck",
        created_by="ana", created_at=T0 + timedelta(hours=1),
        updated_at=T0 + timedelta(hours=2), actors=["ana", "bo", "cy"])
    values.update(overrides)
    return Incident(**values)


def event(minutes: int, kind: str, reason: str, actor: str = "system",
          **payload: Any) -> dict[str, Any]:
    return {"at": T0 + timedelta(minutes=minutes), "kind": kind, "reason": reason,
            "actor": actor, "source": "engine" if actor == "system" else "page",
            "payload": payload}


EVENTS = [
    event(0, "firing", "3 dead letters | queue=orders"),
    event(0, "notify", "firing queued: first"),
    event(5, "acked", "acked by bo: looking", actor="bo"),
    event(40, "resolved", "0 dead letters; good for 5m"),
    event(70, "incident", "incident #7: verified: dashboard (by ana)", actor="ana",
          incident=7),
]


def test_an_alert_episode_exports_as_a_postmortem() -> None:
    text = postmortem_markdown(incident(), EVENTS)
    check_golden("postmortem_episode.md", text)
    # what a reader needs, whatever the layout
    assert "| Acknowledged | 2026-11-02 03:05 UTC by bo (5m after it fired) |" in text
    assert "- <https://tickets.example.com/OPS-12>" in text and "- `OPS-13`" in text
    assert "3 dead letters \\| queue=orders" in text  # a pipe stays inside its cell


def test_an_incident_without_an_alert_exports_too() -> None:
    added = incident(id=9, fingerprint=None, episode=None, rule=None,
                     title="Checkout 500s for EU users", labels={"service": "checkout"},
                     ended_at=None, detected_by="customer support tickets", verified=None,
                     false_positive=None, mitigation=None, follow_ups=[],
                     runbook_sufficient=None, runbook_missing=None, actors=["dee"])
    text = postmortem_markdown(added, [event(90, "incident", "incident #9 without an alert "
                                                             "added by dee", actor="dee")])
    check_golden("postmortem_without_alert.md", text)
    assert "no rule caught it" in text and "_Not recorded._" in text


@pytest.fixture
def timeline(db_url: str) -> Iterator[Timeline]:
    tl = Timeline(db_url)
    tl.upgrade()
    yield tl
    tl.dispose()


def _observe(tl: Timeline, status: Status, now: datetime) -> str:
    obs = Observation("dead_letters", status, {"team": "payments"}, 3.0, summary="bad")
    policy = RulePolicy(rule="dead_letters", receivers=("console",))
    return tl.alerts.process(obs, policy, now=now).decision.record.fingerprint


def test_the_episode_events_are_those_of_that_episode_only(timeline: Timeline) -> None:
    fp = _observe(timeline, Status.ALERT, T0)
    timeline.actions.ack(fp, by="bo", now=T0 + timedelta(minutes=5))
    _observe(timeline, Status.OK, T0 + timedelta(minutes=40))
    _observe(timeline, Status.ALERT, T0 + timedelta(hours=3))  # episode 2
    timeline.actions.ack(fp, by="eve", now=T0 + timedelta(hours=3, minutes=1))
    first = timeline.incidents.answer(fp, 1, {"verified": "logs"}, by="ana", source="cli",
                                      now=T0 + timedelta(hours=4))
    timeline.incidents.answer(fp, 2, {"verified": "dashboard"}, by="cy", source="cli",
                              now=T0 + timedelta(hours=4))
    events = episode_events(timeline, first)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "firing" and "resolved" in kinds and kinds[-1] == "incident"
    assert [e["actor"] for e in events if e["kind"] == "acked"] == ["bo"]  # not eve's
    assert [e["reason"] for e in events if e["kind"] == "incident"] == [
        f"incident #{first.id}: verified: logs (by ana)"]
    text = export(timeline, first)
    assert "| People involved | ana, bo |" in text  # episode 2's eve and cy are not
    assert "| Resolved | 2026-11-02 03:40 UTC (40m after it fired) |" in text
