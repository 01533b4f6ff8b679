"""``sql_metric`` rules end to end: query → judge → engine, one rule or a whole batch.

A batch (the rules of one schedule tick) reads its sources concurrently, at most
``defaults.source_concurrency`` at a time, each query within its rule's
``query_timeout``; then every decision of the batch is written together
(:func:`~alert_jobs.runtime.evaluate.process_batch`). A rule whose query fails or
hangs is that rule's ``error`` observation; the others are decided as usual.

**Baselines.** A rule with ``expect.baseline`` is judged against its learned range
(:mod:`alert_jobs.runtime.baseline`): the batch reads every such rule's stored state in
one query; then, inside the rule's own bounded task (so a slow source still costs only
its rule), a rule that has not finished its backfill first computes its query over past
windows ``[t - window, t)``, then reads its value, judges it against the slot's history
(adopting a level shift that has lasted ``adopt_after``) and hands the assessment to
:func:`~alert_jobs.families.sql_metric.check.judge`. Each backfill's progress goes to
``progress`` (the Dagster asset writes it to the run log).

**The batch's backfill budget.** 1,000 new rules must not make one run take an hour,
nor starve the rules at the end of the batch. So a run's backfill has a budget shared by
all its rules: at most :data:`BATCH_BACKFILL_QUERIES` queries, split evenly between the
rules still backfilling (each gets at least :data:`BACKFILL_MIN_QUERIES`, enough for the
slot coming up next, which :func:`~alert_jobs.core.baseline.backfill_times` computes
first, and at most the per-rule cap), and no backfill query starts once the run has
spent half the time between two ticks (at most :data:`BATCH_BACKFILL_SECONDS`) on it,
so the schedule's next tick is not skipped for an overlapping run. Every rule is still
evaluated; rules not done go on at the next tick where they stopped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from alert_jobs.config import RulesFile, SecretMissingError, resolve
from alert_jobs.core.durations import format_duration
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import Observation, error_observation, fingerprint
from alert_jobs.families.sql_metric.check import bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.source import query_number
from alert_jobs.runtime.baseline import (
    BACKFILL_QUERIES,
    BACKFILL_SECONDS,
    BackfillProgress,
    assess_value,
    backfill,
    cadence,
)
from alert_jobs.runtime.bounded import Task, run_bounded
from alert_jobs.runtime.evaluate import BATCH_CHUNK, RuleOutcome, process_batch, vanished
from alert_jobs.store import Timeline, utcnow
from alert_jobs.store.baselines import BaselineState

log = logging.getLogger("alert_jobs.sql_metric")

#: Seconds past a rule's ``query_timeout`` before the batch stops waiting for its query:
#: the source's own timeout answers first with a clearer reason when it works.
TIMEOUT_GRACE = 1.0


def _subject(rule: SqlMetricRule) -> str:
    return rule.description or rule.name.replace("_", " ")


#: A rule's number over one window ``[start, end)``: ``None`` for no value; a failed read
#: raises :class:`SourceError`.
ValueAt = Callable[[datetime, datetime], float | None]
#: Where a rule's numbers come from: ``reader(rule)`` gives its :data:`ValueAt` (or raises
#: :class:`SecretMissingError`). Production reads the rule's database
#: (:func:`database_reader`); a rule test reads the test's series instead
#: (:mod:`alert_jobs.families.sql_metric.simulate`), through the same judging.
Reader = Callable[[SqlMetricRule], ValueAt]


def database_reader(rule: SqlMetricRule) -> ValueAt:
    """The rule's query against its database (its URL resolved once, here)."""
    url = resolve(rule.database)

    def value_at(start: datetime, end: datetime) -> float | None:
        return query_number(url, rule.query, window_start=start, window_end=end,
                            timeout=rule.query_timeout)

    return value_at


def observe_sql_metric(rule: SqlMetricRule, *, now: datetime, was_firing: bool,
                       read: Reader = database_reader) -> Observation:
    """Run the rule's query and judge the number; failures become an ``error`` observation."""
    subject = _subject(rule)
    window = format_duration(rule.window)
    try:
        value = read(rule)(now - rule.window, now)
    except (SourceError, SecretMissingError) as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels)
    except Exception as exc:  # a bug must cost this rule, not the batch
        return error_observation(rule.name, f"{subject}: unexpected {type(exc).__name__} "
                                 f"while reading the source", rule.labels)
    return judge(rule.name, value, bounds_of(rule), subject=subject, window=window,
                 was_firing=was_firing, labels=rule.labels)


