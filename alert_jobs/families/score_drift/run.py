"""One ``score_drift`` rule end to end: reference builds and drift checks.

- :func:`build_references` aggregates the reference window in the database (one
  ``GROUP BY`` query for all requested segments) and stores the summaries in the
  timeline DB. It runs on its own schedule (daily) or by hand.
- :func:`check_segments` aggregates only the *current* window (one query for all
  requested segments), reads the stored references back, and feeds one Observation
  per check and segment to the engine. A segment whose reference is missing, or was
  built with other settings (grid, columns, window kind), gets it built first, so a
  new model or an edited rule works at once; the result says so.

A source that cannot be read yields an ``error`` observation per segment naming the
table or column; a complete evaluation resolves the segment's alert instances that
were not produced again (e.g. a feature column removed from the rule).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RulesFile, SecretMissingError, resolve
from alert_jobs.core.durations import format_duration
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import Observation, error_observation, worst_observation
from alert_jobs.families.score_drift.check import (
    Grid,
    Histogram,
    bins_table,
    compare,
    quantile_boundaries,
)
from alert_jobs.families.score_drift.config import SEGMENT_SEPARATOR, ScoreDriftRule
from alert_jobs.families.score_drift.files import (
    ScoreFiles,
    discover_file_segments,
    read_file_histograms,
)
from alert_jobs.families.score_drift.judge import (
    WHY,
    Frame,
    expected_high_rate,
    judge_distribution,
    judge_high_score,
    judge_invalid,
    judge_null_rates,
    judge_volume,
)
from alert_jobs.families.score_drift.source import (
    ScoreTable,
    WindowSpec,
    discover_segments,
    read_histograms,
)
from alert_jobs.families.score_drift.store import (
    ALL_HOURS,
    DriftReferenceStore,
    ReferenceSlot,
    settings_hash,
)
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations, resolve_vanished
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.drift")
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


def grid_of(rule: ScoreDriftRule) -> Grid:
    lo, hi = rule.score_range
    return Grid(lo, hi, rule.fine_bins)


def threshold_of(rule: ScoreDriftRule) -> float | None:
    return rule.high_score.threshold if rule.high_score else None


def source_of(rule: ScoreDriftRule) -> ScoreTable | ScoreFiles:
    if rule.files is not None:
        return ScoreFiles(rule.files, rule.time_column, rule.score_column,
                          tuple(rule.segment_columns), tuple(rule.feature_columns))
    assert rule.database is not None and rule.table is not None
    return ScoreTable(resolve(rule.database), rule.table, rule.time_column, rule.score_column,
                      tuple(rule.segment_columns), tuple(rule.feature_columns),
                      timeout=rule.query_timeout.total_seconds())


#: ``reader(rule, spec)``: a window's histograms by (segment, hour-of-week slot), as
#: :func:`read` gets them from the rule's table or files; a rule test passes its own.
HistogramReader = Callable[[ScoreDriftRule, WindowSpec], dict[tuple[str, int], Histogram]]


def read(rule: ScoreDriftRule, spec: WindowSpec) -> dict[tuple[str, int], Histogram]:
    src = source_of(rule)
    if isinstance(src, ScoreFiles):
        return read_file_histograms(src, grid_of(rule), spec, threshold=threshold_of(rule))
    return read_histograms(src, grid_of(rule), spec, threshold=threshold_of(rule))


def floor_hour(when: datetime) -> datetime:
    return when.replace(minute=0, second=0, microsecond=0)


def reference_window(rule: ScoreDriftRule, now: datetime) -> tuple[datetime, datetime]:
    """The reference's time range if built at ``now``: whole hours up to the current
    window for ``fixed`` (``lookback``) and ``seasonal`` (``weeks`` weeks), or the pinned
    range."""
    ref = rule.reference
    if ref.kind == "pinned":
        assert ref.start is not None and ref.end is not None
        return ref.start, ref.end
    # Whole hours before the current window, which is never part of its own reference.
    end = floor_hour(current_window(rule, now)[0])
    return (end - ref.weeks * WEEK if ref.kind == "seasonal" else end - ref.lookback), end


def current_window(rule: ScoreDriftRule, now: datetime) -> tuple[datetime, datetime]:
    end = now - rule.lag
    return end - rule.window, end


def slot_overlaps(start: datetime, end: datetime) -> dict[int, float]:
    """Seconds of ``[start, end)`` in each UTC hour of the week (Monday 00:00 = 0)."""
    overlaps: dict[int, float] = {}
    at = floor_hour(start)
    while at < end:
        slot = at.weekday() * 24 + at.hour
        seconds = (min(at + HOUR, end) - max(at, start)).total_seconds()
        overlaps[slot] = overlaps.get(slot, 0.0) + seconds
        at += HOUR
    return overlaps


def hour_slots(start: datetime, end: datetime) -> list[int]:
    """UTC hours of the week that ``[start, end)`` touches."""
    return sorted(slot_overlaps(start, end))


def main_slots(overlaps: dict[int, float]) -> set[int]:
    """The hours the window mostly lies in: those covering at least half as much of it
    as the hour covering most. A scheduled run a few seconds after the hour touches the
    next hour for those seconds; that hour must not weigh as much as the one before."""
    most = max(overlaps.values(), default=0.0)
    return {slot for slot, seconds in overlaps.items() if seconds >= most / 2}


def segment_filter(rule: ScoreDriftRule, segment: str) -> dict[str, str] | None:
    return rule.segment_labels(segment) or None


def discover(rule: ScoreDriftRule, now: datetime | None = None, *,
             since: datetime | None = None) -> list[str]:
    """Segments (partition keys) seen since the reference window started (or ``since``,
    for an incremental look), or the configured ones."""
    if not rule.segment_columns:
        return [""]
    if rule.segments is not None:
        return list(rule.segments)
    now = now or utcnow()
    start, end = reference_window(rule, now)
    if since is not None:
        start = since
    end = max(end, now)  # a model that started scoring today is discovered today
    src = source_of(rule)
    found = discover_file_segments(src, start, end) if isinstance(src, ScoreFiles) \
        else discover_segments(src, start, end)
    bad = [s for s in found if not rule.is_segment_key(s)]
    if bad:  # one odd model name must not stop the checks of all the others
        log.warning("%s: skipping %d segment(s) whose values contain %r: %s", rule.name,
                    len(bad), SEGMENT_SEPARATOR, ", ".join(map(repr, bad[:5])))
    return [s for s in found if rule.is_segment_key(s)]


# ----- references --------------------------------------------------------------------


@dataclass
class ReferenceBuild:
    """A segment's freshly stored reference (or why it could not be built)."""

    segment: str
    slots: list[ReferenceSlot] = field(default_factory=list)
    error: str | None = None

    @property
    def histogram(self) -> Histogram | None:
        hist: Histogram | None = None
        for s in self.slots:
            hist = s.histogram if hist is None else hist.merge(s.histogram)
        return hist

    def metadata(self, rule: ScoreDriftRule) -> dict[str, Any]:
        hist = self.histogram
        if hist is None:
            return {"error": self.error or "no reference"}
        grid = hist.grid
        edges = [grid.edge(i) for i in quantile_boundaries(hist.counts, rule.psi_bins)]
        meta: dict[str, Any] = {
            "rows": int(hist.rows), "valid_scores": int(hist.valid),
            "estimated_rows": float(hist.estimated_rows),
            "null_scores": int(hist.nulls), "nan_scores": int(hist.nans),
            "inf_scores": int(hist.infs), "out_of_range_scores": int(hist.out_of_range),
            "mean": float(hist.mean) if hist.mean is not None else 0.0,
            "std": float(hist.std) if hist.std is not None else 0.0,
            "slots": len(self.slots),
            "window_start": self.slots[0].window_start.isoformat(),
            "window_end": self.slots[0].window_end.isoformat(),
            "psi_edges": ", ".join(f"{e:.4g}" for e in edges),
        }
        if hist.above_rate is not None:
            meta["high_score_rate"] = float(hist.above_rate)
        for feature in rule.feature_columns:
            rate = hist.null_rate(feature)
            meta[f"null_rate_{feature}"] = float(rate) if rate is not None else 0.0
        return meta


