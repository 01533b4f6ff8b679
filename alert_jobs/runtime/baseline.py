"""A baseline rule's evaluation around the pure maths: read the slot, judge, adopt, backfill.

Any family judging one number over time uses it (``sql_metric`` values, the
``redis_quota`` command rate):

* :func:`assess_value`: one indexed statement for the slot's history and the last
  hours' evaluations (:meth:`~alert_jobs.store.baselines.BaselineStore.read`), then
  :func:`alert_jobs.core.baseline.assess`; when the value is outside the band it weighs
  the last ``adopt_after`` of evaluations (a second read, only then) and may adopt a
  new level (:func:`alert_jobs.core.baseline.adoption`: stores the
  :class:`~alert_jobs.core.baseline.Shift`) and judge again;
* :func:`backfill`: on a new rule's first runs, compute its value over past windows
  (most useful first, :func:`alert_jobs.core.baseline.backfill_times`), bounded per run
  by a number of queries and seconds, with a progress line for the run log
  ("backfill orders_last_hour: 1,000 of 8,064 points").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alert_jobs.config import Baseline
from alert_jobs.core import baseline as core
from alert_jobs.core.baseline import Assessment, Settings, Shift
from alert_jobs.core.cron import cron_iter
from alert_jobs.core.formatting import fmt_number
from alert_jobs.store import Timeline
from alert_jobs.store.baselines import BaselineState

#: Per run and rule: at most this many backfill queries …
BACKFILL_QUERIES = 1_000
#: … and this many seconds of them; the next run goes on where this one stopped.
BACKFILL_SECONDS = 30.0
#: Backfilled points written per transaction: a run that dies mid-backfill keeps all
#: but the last few, and a write never holds SQLite's lock for long.
BACKFILL_WRITE_EVERY = 200


@dataclass(frozen=True)
class Judged:
    """An assessment and, when it adopted a new level, the state to keep."""

    assessment: Assessment
    adopted: BaselineState | None = None


def _assess(timeline: Timeline, rule: str, fingerprint: str, value: float,
            settings: Settings, now: datetime, timezone: str,
            shifts: tuple[Shift, ...]) -> Assessment:
    ranges = core.slot_ranges(now, settings.season, settings.history, timezone)
    read = timeline.baselines.read(rule, fingerprint, ranges, shifts,
                                   recent=(now - core.RECENT, now))
    return core.assess(value, read.points, settings, now=now, timezone=timezone,
                       shifts=shifts, recent=read.recent)


def assess_value(timeline: Timeline, *, rule: str, fingerprint: str, value: float,
                 spec: Baseline, now: datetime, timezone: str,
                 state: BaselineState | None) -> Judged:
    """Judge ``value`` against the baseline of ``fingerprint`` (see the module doc). An
    adoption is saved here (``timeline.baselines.save``) and returned."""
    settings = spec.settings()
    shifts = tuple(core.live_shifts(state.shifts if state else (), now, settings.history))
    assessment = _assess(timeline, rule, fingerprint, value, settings, now, timezone, shifts)
    after = settings.adopt_after
    if (assessment.crossed is None or after is None
            or any(s.adopted_at > now - after for s in shifts)):
        return Judged(assessment)
    window = timeline.baselines.recent(rule, fingerprint, now - after, now)
    shift = core.adoption(assessment, window, value, shifts, now, settings)
    if shift is None:
        return Judged(assessment)
    # Read the state again: a backfill earlier in this evaluation may have moved its
    # progress on since ``state`` was read, and that must not be written back.
    current = timeline.baselines.states([fingerprint]).get(fingerprint) or state
    adopted = (replace(current, shifts=(*shifts, shift)) if current is not None
               else BaselineState(fingerprint=fingerprint, rule=rule, shifts=(shift,)))
    timeline.baselines.save(adopted, now)
    return Judged(_assess(timeline, rule, fingerprint, value, settings, now, timezone,
                          adopted.shifts), adopted)


@dataclass(frozen=True)
class BackfillProgress:
    """What one run's backfill did, for the run log."""

    rule: str
    computed: int  # this run
    done: int  # in all
    total: int
    failed: str | None = None  # the source's error, when the backfill stopped on one

    def line(self) -> str:
        """"backfill orders_last_hour: 1,000 of 8,064 points (this run 1,000)"."""
        text = (f"backfill {self.rule}: {fmt_number(self.done)} of {fmt_number(self.total)} "
                f"points (this run {fmt_number(self.computed)})")
        if self.failed is not None:
            return (f"{text}; stopped by a source error: {self.failed}; the points so far "
                    "are kept and the next run tries again")
        if self.done >= self.total:
            return f"{text}, done"
        return text