def _late(rule: SqlMetricRule, limit: float) -> Observation:
    return error_observation(
        rule.name, f"{_subject(rule)}: the query did not answer within {limit:g} s "
        f"(query_timeout {format_duration(rule.query_timeout)}); the run went on without it",
        rule.labels)


#: A run's backfill, all rules together: at most this many queries …
BATCH_BACKFILL_QUERIES = 20_000
#: … each rule still backfilling at least this many (the slot coming up next: 4 weeks
#: of an hour of 5-minute points is 48, plus this week's last half hour) …
BACKFILL_MIN_QUERIES = 60
#: … and none started after this share of the time between two ticks, or this many
#: seconds, whichever is shorter.
BACKFILL_TICK_SHARE = 0.5
BATCH_BACKFILL_SECONDS = 120.0


class BackfillBudget:
    """The backfill queries and seconds a batch run may still spend (thread-safe: the
    rules' tasks take from it concurrently)."""

    def __init__(self, *, queries: int, seconds: float, rules: int,
                 clock: Callable[[], float] = time.monotonic,
                 per_rule: int = BACKFILL_QUERIES) -> None:
        self.queries = queries
        self.deadline = clock() + seconds
        self.share = min(per_rule, max(BACKFILL_MIN_QUERIES, queries // max(1, rules)))
        self.clock = clock
        self._lock = threading.Lock()

    def take(self) -> tuple[int, float]:
        """Queries and seconds for one rule's backfill (0 queries: the budget is spent)."""
        with self._lock:
            seconds = min(BACKFILL_SECONDS, self.deadline - self.clock())
            granted = min(self.share, self.queries) if seconds > 0 else 0
            self.queries -= granted
            return granted, seconds

    def give_back(self, queries: int) -> None:
        with self._lock:
            self.queries += max(0, queries)


@dataclass(frozen=True)
class BaselineContext:
    """What a baseline rule's task needs besides the rule (read once per batch)."""

    timeline: Timeline
    fingerprint: str
    state: BaselineState | None
    timezone: str
    step: timedelta
    budget: BackfillBudget

    @property
    def backfill_due(self) -> bool:
        return self.state is None or not self.state.backfill_finished


Seen = tuple[Observation, BackfillProgress | None]


def observe_baseline(rule: SqlMetricRule, ctx: BaselineContext, *, now: datetime,
                     was_firing: bool, read: Reader = database_reader) -> Seen:
    """Backfill (when due and the budget allows), read the value, judge it against the
    baseline; every failure is this rule's ``error`` observation or progress line."""
    assert rule.expect.baseline is not None
    spec = rule.expect.baseline
    subject = _subject(rule)
    window = format_duration(rule.window)
    try:
        value_at = read(rule)
    except SecretMissingError as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels), None

    progress = None
    if spec.backfill and ctx.backfill_due:
        queries, seconds = ctx.budget.take()
        if queries > 0:
            try:
                progress = backfill(ctx.timeline, rule=rule.name, fingerprint=ctx.fingerprint,
                                    spec=spec, step=ctx.step, now=now, timezone=ctx.timezone,
                                    state=ctx.state, query=value_at, window=rule.window,
                                    max_queries=queries, max_seconds=seconds)
            except Exception as exc:  # the timeline, not the source: say so, evaluate on
                progress = BackfillProgress(rule.name, 0, 0, 0, failed=f"the backfill could "
                                            f"not be stored: {type(exc).__name__}: {exc}")
            ctx.budget.give_back(queries - (progress.computed if progress else 0))
    try:
        value = value_at(now - rule.window, now)
    except SourceError as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels), progress
    except Exception as exc:  # a bug must cost this rule, not the batch
        return error_observation(rule.name, f"{subject}: unexpected {type(exc).__name__} "
                                 "while reading the source", rule.labels), progress
    # No value: judged all the same, for the expected range in the nodata sentence (a
    # NaN is inside every band, so it never adopts anything).
    number = math.nan if value is None else float(value)
    try:
        judged = assess_value(ctx.timeline, rule=rule.name, fingerprint=ctx.fingerprint,
                              value=number, spec=spec, now=now, timezone=ctx.timezone,
                              state=ctx.state)
    except Exception as exc:
        return error_observation(rule.name, f"{subject}: its baseline could not be read "
                                 f"from the timeline ({type(exc).__name__}: {exc})",
                                 rule.labels), progress
    return judge(rule.name, value, bounds_of(rule), subject=subject, window=window,
                 was_firing=was_firing, labels=rule.labels,
                 baseline=judged.assessment), progress