def build_references(rule: ScoreDriftRule, timeline: Timeline, segments: list[str], *,
                     now: datetime | None = None, run_id: str | None = None,
                     reader: HistogramReader | None = None) -> list[ReferenceBuild]:
    """Aggregate the reference window in the database and store it, per segment
    (``reader``: where the histograms come from, the rule's source by default)."""
    now = now or utcnow()
    start, end = reference_window(rule, now)
    seasonal = rule.reference.kind == "seasonal"
    single = len(segments) == 1
    spec = WindowSpec(start, end, segment=segment_filter(rule, segments[0]) if single else None,
                      by_segment=bool(rule.segment_columns) and not single,
                      by_hour_of_week=seasonal, sample_percent=rule.sample_percent)
    try:
        found = (reader or read)(rule, spec)
    except (SourceError, SecretMissingError) as exc:
        return [ReferenceBuild(s, error=f"{rule.name}: {exc}") for s in segments]
    settings = settings_hash(rule.grid_key)
    store = DriftReferenceStore(timeline)
    empty = Histogram.empty(grid_of(rule), threshold=threshold_of(rule),
                            features=tuple(rule.feature_columns))
    builds = []
    for segment in segments:
        key = "" if single else segment
        if seasonal:
            per_slot = rule.reference.weeks * 3600.0
            slots = [ReferenceSlot(h, found.get((key, h), empty), start, end, per_slot,
                                   settings, now) for h in range(168)]
        else:
            slots = [ReferenceSlot(ALL_HOURS, found.get((key, ALL_HOURS), empty), start, end,
                                   (end - start).total_seconds(), settings, now)]
        store.replace(rule.name, segment, slots, run_id=run_id)
        builds.append(ReferenceBuild(segment, slots))
    return builds


