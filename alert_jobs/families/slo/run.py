"""SLO rules end to end: new buckets from the source → stored counts → burn rates → engine.

Each run reads only what is new: the complete buckets (``rule.bucket``, aligned in UTC)
between the newest stored one and now. The windows (5 min … 30 days) are then sums over
the stored buckets (:class:`~alert_jobs.families.slo.store.SloBucketStore`), judged by
:mod:`~alert_jobs.families.slo.check`, and the one observation per SLO goes through the
engine like any other rule's (:func:`~alert_jobs.runtime.evaluate.process_batch`).

**Backfill.** A rule with nothing stored reads its history once, from
``now − (backfill or period)``: the recent part (twice its longest short window, at
least 6 h) in its own buckets, older history in coarser ones (about an hour), newest
first, so that its short windows are known from the first run. A run reads at most
``max_reads`` queries' worth (:data:`MAX_READS`) and for at most :data:`READ_SECONDS`
per SLO; the next run goes on where it stopped (everything stored is kept, so a restart
loses nothing). Progress goes to a callback (the Dagster asset writes it to the run
log: ``backfill checkout: 312 of 1,080 buckets``).

**Failures.** A source that cannot be read is that SLO's ``error`` observation naming
the SLO and its source; nothing is stored for the interval that failed, so the next
run reads it again. A bucket the source has nothing for is stored as a gap: a window
with too little data is ``nodata``, never a silent zero.

Sources of a batch are read concurrently (:func:`~alert_jobs.runtime.bounded.run_bounded`,
``defaults.source_concurrency`` at a time), as ``sql_metric`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from alert_jobs.config import RulesFile, SecretMissingError
from alert_jobs.core.durations import format_duration
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import (
    AlertRecord,
    Observation,
    Severity,
    Status,
    error_observation,
    fingerprint,
)
from alert_jobs.families.slo import check, source
from alert_jobs.families.slo.check import Bucket, SloReport
from alert_jobs.families.slo.config import Sli, SloRule
from alert_jobs.families.slo.store import Extent, SloBucketStore
from alert_jobs.runtime.bounded import Task, run_bounded
from alert_jobs.runtime.evaluate import BATCH_CHUNK, RuleOutcome, process_batch, vanished
from alert_jobs.store import Timeline, utcnow

#: Source queries one SLO may spend in one run (a SQL source: one per bucket; a
#: Prometheus source: one range query per expression per call). A 30-day backfill at
#: 1-minute buckets is about 1,430 of them: two runs.
MAX_READS = 1000
#: Seconds one SLO's reads may take in one run before it stops starting new ones.
READ_SECONDS = 30.0
#: Seconds past that (and the rule's query timeout) before the run stops waiting.
TIMEOUT_GRACE = 5.0
#: Buckets per source call (and per stored write): SQL, Prometheus.
SQL_CHUNK = 60
PROMETHEUS_CHUNK = 1000
#: The coarse bucket of older history read by a backfill (rounded to whole buckets).
COARSE = timedelta(hours=1)
#: The recent part of a backfill, read at full resolution, is at least this long.
RECENT_MIN = timedelta(hours=6)
#: Stored buckets are kept for at least this long (the monthly budget report reads the
#: last whole calendar month), and at least the rule's period and backfill.
KEEP = timedelta(days=65)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ``progress(rule, done, total)``: buckets of a rule's history read so far.
Progress = Callable[[str, int, int], None]
#: ``reader(sli, start, end, step)``: the buckets of ``[start, end)`` from the SLO's source
#: (:func:`~alert_jobs.families.slo.source.read_buckets`; a rule test passes its own).
BucketReader = Callable[[Sli, datetime, datetime, timedelta], list[Bucket]]


# ----- which buckets a run reads ------------------------------------------------------


def floor_to(at: datetime, step: timedelta) -> datetime:
    """``at`` down to the UTC grid of ``step`` (whole steps since 1970-01-01)."""
    return EPOCH + ((at - EPOCH) // step) * step


def ceil_to(at: datetime, step: timedelta) -> datetime:
    down = floor_to(at, step)
    return down if down == at else down + step


@dataclass(frozen=True)
class Run:
    """Consecutive buckets ``[start, end)`` of one length ``step``."""

    start: datetime
    end: datetime
    step: timedelta

    @property
    def buckets(self) -> int:
        return (self.end - self.start) // self.step

    def chunks(self, size: int) -> list[Run]:
        """This run cut in pieces of at most ``size`` buckets, oldest first."""
        width = self.step * size
        out, at = [], self.start
        while at < self.end:
            out.append(Run(at, min(self.end, at + width), self.step))
            at += width
        return out


def runs_between(start: datetime, end: datetime, step: timedelta) -> list[Run]:
    """``[start, end)`` as whole ``step`` buckets on their grid, with a shorter bucket
    at either end that is off the grid (e.g. after ``bucket`` was changed)."""
    if end <= start:
        return []
    out = []
    head = min(ceil_to(start, step), end)
    if head > start:
        out.append(Run(start, head, head - start))
    tail = max(floor_to(end, step), head)
    if tail > head:
        out.append(Run(head, tail, step))
    if end > tail:
        out.append(Run(tail, end, end - tail))
    return out


def coarse_step(rule: SloRule) -> timedelta:
    """About an hour, in whole buckets (so that coarse edges are bucket edges)."""
    return rule.bucket * max(1, round(COARSE / rule.bucket))


def recent_span(rule: SloRule) -> timedelta:
    """How much of a backfill is read at full resolution: twice the longest short
    window (so every short window stays exact until it has slid past the coarse
    history), at least :data:`RECENT_MIN`."""
    return max(RECENT_MIN, 2 * max(p.short for p in rule.pairs))


def history_start(rule: SloRule, now: datetime) -> datetime:
    """Where a rule's stored history must begin: ``backfill`` (else ``period``) ago."""
    return floor_to(now - (rule.backfill or rule.period), rule.bucket)


