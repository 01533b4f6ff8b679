"""Backtest a rule: replay its stored evaluations with other thresholds, ``for`` or
``keep_firing_for``, through the real engine, and compare with what people said.

Pure: the caller loads evaluations, episodes and backfilled points
(:mod:`alert_jobs.families.quality.stored`). Each stored value is judged again by the
rule's own family with the changed thresholds (its ``rejudge`` hook, e.g. sql_metric's
bounds or baseline width), then fed to :func:`alert_jobs.core.engine.evaluate` per
fingerprint in time order, exactly as the timeline would have. Stored ``error``
evaluations and those without a value replay as they were (they say nothing about
thresholds); a ``nodata`` with a value (a baseline still learning) is judged again.

A judge may learn (a baseline's history): each alert instance gets its own, fed that
instance's values in time order, starting ``history`` before the period reported on
(the *warm-up*: replayed through the engine too, so the state at the period's start is
right, but its evaluations and episodes do not count).

A stored episode is *caught* by the replay when a replayed episode of the same
fingerprint overlaps it in time. *Actionable* and *noisy* follow
:mod:`alert_jobs.families.quality.check` (noisy = judged and not actionable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.engine import RulePolicy, evaluate
from alert_jobs.core.model import AlertRecord, AlertState, Observation, Status
from alert_jobs.runtime.family import Rejudge

#: Backfilled points per fingerprint: ``(at, value)``, what a learning judge knows first.
Points = Mapping[str, Sequence[tuple[datetime, float]]]


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


def rejudged(rule: str, make_judge: Callable[[], Rejudge], points: Points | None = None
             ) -> Judge:
    """Re-judge stored values with the family's judges, one per alert instance (made by
    ``make_judge``, told the instance's backfilled ``points`` first); ``error``
    evaluations and those without a value stay as stored. Replays once: a judge learns."""
    judges: dict[str, Rejudge] = {}

    def rejudge(ev: StoredEvaluation, was_firing: bool) -> Observation:
        if ev.status == Status.ERROR or ev.value is None:
            return Observation(rule, Status(ev.status), {}, ev.value)
        judge_value = judges.get(ev.fingerprint)
        if judge_value is None:
            judge_value = judges[ev.fingerprint] = make_judge()
            judge_value.learn((points or {}).get(ev.fingerprint, ()))
        return judge_value(ev.value, was_firing, ev.at)

    return rejudge


def stored_judge(rule: str) -> Judge:
    """Replay the stored statuses as they were (only ``for``/``keep_firing_for`` change)."""

    def same(ev: StoredEvaluation, was_firing: bool) -> Observation:
        return Observation(rule, Status(ev.status), {}, ev.value)

    return same


#: States in which an ok observation changes nothing the replay looks at.
_QUIET = (AlertState.INACTIVE, AlertState.RESOLVED)


def replay(evaluations: Sequence[StoredEvaluation], policy: RulePolicy,
           rejudge: Judge, *, count_from: datetime | None = None) -> list[ReplayedEpisode]:
    """Feed evaluations (any order) through the engine per fingerprint; the episodes that
    fire at or after ``count_from`` (earlier ones are the warm-up's)."""
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
            observation = rejudge(ev, was_firing)
            if (record is not None and record.state in _QUIET
                    and observation.status == Status.OK):
                # An ok value of a quiet alert decides nothing (no event, no state
                # change): skipping the engine here makes a month of a minute rule's
                # evaluations, mostly fine, a few replays' worth of cheap judging.
                continue
            decision = evaluate(observation, record, quiet, ev.at)
            record = decision.record
            for event in decision.events:
                if event.kind == "firing" and not event.payload.get("relapse"):
                    fired_at = ev.at
                elif event.kind == "resolved" and fired_at is not None:
                    out.append(ReplayedEpisode(fp, fired_at, ev.at))
                    fired_at = None
        if fired_at is not None:
            out.append(ReplayedEpisode(fp, fired_at, None))
    return [e for e in out if count_from is None or e.fired_at >= count_from]


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
             end: datetime, since: datetime | None = None) -> BacktestResult:
    """Replay unchanged and changed; ``since``: where the period reported on starts (the
    evaluations before it are the warm-up)."""
    current = replay(evaluations, base, current_judge, count_from=since)
    changed = replay(evaluations, change.policy(base), changed_judge, count_from=since)
    counted = sum(1 for e in evaluations if since is None or e.at >= since)
    return compare(stored, current, changed, evaluations=counted, end=end)


def best_width(results: Mapping[float, BacktestResult]) -> float | None:
    """The width that keeps every actionable alert and drops the most noisy ones (the
    smallest such width on a tie: it watches most closely); None when no width keeps
    every actionable alert and drops at least one noisy one."""
    keeping = [(w, r) for w, r in results.items()
               if r.actionable_missed == 0 and r.noisy_dropped > 0]
    if not keeping:
        return None
    return min(keeping, key=lambda wr: (-wr[1].noisy_dropped, wr[0]))[0]