# ----- checks ------------------------------------------------------------------------


@dataclass
class SegmentResult:
    """What one segment's check saw and decided; ``metrics`` are plain numbers."""

    segment: str
    outcomes: list[RuleOutcome] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    bins_markdown: str = ""
    error: str | None = None
    reference_built: bool = False

    @property
    def observations(self) -> list[Observation]:
        return [o.observation for o in self.outcomes]

    def worst(self) -> Observation | None:
        return worst_observation(self.observations)


def subject(rule: ScoreDriftRule, segment: str) -> str:
    name = segment.replace(SEGMENT_SEPARATOR, "/") if segment else (
        rule.description or rule.name)
    return f"{name} scores"


def window_text(window: timedelta) -> str:
    """``1 h``, ``30 min``, ``2 d``: short, as a data scientist writes it."""
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return format_duration(window)


def frame_for(rule: ScoreDriftRule, segment: str) -> Frame:
    labels = {**rule.labels, **rule.segment_labels(segment)}
    return Frame(subject(rule, segment), window_text(rule.window), rule.reference.describe(),
                 labels, business=rule.annotations_for(labels).audience == "business")


def _stored_reference(rule: ScoreDriftRule, timeline: Timeline, segment: str,
                      start: datetime, end: datetime, *, now: datetime,
                      run_id: str | None, reader: HistogramReader | None = None,
                      ) -> tuple[list[ReferenceSlot], bool, str | None]:
    """The reference slots for this window; built now if missing, stale in shape, or
    too small to judge while newer data may exist (a new model's first reference is
    built when it is discovered, from little or no history: it is rebuilt at most once
    an hour until it holds ``min_samples`` scores, not only by the daily schedule)."""
    wanted = hour_slots(start, end) if rule.reference.kind == "seasonal" else [ALL_HOURS]
    # (all touched hours: the volume expectation weighs each by its overlap, see _judge)
    store = DriftReferenceStore(timeline)
    settings = settings_hash(rule.grid_key)
    slots = store.load(rule.name, segment, wanted)
    why = "none stored yet" if not slots else "settings changed"
    if len(slots) == len(wanted) and all(s.settings == settings for s in slots):
        too_small = sum(s.histogram.valid for s in slots) < rule.min_samples
        old = now - min(s.built_at for s in slots) >= HOUR
        if not (too_small and old and rule.reference.kind != "pinned"):
            return slots, False, None
        why = f"fewer than {rule.min_samples} scores, built over an hour ago"
    log.info("%s: building the reference of segment %r first (%s)", rule.name, segment, why)
    (build,) = build_references(rule, timeline, [segment], now=now, run_id=run_id,
                                reader=reader)
    if build.error:
        return [], True, build.error
    return [s for s in build.slots if s.slot in wanted], True, None


