"""A ``score_drift`` rule in a rule test: its reference and current scores from the file.

The input (``docs/score_drift.md``, "Rule tests") gives distributions a person can write
by hand — ``scores`` (a list, or a string in the series notation where ``_`` is a NULL
score) or ``bins`` (counts of equal-width bins over ``score_range``, spread evenly over
the rule's fine grid) — for the ``reference`` window and the ``current`` one, each
either one distribution or a list of ``{from: 30m, …}`` (in force from that time on).
``error: reason`` makes the source's read fail.

Each step runs the family's real check (:func:`~alert_jobs.families.score_drift.run.
check_segments`: the reference built and stored when missing, PSI/KS/high-score/null
rate/volume judged, the engine) with only the histogram reads replaced; the reference
is also rebuilt when the rule's ``reference_schedule`` fires between two steps, as its
daily job would. One segment per rule: a rule with ``segment_columns`` is tested on the
segment named by ``segment``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from alert_jobs.config import RulesFile
from alert_jobs.core.cron import cron_iter
from alert_jobs.core.errors import SourceError
from alert_jobs.core.series import SeriesSyntaxError, expand
from alert_jobs.families.score_drift.check import Histogram, histogram_from_values
from alert_jobs.families.score_drift.config import ScoreDriftRule
from alert_jobs.families.score_drift.run import (
    HistogramReader,
    build_references,
    check_segments,
    grid_of,
    threshold_of,
)
from alert_jobs.families.score_drift.source import WindowSpec
from alert_jobs.families.score_drift.store import ALL_HOURS
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, KeyPath, TestClock, offset_of
from alert_jobs.store import Timeline

KEYS = ("scores", "bins", "nulls", "feature_nulls", "error")
_HINT = ("a distribution is {bins: [100, 300, 400, 200]} (counts of equal-width bins over "
         "score_range) or {scores: \"0.1 0.2 0.2 0.35\"} (_ for a NULL score), with "
         "optional nulls: N and feature_nulls: {column: N}; or {error: reason} for a "
         "source that fails")


@dataclass(frozen=True)
class Entry:
    """A distribution in force from ``start`` on (``None``: always), or a failing read."""

    start: datetime | None
    histogram: Histogram | None
    error: str | None = None


def _count(raw: Any, path: KeyPath) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise InputError(path, f"expected a count (a whole number >= 0), got {raw!r}")
    return raw


def _from_bins(rule: ScoreDriftRule, raw: Any, path: KeyPath) -> Histogram:
    grid = grid_of(rule)
    if isinstance(raw, str):
        raw = raw.split()
    if not isinstance(raw, Sequence) or len(raw) < 1:
        raise InputError(path, f"bins is a list of counts; {_HINT}")
    counts = [_count(int(c) if isinstance(c, str) and c.isdigit() else c, (*path, i))
              for i, c in enumerate(raw)]
    if grid.bins % len(counts):
        raise InputError(path, f"{len(counts)} bins do not divide the rule's {grid.bins} "
                         "fine bins evenly; give a number of bins that does (e.g. 10, 20, "
                         "50)")
    k = grid.bins // len(counts)
    fine = np.zeros(grid.bins, dtype=np.int64)
    for j, c in enumerate(counts):  # spread evenly over the bin's fine bins
        fine[j * k:(j + 1) * k] = np.diff(np.round(c * np.arange(k + 1) / k)).astype(np.int64)
    centres = grid.lo + (np.arange(grid.bins) + 0.5) * grid.width
    threshold = threshold_of(rule)
    above = int(fine[centres > threshold].sum()) if threshold is not None else 0
    return Histogram(grid, fine, total=float((fine * centres).sum()),
                     total_sq=float((fine * centres * centres).sum()), above=above,
                     threshold=threshold,
                     feature_nulls=dict.fromkeys(rule.feature_columns, 0))


def _from_scores(rule: ScoreDriftRule, raw: Any, path: KeyPath) -> Histogram:
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        raw = " ".join(str(v) for v in raw)
    try:
        values = expand(raw)
    except SeriesSyntaxError as exc:
        raise InputError(path, str(exc)) from None
    if any(v.error is not None for v in values):
        raise InputError(path, "a score cannot be error; for a failing source give "
                         "error: reason instead of scores")
    scores = [np.nan if v.number is None else v.number for v in values]
    hist = histogram_from_values(scores, grid_of(rule), threshold=threshold_of(rule),
                                 null_mask=[v.number is None for v in values])
    return replace(hist, feature_nulls=dict.fromkeys(rule.feature_columns, 0))


def distribution(rule: ScoreDriftRule, raw: Any, path: KeyPath, *, timed: bool,
                 clock: TestClock) -> Entry:
    if not isinstance(raw, Mapping):
        raise InputError(path, f"expected a mapping; {_HINT}")
    allowed = {*KEYS, "from"} if timed else set(KEYS)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InputError((*path, unknown[0]), f"unknown key: {_HINT}"
                         + ("" if timed else "; from: only in a list of distributions"))
    start = clock.at(offset_of(raw["from"], (*path, "from"), signed=True)) \
        if timed and "from" in raw else None
    if timed and "from" not in raw:
        raise InputError(path, "each distribution of a list needs from (an offset such as "
                         "30m: in force from then on)")
    if "error" in raw:
        if set(raw) - {"error", "from"}:
            raise InputError((*path, "error"), "a failing read has no scores: give error "
                             "alone (with from)")
        return Entry(start, None, str(raw["error"]) or "the source failed")
    if ("scores" in raw) == ("bins" in raw):
        raise InputError(path, f"give exactly one of scores or bins; {_HINT}")
    hist = _from_scores(rule, raw["scores"], (*path, "scores")) if "scores" in raw \
        else _from_bins(rule, raw["bins"], (*path, "bins"))
    if "nulls" in raw:
        hist = replace(hist, nulls=hist.nulls + _count(raw["nulls"], (*path, "nulls")))
    features = raw.get("feature_nulls", {})
    if not isinstance(features, Mapping):
        raise InputError((*path, "feature_nulls"), "feature_nulls maps a feature column to "
                         "its count of NULLs")
    nulls = dict(hist.feature_nulls)
    for column, n in features.items():
        where = (*path, "feature_nulls", column)
        if column not in rule.feature_columns:
            raise InputError(where, f"{column!r} is not one of the rule's feature_columns "
                             f"({', '.join(rule.feature_columns) or 'none'})")
        if _count(n, where) > hist.rows:
            raise InputError(where, f"{n} NULLs in {hist.rows} rows")
        nulls[column] = n
    return Entry(start, replace(hist, feature_nulls=nulls))


def entries(rule: ScoreDriftRule, raw: Any, key: str, clock: TestClock) -> list[Entry]:
    """One distribution (always in force) or a list of them, each from its time on."""
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        if not raw:
            raise InputError((key,), f"{key} is an empty list; {_HINT}")
        out = [distribution(rule, item, (key, i), timed=True, clock=clock)
               for i, item in enumerate(raw)]
        if any(a.start is not None and b.start is not None and b.start <= a.start
               for a, b in pairwise(out)):
            raise InputError((key,), "the distributions of a list must be in time order "
                             "(each from later than the one before)")
        return out
    return [distribution(rule, raw, (key,), timed=False, clock=clock)]


@dataclass(frozen=True)
class Timed:
    """A distribution over time: the entry in force at a read."""

    entries: tuple[Entry, ...]

    def at(self, now: datetime) -> Entry | None:
        starts = [e.start for e in self.entries if e.start is not None]
        if not starts:  # one distribution, always in force
            return self.entries[0]
        i = bisect.bisect_right(starts, now) - 1
        return self.entries[i] if i >= 0 else None

    def reader(self, now: datetime) -> HistogramReader:
        def read(rule: ScoreDriftRule, spec: WindowSpec) -> dict[tuple[str, int], Histogram]:
            entry = self.at(now)
            if entry is None:  # before its first distribution: no rows at all
                return {}
            if entry.error is not None:
                raise SourceError(f"{entry.error} (rule test)")
            assert entry.histogram is not None
            if spec.by_hour_of_week:  # seasonal: every hour of the week looks alike
                return {("", h): entry.histogram for h in range(168)}
            return {("", ALL_HOURS): entry.histogram}

        return read


@dataclass
class DriftSimulator:
    rule: ScoreDriftRule
    segment: str
    reference: Timed
    current: Timed

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        rule, segments = self.rule, [self.segment]
        if since is not None and self._rebuild_due(rules, since, now):
            build_references(rule, timeline, segments, now=now,
                             reader=self.reference.reader(now))
        results = check_segments(rules, rule, timeline, segments, now=now, run_id=None,
                                 flush=False, reader=self.current.reader(now),
                                 reference_reader=self.reference.reader(now))
        return [outcome for result in results for outcome in result.outcomes]

    def _rebuild_due(self, rules: RulesFile, since: datetime, now: datetime) -> bool:
        """Whether ``reference_schedule`` fires in ``(since, now]`` (the daily job)."""
        zone = ZoneInfo(rules.timezone_for(self.rule))
        fire: datetime = cron_iter(self.rule.reference_schedule,
                                   since.astimezone(zone)).get_next(datetime)
        return fire <= now


def simulate(rule: ScoreDriftRule, inputs: Mapping[str, Any], clock: TestClock
             ) -> DriftSimulator:
    """The family's ``simulate`` hook: ``reference`` and ``current`` (and ``segment``)."""
    unknown = sorted(set(inputs) - {"reference", "current", "segment"})
    if unknown:
        raise InputError((unknown[0],), "unknown key: a score_drift rule's input is "
                         "reference, current (and segment for a rule with segment_columns)")
    for key in ("reference", "current"):
        if key not in inputs:
            raise InputError((), f"missing {key}: {_HINT}")
    segment = ""
    if rule.segment_columns:
        raw = inputs.get("segment")
        if not isinstance(raw, str) or not rule.is_segment_key(raw):
            raise InputError(("segment",) if "segment" in inputs else (),
                             "this rule has segment_columns: name the segment to test, one "
                             "value per column joined by '|' (e.g. segment: fraud|v3); one "
                             "segment per test")
        segment = raw
    elif "segment" in inputs:
        raise InputError(("segment",), "this rule has no segment_columns")
    return DriftSimulator(rule, segment,
                          Timed(tuple(entries(rule, inputs["reference"], "reference", clock))),
                          Timed(tuple(entries(rule, inputs["current"], "current", clock))))
