"""``alert_incidents`` on SQLite and PostgreSQL: a record per alert episode and per
incident no rule caught, each change an ``incident`` event with actor and source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.store import Timeline
from alert_jobs.store.incidents import Incident, IncidentError, runbook_answers

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def timeline(db_url: str) -> Iterator[Timeline]:
    tl = Timeline(db_url)
    tl.upgrade()
    yield tl
    tl.dispose()


def _episode(tl: Timeline, **changes: object) -> Incident:
    return tl.incidents.record(
        "fp1", 3, changes, by="ana", source="link", rule="dead_letters",
        title="dead_letters firing", labels={"team": "payments"}, started_at=T0,
        ended_at=T0 + timedelta(minutes=40), now=T0 + timedelta(hours=1))


def test_an_episode_record_keeps_each_answer_and_who_gave_it(timeline: Timeline) -> None:
    timeline.events.record("acked", "acked by bo", fingerprint="fp1", rule="dead_letters",
                           actor="bo", source="page", now=T0 + timedelta(minutes=5))
    first = _episode(timeline, verified="dashboard: queue depth graph", false_positive=False)
    again = timeline.incidents.record(
        "fp1", 3, {"mitigation": "restarted the consumer", "false_positive": False,
                   "follow_ups": ["https://tickets/OPS-12"], "runbook_sufficient": False,
                   "runbook_missing": "how to find the stuck consumer"},
        by="cy", source="cli", rule="dead_letters", title="ignored", labels={},
        started_at=T0)
    assert first.id == again.id  # one record per episode
    got = timeline.incidents.for_episode("fp1", 3)
    assert got is not None
    assert (got.verified, got.false_positive, got.mitigation, got.follow_ups,
            got.runbook_sufficient, got.runbook_missing) == (
        "dashboard: queue depth graph", False, "restarted the consumer",
        ["https://tickets/OPS-12"], False, "how to find the stuck consumer")
    assert got.title == "dead_letters firing"  # the first answer described the episode
    assert got.actors == ["ana", "bo", "cy"]  # everyone who acted, in order
    events = timeline.events.list(fingerprint="fp1", kinds=["incident"])
    reasons = sorted(e["reason"] for e in events)
    # One event per changed field; false_positive did not change the second time.
    assert len(events) == 6, reasons
    assert any("runbook sufficient: no (by cy)" in r for r in reasons)
    assert {e["source"] for e in events} == {"link", "cli"}


def test_an_incident_without_an_alert_is_listed_apart(timeline: Timeline) -> None:
    added = timeline.incidents.add("Checkout 500s for EU users", T0, by="dee",
                                   detected_by="customer support tickets",
                                   labels={"service": "checkout"})
    _episode(timeline, verified="graph")
    assert added.fingerprint is None and added.has_alert is False
    without = timeline.incidents.list(with_alert=False)
    assert [i.title for i in without] == ["Checkout 500s for EU users"]
    assert len(timeline.incidents.list()) == 2  # positive control: both are there
    assert timeline.incidents.list(since=T0 + timedelta(days=1)) == []
    got = timeline.incidents.get(added.id)
    assert got is not None and got.actors == ["dee"]
    assert got.detected_by == "customer support tickets"


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "unknown incident field"),
    ({"false_positive": "maybe"}, "yes or no"),
    ({"follow_ups": "OPS-1"}, "list of links"),
    ({"mitigation": "x" * 4001}, "4,000"),
])
def test_bad_answers_are_refused_and_nothing_is_written(timeline: Timeline,
                                                        changes: dict[str, object],
                                                        message: str) -> None:
    with pytest.raises(IncidentError, match=message):
        _episode(timeline, **changes)
    assert timeline.incidents.list() == []
    assert timeline.events.list(kinds=["incident"]) == []
    with pytest.raises(IncidentError, match="title"):
        timeline.incidents.add("  ", T0, by="x")
    _episode(timeline, verified="ok")  # positive control
    assert len(timeline.incidents.list()) == 1
    timeline.dispose()


def test_runbook_answers_count_the_nos() -> None:
    class Answer:  # a stand-in with the one field read
        def __init__(self, value: bool | None) -> None:
            self.runbook_sufficient = value

    answers = [Answer(True), Answer(False), Answer(None), Answer(False)]
    assert runbook_answers(answers) == (3, 2)  # type: ignore[arg-type]


def test_two_first_answers_at_once_make_one_record(pg_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The link and the page answer the same episode at the same moment: the second
    insert meets the first's row (the unique episode) and updates it instead. PostgreSQL
    only: SQLite transactions take the write lock at BEGIN, so there the two cannot
    interleave."""
    from alert_jobs.store import incidents as module

    timeline = Timeline(pg_url)
    timeline.upgrade()
    real = module._insert
    raced: list[bool] = []

    def insert_after_a_rival(conn: object, values: dict[str, object]) -> int:
        if not raced:
            raced.append(True)
            other = Timeline(timeline.url)  # the page's answer, committed first
            other.incidents.record("fp1", 3, {"verified": "logs"}, by="bo", source="page",
                                   rule="dead_letters", title="t", labels={}, started_at=T0)
            other.dispose()
        return real(conn, values)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_insert", insert_after_a_rival)
    got = _episode(timeline, mitigation="restarted")
    assert raced  # the race happened (positive control)
    assert (got.verified, got.mitigation) == ("logs", "restarted")
    assert len(timeline.incidents.list()) == 1
    timeline.dispose()