def width_advice(rule: str, width: float, result: BacktestResult, current: float) -> str:
    """"orders_last_hour: width 4 would have kept 3 of 3 actionable alerts and dropped 5 of
    7 noisy ones (now 3)"."""
    return (f"{rule}: width {width:g} would have kept {result.actionable_caught} of "
            f"{result.actionable} actionable alerts and dropped {result.noisy_dropped} of "
            f"{result.noisy} noisy ones (now {current:g})")


def effective(rules: RulesFile, rule: RuleBase) -> RuleBase:
    """The rule as its family's judge needs it: its timezone resolved from the defaults
    (a baseline's season slots are local time)."""
    return rule.model_copy(update={"timezone": rules.timezone_for(rule)})


# ----- a fixed threshold that keeps the actionable alerts -------------------------------

#: The bounds a threshold suggestion moves, and which way is "less sensitive": a higher
#: ``max`` (values above it fire) or a lower ``min`` (values below it fire).
THRESHOLD_SIDES = ("max", "min")


@dataclass(frozen=True)
class ThresholdChoice:
    """A bound moved from ``current`` to ``value``, and what the month's replay says of it."""

    key: str  # max | min
    current: float
    value: float
    result: BacktestResult


def roundest(lo: float, hi: float, *, key: str) -> float:
    """The roundest number that fires exactly as ``lo`` (``max``: in ``[lo, hi)``) or as
    ``hi`` (``min``: in ``(lo, hi]``) does: any bound between two neighbouring stored
    values fires for the same evaluations, so the review may as well say ``180`` for
    ``179.83``. Tries multiples of 10ⁿ from coarse to fine (down to 10⁻⁶)."""
    span = max(abs(lo), abs(hi), 1e-9)
    exponent = math.floor(math.log10(span)) + 1
    while exponent >= -6:
        step = 10.0 ** exponent
        digits = max(0, -exponent)
        if key == "max":
            x = round(math.ceil(round(lo / step, 9)) * step, digits)
            if lo <= x < hi:
                return x
        else:
            x = round(math.floor(round(hi / step, 9)) * step, digits)
            if lo < x <= hi:
                return x
        exponent -= 1
    return lo if key == "max" else hi


def threshold_candidates(values: Sequence[float], current: float, key: str) -> list[float]:
    """Bounds to try, from the current one outward (each less sensitive than the one
    before): one per distinct stored value beyond ``current``, made round by
    :func:`roundest`. ``max=v`` stops ``v`` itself from firing (the good range is
    inclusive), so a candidate at a value silences it and everything nearer."""
    if key not in THRESHOLD_SIDES:
        raise ValueError(f"a threshold is max or min, not {key!r}")
    if key == "max":
        beyond = sorted({v for v in values if math.isfinite(v) and v > current})
        uppers = [*beyond[1:], beyond[-1] + max(abs(beyond[-1]), 1.0)] if beyond else []
        return [roundest(v, nxt, key="max") for v, nxt in zip(beyond, uppers, strict=True)]
    beyond = sorted({v for v in values if math.isfinite(v) and v < current}, reverse=True)
    lowers = [*beyond[1:], beyond[-1] - max(abs(beyond[-1]), 1.0)] if beyond else []
    return [roundest(nxt, v, key="min") for v, nxt in zip(beyond, lowers, strict=True)]


def best_threshold(evaluations: Sequence[StoredEvaluation], stored: Sequence[StoredEpisode],
                   base: RulePolicy, *, key: str, current: float,
                   judge_for: Callable[[float], Judge], end: datetime,
                   since: datetime | None = None) -> ThresholdChoice | None:
    """The bound that still catches every stored episode labelled actionable and drops the
    most noisy ones; on a tie the one nearest the current bound (it watches most
    closely). None when no candidate keeps every actionable episode and drops a noisy one.

    Pure: replays ``evaluations`` (judged by ``judge_for(bound)``) through the engine.
    Moving a bound outward only ever removes alerting evaluations, so "keeps every
    actionable episode" holds for a prefix of the candidates and the noise dropped only
    grows along them: two binary searches find the choice in O(log n) replays (the last
    candidate that keeps them all, then the first that drops as much noise as it does).
    """
    candidates = threshold_candidates([e.value for e in evaluations if e.value is not None],
                                      current, key)
    if not candidates:
        return None
    current_replay = replay(evaluations, base, judge_for(current), count_from=since)
    counted = sum(1 for e in evaluations if since is None or e.at >= since)
    results: dict[int, BacktestResult] = {}

    def result(i: int) -> BacktestResult:
        if i not in results:
            changed = replay(evaluations, base, judge_for(candidates[i]), count_from=since)
            results[i] = compare(stored, current_replay, changed, evaluations=counted, end=end)
        return results[i]

    keeping = _last_true(len(candidates), lambda i: result(i).actionable_missed == 0)
    if keeping < 0 or result(keeping).noisy_dropped == 0:
        return None
    most = result(keeping).noisy_dropped
    first = _last_true(keeping + 1, lambda i: result(i).noisy_dropped < most) + 1
    return ThresholdChoice(key, current, candidates[first], result(first))


def _last_true(n: int, holds: Callable[[int], bool]) -> int:
    """The last index in ``range(n)`` where ``holds`` (true on a prefix), or -1."""
    lo, hi = 0, n  # holds on [0, lo); fails on [hi, n)
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo - 1
