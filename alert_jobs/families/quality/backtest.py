"""Backtest a rule: replay its stored evaluations with other thresholds, ``for`` or
``keep_firing_for``, through the real engine, and compare with what people said.

Pure: the caller loads evaluations and episodes (:mod:`alert_jobs.families.quality.cli`).
Each stored value is judged again by the rule's own family with the changed thresholds
(its ``rejudge`` hook, e.g. sql_metric's bounds), then fed to
:func:`alert_jobs.core.engine.evaluate` per fingerprint in time order, exactly as the
timeline would have. Stored ``nodata`` and ``error`` evaluations replay as they were
(their value says nothing about thresholds).

A stored episode is *caught* by the replay when a replayed episode of the same
fingerprint overlaps it in time. *Actionable* and *noisy* follow
:mod:`alert_jobs.families.quality.check` (noisy = judged and not actionable).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alert_jobs.core.engine import RulePolicy, evaluate
from alert_jobs.core.model import AlertRecord, Observation, Status


@dataclass(frozen=True)
class StoredEvaluation:
    at: datetime
    fingerprint: str
    status: str
    value: float | None


@dataclass(frozen=True)
class StoredEpisode:
    fingerprint: str
    fired_at: datetime
    resolved_at: datetime | None
    verdict: str  # actionable | noisy | open


@dataclass(frozen=True)
class ReplayedEpisode:
    fingerprint: str
    fired_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class Change:
    """The timing to change (thresholds change through the judge, see :func:`rejudged`)."""

    for_: timedelta | None = None
    keep_firing_for: timedelta | None = None

    def policy(self, base: RulePolicy) -> RulePolicy:
        return replace(
            base,
            for_=base.for_ if self.for_ is None else self.for_,
            keep_firing_for=(base.keep_firing_for if self.keep_firing_for is None
                             else self.keep_firing_for),
        )


Judge = Callable[[StoredEvaluation, bool], Observation]


def rejudged(rule: str, judge_value: Callable[[float, bool], Observation]) -> Judge:
    """Re-judge stored values with the family's judge (``nodata``/``error`` stay as stored)."""

    def rejudge(ev: StoredEvaluation, was_firing: bool) -> Observation:
        if ev.status in (Status.NODATA, Status.ERROR) or ev.value is None:
            return Observation(rule, Status(ev.status), {}, ev.value)
        return judge_value(ev.value, was_firing)

    return rejudge


def stored_judge(rule: str) -> Judge:
    """Replay the stored statuses as they were (only ``for``/``keep_firing_for`` change)."""

    def same(ev: StoredEvaluation, was_firing: bool) -> Observation:
        return Observation(rule, Status(ev.status), {}, ev.value)

    return same


def replay(evaluations: Sequence[StoredEvaluation], policy: RulePolicy,
           rejudge: Judge) -> list[ReplayedEpisode]:
    """Feed evaluations (any order) through the engine per fingerprint; episodes that fire."""
    quiet = replace(policy, receivers=())
    by_fp: dict[str, list[StoredEvaluation]] = {}
    for ev in evaluations:
        by_fp.setdefault(ev.fingerprint, []).append(ev)
    out: list[ReplayedEpisode] = []
    for fp, evs in sorted(by_fp.items()):
        evs.sort(key=lambda e: e.at)
        record: AlertRecord | None = None
        fired_at: datetime | None = None
        for ev in evs:
            was_firing = record is not None and record.state.is_active
            decision = evaluate(rejudge(ev, was_firing), record, quiet, ev.at)
            record = decision.record
            for event in decision.events:
                if event.kind == "firing" and not event.payload.get("relapse"):
                    fired_at = ev.at
                elif event.kind == "resolved" and fired_at is not None:
                    out.append(ReplayedEpisode(fp, fired_at, ev.at))
                    fired_at = None
        if fired_at is not None:
            out.append(ReplayedEpisode(fp, fired_at, None))
    return out


@dataclass(frozen=True)
class BacktestResult:
    evaluations: int
    stored_fired: int
    replayed_current: int  # the replay with unchanged settings (sanity check)
    would_fire: int
    actionable: int
    actionable_caught: int
    noisy: int
    noisy_dropped: int
    open: int

    @property
    def actionable_missed(self) -> int:
        return self.actionable - self.actionable_caught

    def as_json(self) -> dict[str, int]:
        return {**self.__dict__, "actionable_missed": self.actionable_missed}


def _overlaps(a: StoredEpisode, b: ReplayedEpisode, end: datetime) -> bool:
    return (a.fingerprint == b.fingerprint and b.fired_at <= (a.resolved_at or end)
            and a.fired_at <= (b.resolved_at or end))


def compare(stored: Sequence[StoredEpisode], current: Sequence[ReplayedEpisode],
            changed: Sequence[ReplayedEpisode], *, evaluations: int,
            end: datetime) -> BacktestResult:
    def caught(ep: StoredEpisode) -> bool:
        return any(_overlaps(ep, r, end) for r in changed)

    actionable = [e for e in stored if e.verdict == "actionable"]
    noisy = [e for e in stored if e.verdict == "noisy"]
    return BacktestResult(
        evaluations=evaluations, stored_fired=len(stored), replayed_current=len(current),
        would_fire=len(changed), actionable=len(actionable),
        actionable_caught=sum(1 for e in actionable if caught(e)), noisy=len(noisy),
        noisy_dropped=sum(1 for e in noisy if not caught(e)),
        open=sum(1 for e in stored if e.verdict == "open"))


def backtest(evaluations: Sequence[StoredEvaluation], stored: Sequence[StoredEpisode],
             base: RulePolicy, change: Change, *, current_judge: Judge, changed_judge: Judge,
             end: datetime) -> BacktestResult:
    current = replay(evaluations, base, current_judge)
    changed = replay(evaluations, change.policy(base), changed_judge)
    return compare(stored, current, changed, evaluations=len(evaluations), end=end)