def check_segments(rules: RulesFile, rule: ScoreDriftRule, timeline: Timeline,
                   segments: list[str] | None = None, *, now: datetime | None = None,
                   run_id: str | None = None, flush: bool = True,
                   reader: HistogramReader | None = None,
                   reference_reader: HistogramReader | None = None) -> list[SegmentResult]:
    """Check the current window of each segment against its stored reference.

    ``reader`` reads the current window and ``reference_reader`` a reference built on
    the way (both the rule's source by default; a rule test gives its inputs)."""
    now = now or utcnow()
    segments = segments if segments is not None else discover(rule, now)
    start, end = current_window(rule, now)
    single = len(segments) == 1
    spec = WindowSpec(start, end, segment=segment_filter(rule, segments[0]) if single else None,
                      by_segment=bool(rule.segment_columns) and not single,
                      sample_percent=rule.sample_percent if rule.sample_current else None)
    results: list[SegmentResult] = []
    try:
        current = (reader or read)(rule, spec)
        read_error = None
    except (SourceError, SecretMissingError) as exc:
        current, read_error = {}, f"{rule.name}: {exc}"
    empty = Histogram.empty(grid_of(rule), threshold=threshold_of(rule),
                            features=tuple(rule.feature_columns))
    for segment in segments:
        result = SegmentResult(segment)
        frame = frame_for(rule, segment)
        error = read_error
        items: list[tuple[Observation, str]] = []
        if error is None:
            try:
                slots, result.reference_built, error = _stored_reference(
                    rule, timeline, segment, start, end, now=now, run_id=run_id,
                    reader=reference_reader)
                if error is None:
                    cur = current.get(("" if single else segment, ALL_HOURS), empty)
                    items = _judge(rule, frame, slots, cur, result, now,
                                   slot_overlaps(start, end))
            except Exception as exc:  # a bug or a timeline outage: say so, per segment
                log.exception("checking %s %r failed", rule.name, segment)
                error = f"{rule.name}: internal error: {type(exc).__name__}"
        if error is not None:
            result.error = error
            items = [(error_observation(rule.name, error, frame.labels_for("distribution")),
                      "")]
        result.outcomes = process_observations(rules, rule, timeline, items, now=now,
                                               run_id=run_id, flush=False)
        if error is None:
            _resolve_gone(rules, rule, timeline, segment, result, now=now, run_id=run_id)
        results.append(result)
    if flush:  # with the run's id: the run that raised a message delivers it
        timeline.outbox.flush_due(router=rules.router(), now=now, run_id=run_id)
    return results