@dataclass(frozen=True)
class Plan:
    """What a run reads: ``forward`` (after the newest stored bucket, oldest first) and
    ``backward`` (history before the oldest, read newest first); ``total`` is the
    number of buckets of the whole history at this resolution (for progress)."""

    end: datetime  # the newest complete bucket's end: where the windows end
    forward: tuple[Run, ...]
    backward: tuple[Run, ...]
    total: int

    @property
    def remaining(self) -> int:
        return sum(r.buckets for r in (*self.forward, *self.backward))


def plan(rule: SloRule, extent: Extent | None, now: datetime) -> Plan:
    """The buckets to read now, given what is stored (``extent``)."""
    end = floor_to(now, rule.bucket)
    target = min(history_start(rule, now), end)
    boundary = max(target, min(end, floor_to(end - recent_span(rule), coarse_step(rule))))

    def split(start: datetime, stop: datetime) -> tuple[Run, ...]:
        return (*runs_between(start, min(stop, boundary), coarse_step(rule)),
                *runs_between(max(start, boundary), stop, rule.bucket))

    total = sum(r.buckets for r in split(target, end))
    if extent is None:  # all of it is history: newest first
        return Plan(end, (), split(target, end), total)
    backward = split(target, extent.first_start) if extent.first_start > target else ()
    return Plan(end, split(max(extent.last_end, target), end), backward, total)


# ----- reading ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ingest:
    """What one run read for one SLO."""

    end: datetime  # the windows end here
    read: int = 0  # buckets read and stored (new) this run
    backfilled: int = 0  # of them, history: a backfill, or a catch-up after downtime
    remaining: int = 0  # buckets of history still to read (later runs)
    total: int = 0  # buckets of the whole history at this resolution
    error: str = ""  # why the source could not be read (nothing stored for that part)


def _cost(rule: SloRule, chunk: Run) -> int:
    return chunk.buckets if rule.sli.sql is not None else 2


def _chunk_size(rule: SloRule) -> int:
    return SQL_CHUNK if rule.sli.sql is not None else PROMETHEUS_CHUNK


def _reads(rule: SloRule, plan_: Plan) -> Iterator[tuple[Run, bool]]:
    """``(chunk, is_backward)`` in reading order: the new buckets oldest first (they are
    appended), then history newest first (it is added in front)."""
    size = _chunk_size(rule)
    for run in plan_.forward:
        for chunk in run.chunks(size):
            yield chunk, False
    for run in reversed(plan_.backward):
        for chunk in reversed(run.chunks(size)):
            yield chunk, True


