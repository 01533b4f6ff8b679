"""The backtest replay skips the engine for ok values of a quiet alert: it must decide
exactly what a replay of every evaluation decides (compared on random histories)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.core.engine import RulePolicy, evaluate
from alert_jobs.core.model import AlertRecord, Observation, Status
from alert_jobs.families.quality.backtest import ReplayedEpisode, StoredEvaluation, replay

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _every_evaluation(evaluations: Sequence[StoredEvaluation], policy: RulePolicy,
                      rejudge: object) -> list[ReplayedEpisode]:
    """The replay without the skip: every evaluation through the engine."""
    quiet = replace(policy, receivers=())
    out: list[ReplayedEpisode] = []
    record: AlertRecord | None = None
    fired_at: datetime | None = None
    for ev in sorted(evaluations, key=lambda e: e.at):
        was_firing = record is not None and record.state.is_active
        decision = evaluate(rejudge(ev, was_firing), record, quiet, ev.at)  # type: ignore[operator]
        record = decision.record
        for event in decision.events:
            if event.kind == "firing" and not event.payload.get("relapse"):
                fired_at = ev.at
            elif event.kind == "resolved" and fired_at is not None:
                out.append(ReplayedEpisode(ev.fingerprint, fired_at, ev.at))
                fired_at = None
    if fired_at is not None:
        out.append(ReplayedEpisode(evaluations[0].fingerprint, fired_at, None))
    return out


def _history(seed: int) -> list[StoredEvaluation]:
    rng = random.Random(seed)
    value, out = 50.0, []
    for i in range(600):
        value = max(0.0, value + rng.gauss(0, 15) + (40 if rng.random() < 0.02 else 0))
        status = "alert" if value > 100 else ("nodata" if rng.random() < 0.01 else "ok")
        out.append(StoredEvaluation(T0 + timedelta(minutes=i), "fp", status, value))
    return out


class Above:
    def __init__(self, bound: float) -> None:
        self.bound = bound

    def __call__(self, ev: StoredEvaluation, was_firing: bool) -> Observation:
        if ev.status == "nodata":
            return Observation("r", Status.NODATA, {}, None)
        status = Status.ALERT if (ev.value or 0) > self.bound else Status.OK
        return Observation("r", status, {}, ev.value)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("for_, keep", [(0, 0), (3, 0), (0, 5), (4, 10)])
def test_skipping_quiet_ok_values_decides_the_same_episodes(seed: int, for_: int,
                                                            keep: int) -> None:
    evaluations = _history(seed)
    policy = RulePolicy(rule="r", for_=timedelta(minutes=for_),
                        keep_firing_for=timedelta(minutes=keep))
    for bound in (100.0, 130.0, 170.0):
        expected = _every_evaluation(evaluations, policy, Above(bound))
        assert replay(evaluations, policy, Above(bound)) == expected
    # Positive control: the histories do fire (the comparison compared something).
    assert _every_evaluation(evaluations, policy, Above(100.0))