def backfill(timeline: Timeline, *, rule: str, fingerprint: str, spec: Baseline,
             step: timedelta, now: datetime, timezone: str, state: BaselineState | None,
             query: Callable[[datetime, datetime], float | None], window: timedelta,
             max_queries: int = BACKFILL_QUERIES, max_seconds: float = BACKFILL_SECONDS,
             clock: Callable[[], float] | None = None) -> BackfillProgress | None:
    """Compute up to ``max_queries`` past values (``query(window_end - window,
    window_end)``) within ``max_seconds``, store them and the progress; None when there
    is nothing (left) to backfill or ``spec.backfill`` is off. The first call fixes
    ``backfill_before = now`` (evaluations cover the time from then on). A source error
    stops this run's backfill (the points so far are kept) and is reported, not raised.

    A rule that already has evaluations (a ``min``/``max`` rule that gains a baseline)
    fixes ``backfill_before`` at its first evaluation in the history instead, so
    backfilled points and evaluations never overlap. Which points are missing is read
    from the store each time (one range read), so two runs backfilling at once, or a
    run that died half-way, leave neither gaps nor duplicates.
    """
    if not spec.backfill or (state is not None and state.backfill_finished):
        return None
    clock = clock or time.monotonic
    started = clock()
    store = timeline.baselines
    oldest = core.history_start(now, spec.season, spec.history)  # the oldest slot's start
    before = state.backfill_before if state is not None else None
    if before is None:
        before = store.first_evaluation(rule, fingerprint, oldest) or now
    times = core.backfill_times(now, step, spec.history, spec.season, timezone, before=before)
    stored = store.stored_times(fingerprint, oldest, before)
    todo = [at for at in times if at not in stored]
    total = len(times)
    computed: list[tuple[datetime, float | None]] = []
    pending: list[tuple[datetime, float | None]] = []
    failed: str | None = None
    for at in todo[:max(0, max_queries)]:
        if clock() - started >= max_seconds:
            break
        try:
            value = query(at - window, at)
        except Exception as exc:  # the source's reason, for the run log; never raised
            failed = str(exc) or type(exc).__name__
            break
        computed.append((at, value))
        pending.append((at, value))
        if len(pending) >= BACKFILL_WRITE_EVERY:
            store.add_points(rule, fingerprint, pending)
            pending = []
    if pending:
        store.add_points(rule, fingerprint, pending)
    done = total - len(todo) + len(computed)
    base = state or BaselineState(fingerprint=fingerprint, rule=rule)
    store.save(replace(base, backfill_before=before, backfill_done=done, backfill_total=total),
               now)
    if not todo:
        return None
    return BackfillProgress(rule=rule, computed=len(computed), done=done, total=total,
                            failed=failed)


def cadence(cron: str, timezone: str, now: datetime) -> timedelta:
    """The time between two ticks of ``cron`` around ``now`` (the backfill's step: a
    backfilled point per evaluation the rule would have made)."""
    ticks = cron_iter(cron, now.astimezone(ZoneInfo(timezone)))
    first: datetime = ticks.get_next(datetime)
    second: datetime = ticks.get_next(datetime)
    # In UTC: two times of one zone subtract as wall clocks (a DST night is 24 h there).
    return second.astimezone(UTC) - first.astimezone(UTC)