def ingest(rule: SloRule, store: SloBucketStore, *, now: datetime, run_id: str | None = None,
           max_reads: int = MAX_READS, read_seconds: float = READ_SECONDS,
           progress: Progress | None = None, reader: BucketReader | None = None) -> Ingest:
    """Read and store the rule's new buckets (and history still missing), within the
    run's budget. Source failures end the reading and come back in ``error``.
    ``reader``: where the buckets come from (the rule's source by default)."""
    fetch = reader or source.read_buckets
    extent = store.extent(rule.name)
    todo = plan(rule, extent, now)
    history = extent is None or bool(todo.backward) or \
        sum(r.buckets for r in todo.forward) > _chunk_size(rule)
    started = time.monotonic()
    spent = read = 0
    remaining = todo.remaining
    error = ""
    for chunk, backward in _reads(rule, todo):
        if spent and (spent + _cost(rule, chunk) > max_reads
                      or time.monotonic() - started > read_seconds):
            break
        spent += _cost(rule, chunk)
        try:
            buckets = fetch(rule.sli, chunk.start, chunk.end, chunk.step)
        except SourceError as exc:
            error = str(exc)
            break
        except SecretMissingError as exc:
            error = str(exc)
            break
        write = store.prepend if backward else store.append
        read += write(rule.name, buckets, run_id=run_id)
        remaining -= chunk.buckets
        if history and progress is not None:
            progress(rule.name, todo.total - remaining, todo.total)
    trim_old(rule, store, extent, now)
    return Ingest(end=todo.end, read=read, backfilled=read if history else 0,
                  remaining=remaining if history else 0, total=todo.total, error=error)


def keep_for(rule: SloRule) -> timedelta:
    return max(KEEP, rule.period, rule.backfill or rule.period)


def trim_old(rule: SloRule, store: SloBucketStore, extent: Extent | None, now: datetime
             ) -> int:
    """Delete buckets older than :func:`keep_for` (a day's worth at a time, not a row
    every run)."""
    keep = keep_for(rule)
    if extent is None or extent.first_start >= now - keep - timedelta(days=1):
        return 0
    return store.trim(rule.name, now - keep)


# ----- one evaluation -----------------------------------------------------------------


@dataclass(frozen=True)
class SloOutcome:
    """What one evaluation of one SLO read, judged and decided."""

    rule: SloRule
    outcome: RuleOutcome
    report: SloReport | None  # None: the stored counts could not be read
    ingest: Ingest
    counts: dict[timedelta, check.Counts] = field(default_factory=dict)


def subject(rule: SloRule) -> str:
    return rule.service or rule.description or rule.name.replace("_", " ")


def _source_kind(rule: SloRule) -> str:
    return "SQL" if rule.sli.sql is not None else "Prometheus"


def _failed(rule: SloRule, now: datetime, reason: str) -> Ingest:
    return Ingest(end=floor_to(now, rule.bucket), error=reason)


def _read_safely(rule: SloRule, store: SloBucketStore, *, now: datetime, run_id: str | None,
                 max_reads: int, progress: Progress | None,
                 reader: BucketReader | None = None) -> Ingest:
    """:func:`ingest`, with a bug costing this SLO, not the batch."""
    try:
        return ingest(rule, store, now=now, run_id=run_id, max_reads=max_reads,
                      progress=progress, reader=reader)
    except Exception as exc:
        return _failed(rule, now, f"unexpected {type(exc).__name__} while reading the "
                       f"{_source_kind(rule)} source: {str(exc)[:200]}")


def _late(rule: SloRule, now: datetime, limit: float) -> Ingest:
    return _failed(rule, now, f"the {_source_kind(rule)} source did not answer within "
                   f"{limit:g} s; the run went on without it (what was read is kept)")


def _timeout(rule: SloRule) -> timedelta:
    sli = rule.sli.sql or rule.sli.prometheus
    assert sli is not None
    return sli.query_timeout


def observe(rule: SloRule, store: SloBucketStore, got: Ingest, *, now: datetime,
            counts: dict[timedelta, check.Counts] | None = None,
            ) -> tuple[Observation, SloReport | None, dict[timedelta, check.Counts]]:
    """The SLO's observation from its stored counts (an ``error`` when its source
    failed this run; the report is still worked out for the asset's numbers).
    ``counts``: its windows, when the batch has read them already."""
    report: SloReport | None = None
    try:
        if counts is None:
            counts = store.window_counts(rule.name, check.windows_of(rule), end=got.end)
        report = check.evaluate(rule, counts)
    except Exception as exc:  # the timeline itself: this SLO's error, not the batch's
        if not got.error:
            return (error_observation(rule.name, f"SLO {subject(rule)}: its stored counts "
                                      f"cannot be read ({type(exc).__name__})", rule.labels),
                    None, {})
    if got.error:
        return (error_observation(rule.name, f"SLO {subject(rule)} ({rule.name}): its "
                                  f"{_source_kind(rule)} source cannot be read: {got.error}",
                                  rule.labels), report, counts or {})
    assert report is not None and counts is not None
    obs = check.judge(rule, report, now=now, labels=rule.labels)
    if obs.status == Status.NODATA:  # say where nothing came from: the SLO and its query
        obs = replace(obs, summary=f"{obs.summary} Source: {source.describe(rule.sli)}.")
    return obs, report, counts