def evaluate(rules: RulesFile, rule: ScoreDriftRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: every segment of one rule, now."""
    results = check_segments(rules, rule, timeline, now=now, run_id=run_id)
    return [outcome for result in results for outcome in result.outcomes]


def _resolve_gone(rules: RulesFile, rule: ScoreDriftRule, timeline: Timeline, segment: str,
                  result: SegmentResult, *, now: datetime, run_id: str | None) -> None:
    """Resolve this segment's instances that were not produced (other segments untouched)."""
    produced = {o.observation.fingerprint for o in result.outcomes}
    resolve_vanished(rules, rule, timeline, produced, now=now, run_id=run_id, flush=False,
                     within=rule.segment_labels(segment))


def expected_rows_of(rule: ScoreDriftRule, slots: list[ReferenceSlot],
                     overlaps: dict[int, float]) -> float | None:
    """Rows the reference's rate predicts for the current window. Seasonal: each touched
    hour's rate times the seconds of the window in that hour (a window from 07:00:05 to
    08:00:05 expects hour 7's volume, not the mean of hours 7 and 8)."""
    if rule.reference.kind != "seasonal":
        covered = sum(s.covered_seconds for s in slots)
        rows = sum(s.histogram.estimated_rows for s in slots)
        return rows * rule.window.total_seconds() / covered if covered > 0 else None
    if not slots or any(s.covered_seconds <= 0 for s in slots):
        return None
    return sum(s.histogram.estimated_rows / s.covered_seconds * overlaps.get(s.slot, 0.0)
               for s in slots)


def _judge(rule: ScoreDriftRule, frame: Frame, slots: list[ReferenceSlot], current: Histogram,
           result: SegmentResult, now: datetime,
           overlaps: dict[int, float]) -> list[tuple[Observation, str]]:
    expected_rows = expected_rows_of(rule, slots, overlaps)
    if rule.reference.kind == "seasonal":  # the distribution of the hours it mostly lies in
        main = main_slots(overlaps)
        slots = [s for s in slots if s.slot in main] or slots
    reference = slots[0].histogram
    for s in slots[1:]:
        reference = reference.merge(s.histogram)
    metrics = compare(reference, current, psi_bins=rule.psi_bins) \
        if reference.valid and current.valid else None
    observations = [judge_distribution(rule, frame, reference, current, metrics),
                    judge_high_score(rule, frame, reference, current),
                    *judge_null_rates(rule, frame, reference, current),
                    judge_volume(rule, frame, current, expected_rows),
                    judge_invalid(rule, frame, current)]
    m = result.metrics
    m.update({
        "n_current": float(current.valid), "n_reference": float(reference.valid),
        "rows_current": float(current.rows), "rows_current_estimated":
            float(current.estimated_rows),
        "null_scores": float(current.nulls), "nan_scores": float(current.nans),
        "inf_scores": float(current.infs), "out_of_range_scores": float(current.out_of_range),
        "reference_age_hours": max(0.0, (now - min(s.built_at for s in slots))
                                   .total_seconds() / 3600),
    })
    if expected_rows is not None:
        m["rows_expected"] = float(expected_rows)
        if expected_rows > 0:
            m["volume_ratio"] = float(current.estimated_rows / expected_rows)
    if metrics is not None:
        m.update({"psi": float(metrics.psi), "ks": float(metrics.ks),
                  "ks_pvalue": float(metrics.ks_pvalue), "psi_bins": float(metrics.psi_bins)})
        if metrics.mean_shift is not None:
            m["mean_shift_std"] = float(metrics.mean_shift)
        if metrics.std_ratio is not None:
            m["std_ratio"] = float(metrics.std_ratio)
        result.bins_markdown = bins_table(metrics, current.grid)
    optional = {"mean_current": current.mean, "mean_reference": reference.mean,
                "std_current": current.std, "std_reference": reference.std}
    if rule.high_score is not None:
        optional.update({"high_score_rate": current.above_rate,
                         "high_score_rate_expected": expected_high_rate(rule, reference)})
    m.update({k: float(v) for k, v in optional.items() if v is not None})
    for feature in rule.feature_columns:
        rate = current.null_rate(feature)
        if rate is not None:
            m[f"null_rate_{feature}"] = float(rate)
        ref_rate = reference.null_rate(feature)
        if ref_rate is not None:
            m[f"null_rate_{feature}_reference"] = float(ref_rate)
    return [(o, WHY[o.labels["check"]]) for o in observations if o is not None]