def _plain(rule: SqlMetricRule, *, now: datetime, was_firing: bool,
           read: Reader = database_reader) -> Seen:
    return observe_sql_metric(rule, now=now, was_firing=was_firing, read=read), None


def _late_seen(rule: SqlMetricRule, limit: float) -> Seen:
    return _late(rule, limit), None


def _steps(rules: RulesFile, batch: Sequence[SqlMetricRule], now: datetime
           ) -> dict[tuple[str, str], timedelta]:
    """The time between two ticks of each (cron, timezone) of the batch's baseline rules
    (a batch is one schedule, but a named batch is checked only by ``rules validate``)."""
    steps: dict[tuple[str, str], timedelta] = {}
    for rule in batch:
        key = (rules.schedule_for(rule), rules.timezone_for(rule))
        if rule.expect.baseline is not None and key not in steps:
            steps[key] = cadence(key[0], key[1], now)
    return steps


def evaluate_batch(
    rules: RulesFile, batch: Sequence[SqlMetricRule], timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None, concurrency: int | None = None,
    chunk: int = BATCH_CHUNK, progress: Callable[[BackfillProgress], None] | None = None,
    read: Reader = database_reader, budget: BackfillBudget | None = None,
) -> list[RuleOutcome]:
    """Evaluate ``batch`` once and persist the decisions (delivery is the caller's).

    One outcome per rule, in order. Alert instances of these rules that the evaluation
    no longer produces (their labels changed) are resolved in the same write. Each
    baseline rule that backfilled reports to ``progress`` (else to the
    ``alert_jobs.sql_metric`` logger), in batch order, after the sources were read.

    ``read`` is where the numbers come from (the rules' databases unless a rule test
    gives its series); ``budget`` replaces the run's backfill budget (see the module doc).
    """
    now = now or utcnow()
    active = {a.fingerprint: a for a in timeline.alerts.list()}
    produced = [fingerprint(rule.name, rule.labels) for rule in batch]
    learned = {fp for rule, fp in zip(batch, produced, strict=True) if rule.expect.baseline}
    states = timeline.baselines.states(sorted(learned)) if learned else {}
    due = sum(1 for rule, fp in zip(batch, produced, strict=True)
              if rule.expect.baseline is not None and rule.expect.baseline.backfill
              and not (fp in states and states[fp].backfill_finished))
    steps = _steps(rules, batch, now)
    budget = budget or BackfillBudget(queries=BATCH_BACKFILL_QUERIES, rules=due, seconds=min(
        [BATCH_BACKFILL_SECONDS, *(BACKFILL_TICK_SHARE * s.total_seconds()
                                   for s in steps.values())]))
    tasks: list[Task[Seen]] = []
    for rule, fp in zip(batch, produced, strict=True):
        limit = rule.query_timeout.total_seconds() + TIMEOUT_GRACE
        if rule.expect.baseline is None:
            call = partial(_plain, rule, now=now, was_firing=fp in active, read=read)
        else:
            zone = rules.timezone_for(rule)
            ctx = BaselineContext(timeline, fp, states.get(fp), zone,
                                  steps[(rules.schedule_for(rule), zone)], budget)
            call = partial(observe_baseline, rule, ctx, now=now, was_firing=fp in active,
                           read=read)
            if ctx.backfill_due and rule.expect.baseline.backfill:
                # the backfill's seconds, and its last query may run to its own timeout
                limit += BACKFILL_SECONDS + rule.query_timeout.total_seconds()
        tasks.append(Task(call=call, limit=limit, late=partial(_late_seen, rule)))
    seen = run_bounded(tasks, concurrency=concurrency or rules.defaults.source_concurrency)
    for _, backfilled in seen:
        if backfilled is not None:
            (progress or _log_progress)(backfilled)
    by_name = {rule.name: rule for rule in batch}
    keep = set(produced)
    stale = [(by_name[a.rule], vanished(a), "") for a in active.values()
             if a.rule in by_name and a.fingerprint not in keep]
    outcomes = process_batch(
        rules, timeline, [(rule, obs, "") for rule, (obs, _) in zip(batch, seen,
                                                                    strict=True)] + stale,
        now=now, run_id=run_id, chunk=chunk)
    return outcomes[:len(batch)]


def _log_progress(done: BackfillProgress) -> None:
    log.info(done.line())


def evaluate_rule(
    rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None,
) -> RuleOutcome:
    """Evaluate ``rule`` once and persist the decision (delivery is the caller's)."""
    return evaluate_batch(rules, [rule], timeline, now=now, run_id=run_id)[0]


def evaluate(rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: one rule, now."""
    return [evaluate_rule(rules, rule, timeline, now=now, run_id=run_id)]
