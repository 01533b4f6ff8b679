"""``IncidentStore.answer``: an episode's record described by the timeline (rule,
labels, fired and resolved), on SQLite and PostgreSQL; labels and months parsed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.store import Timeline
from alert_jobs.store.incidents import IncidentError, month_range, parse_labels

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def timeline(db_url: str) -> Iterator[Timeline]:
    tl = Timeline(db_url)
    tl.upgrade()
    yield tl
    tl.dispose()


def observe(tl: Timeline, status: Status, now: datetime) -> str:
    obs = Observation("dead_letters", status, {"team": "payments"}, 3.0, summary="bad")
    return tl.alerts.process(obs, RulePolicy(rule="dead_letters", receivers=("console",)),
                             now=now).decision.record.fingerprint


def test_an_answer_describes_the_episode_from_the_timeline(timeline: Timeline) -> None:
    fp = observe(timeline, Status.ALERT, T0)
    during = timeline.incidents.answer(fp, 1, {"verified": "logs"}, by="ana", source="page",
                                       now=T0 + timedelta(minutes=10))
    assert (during.rule, during.title, during.labels, during.started_at, during.ended_at) == (
        "dead_letters", "dead_letters firing", {"team": "payments"}, T0, None)
    observe(timeline, Status.OK, T0 + timedelta(minutes=40))
    observe(timeline, Status.ALERT, T0 + timedelta(hours=3))  # episode 2 fires
    timeline.actions.ack(fp, by="eve", now=T0 + timedelta(hours=3, minutes=2))
    after = timeline.incidents.answer(fp, 1, {"mitigation": "restarted"}, by="bo",
                                      source="cli", now=T0 + timedelta(hours=4))
    assert after.id == during.id
    assert after.ended_at == T0 + timedelta(minutes=40)  # the resolve, learnt quietly
    got = timeline.incidents.for_episode(fp, 1)
    assert got is not None and got.actors == ["ana", "bo"]  # not eve (episode 2)
    events = timeline.events.list(fingerprint=fp, kinds=["incident"])
    assert [e["actor"] for e in events] == ["ana", "bo"]  # no event for the ended time
    facts = timeline.incidents.episode(fp, 2)
    assert facts is not None and facts.fired_at == T0 + timedelta(hours=3)
    assert facts.acked_at == T0 + timedelta(hours=3, minutes=2)


def test_no_answer_for_an_episode_that_never_was(timeline: Timeline) -> None:
    fp = observe(timeline, Status.ALERT, T0)
    for fingerprint, episode in ((fp, 2), (fp, 0), ("0" * 16, 1)):
        with pytest.raises(IncidentError, match="has no episode"):
            timeline.incidents.answer(fingerprint, episode, {"verified": "x"}, by="a",
                                      source="cli")
    assert timeline.incidents.list() == []
    assert timeline.events.list(kinds=["incident"]) == []
    timeline.incidents.answer(fp, 1, {"verified": "x"}, by="a", source="cli")  # control
    assert len(timeline.incidents.list(fingerprint=fp)) == 1


@pytest.mark.parametrize("ups, message", [
    (["two words"], "not one link or ticket id"),
    (["x" * 501], "at most 500"),
    ([f"OPS-{n}" for n in range(51)], "at most 50 follow-ups"),
])
def test_follow_ups_are_links_or_ticket_ids(timeline: Timeline, ups: list[str],
                                            message: str) -> None:
    added = timeline.incidents.add("Checkout down", T0, by="dee")
    with pytest.raises(IncidentError, match=message):
        timeline.incidents.update(added.id, {"follow_ups": ups}, by="dee", source="cli")
    saved = timeline.incidents.update(added.id, {"follow_ups": ["OPS-1", " OPS-1 ", "OPS-2"]},
                                      by="dee", source="cli")
    assert saved.follow_ups == ["OPS-1", "OPS-2"]  # positive control, duplicates merged


def test_labels_and_months_parse_or_say_why() -> None:
    assert parse_labels(["service=checkout, team=payments", "env=prod"]) == {
        "service": "checkout", "team": "payments", "env": "prod"}
    assert parse_labels([""]) == {}
    for bad in ("service", "1x=a", "a=", "a b=c"):
        with pytest.raises(IncidentError, match="is not name=value"):
            parse_labels([bad])
    assert month_range("2026-12", T0) == ("2026-12", datetime(2026, 12, 1, tzinfo=UTC),
                                          datetime(2027, 1, 1, tzinfo=UTC))
    assert month_range("", T0)[0] == "2026-11"
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_range("November", T0)