def _keep_severity(obs: Observation, record: AlertRecord | None) -> Observation:
    """An SLO alert's severity is its firing pair's; the observation that resolves it has
    none, and would fall back to the rule's. The resolve must reach whoever was paged
    (routes match on ``severity``), so it keeps the highest severity the alert was sent
    with."""
    if obs.severity is not None or record is None or not record.state.is_active:
        return obs
    return replace(obs, severity=Severity(record.notified_severity or record.severity))


def evaluate_batch(
    rules: RulesFile, batch: Sequence[SloRule], timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None, concurrency: int | None = None,
    max_reads: int = MAX_READS, progress: Progress | None = None, chunk: int = BATCH_CHUNK,
    readers: Mapping[str, BucketReader] | None = None,
) -> list[SloOutcome]:
    """Read, judge and decide ``batch`` once (delivery is the caller's).

    One outcome per rule, in order. Alert instances of these rules that the evaluation
    no longer produces (their labels changed) are resolved in the same write.
    ``readers``: by rule name, what reads its buckets instead of its source (a rule
    test's inputs).
    """
    readers = readers or {}
    now = (now or utcnow()).astimezone(UTC)
    store = SloBucketStore(timeline)
    tasks = [Task(call=partial(_read_safely, rule, store, now=now, run_id=run_id,
                               max_reads=max_reads, progress=progress,
                               reader=readers.get(rule.name)),
                  limit=READ_SECONDS + _timeout(rule).total_seconds() + TIMEOUT_GRACE,
                  late=partial(_late, rule, now))
             for rule in batch]
    ingests = run_bounded(tasks, concurrency=concurrency or rules.defaults.source_concurrency)
    try:  # every SLO's windows on one connection; if that fails, each reads (and says) its own
        many: list[dict[timedelta, check.Counts] | None] = list(store.window_counts_many(
            [(rule.name, check.windows_of(rule), got.end)
             for rule, got in zip(batch, ingests, strict=True)]))
    except Exception:
        many = [None] * len(batch)
    seen = [observe(rule, store, got, now=now, counts=counts)
            for rule, got, counts in zip(batch, ingests, many, strict=True)]

    by_name = {rule.name: rule for rule in batch}
    active = {a.fingerprint: a for a in timeline.alerts.list() if a.rule in by_name}
    keep = {fingerprint(rule.name, rule.labels) for rule in batch}
    stale = [(by_name[a.rule], vanished(a), "") for a in active.values()
             if a.fingerprint not in keep]
    observations = [_keep_severity(obs, active.get(fp)) for (obs, _, _), fp
                    in zip(seen, [fingerprint(r.name, r.labels) for r in batch], strict=True)]
    outcomes = process_batch(
        rules, timeline,
        [(rule, obs, "") for rule, obs in zip(batch, observations, strict=True)] + stale,
        now=now, run_id=run_id, chunk=chunk)
    return [SloOutcome(rule, outcome, report, got, counts)
            for rule, outcome, got, (_, report, counts)
            in zip(batch, outcomes[:len(batch)], ingests, seen, strict=True)]


def evaluate(rules: RulesFile, rule: SloRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: one SLO, now (``alert-jobs check``)."""
    return [evaluate_batch(rules, [rule], timeline, now=now, run_id=run_id)[0].outcome]


def describe_ingest(rule: SloRule, got: Ingest) -> str:
    """One line for logs and the CLI: what this run read."""
    if got.error:
        return f"{rule.name}: source error: {got.error}"
    text = f"{rule.name}: {got.read} new bucket(s) of {format_duration(rule.bucket)}"
    if got.remaining:
        text += (f"; backfill {got.total - got.remaining:,} of {got.total:,} buckets, "
                 "continued next run")
    return text
