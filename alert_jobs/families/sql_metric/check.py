"""``sql_metric``: one number from a query, compared with an expected range.

Produces sentences like "Expected dead letters to be 0 in the last 30 minutes,
got 1,000" that the message standard puts first in every notification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alert_jobs.core.baseline import Assessment
from alert_jobs.core.baseline import details as baseline_details
from alert_jobs.core.baseline import summary as baseline_summary
from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.sql_metric.config import SqlMetricRule


@dataclass(frozen=True)
class Bounds:
    """Inclusive good range; the ``resolve_*`` pair is the stricter range to recover into."""

    min: float | None = None
    max: float | None = None
    resolve_min: float | None = None
    resolve_max: float | None = None

    def expected_text(self) -> str:
        lo, hi = self.min, self.max
        if lo is not None and hi is not None:
            if lo == hi:
                return f"to be {fmt_number(lo)}"
            return f"to be between {fmt_number(lo)} and {fmt_number(hi)}"
        if hi is not None:
            return f"to be at most {fmt_number(hi)}"
        return f"to be at least {fmt_number(lo)}"

    def contains(self, value: float, *, recovering: bool = False) -> bool:
        lo = self.resolve_min if recovering and self.resolve_min is not None else self.min
        hi = self.resolve_max if recovering and self.resolve_max is not None else self.max
        return (lo is None or value >= lo) and (hi is None or value <= hi)


def bounds_of(rule: SqlMetricRule) -> Bounds:
    """The rule's expected range as :class:`Bounds`."""
    e = rule.expect
    return Bounds(e.min, e.max, e.resolve_min, e.resolve_max)


def judge(
    rule: str,
    value: float | None,
    bounds: Bounds,
    *,
    subject: str,
    window: str,
    was_firing: bool = False,
    labels: dict[str, str] | None = None,
    baseline: Assessment | None = None,
) -> Observation:
    """Compare ``value`` with ``bounds`` and, for a baseline rule, with the baseline's
    ``assessment`` of it. ``None`` (no row, NULL) is ``nodata``.

    ``was_firing`` selects the resolve range (hysteresis): a firing alert must come
    back inside the stricter range before it counts as good again.

    With a baseline (both must hold): a fixed bound crossed is an alert saying so; else
    the baseline crossed is an alert in the standard's words ("Expected orders in the
    last hour to be about 1,200 (1,050–1,350, from the same hour of the week over the last
    4 weeks), got 310"); else a baseline still learning is ``nodata`` with
    ``learning=True`` and the value kept (it is history for the baseline); else ok.
    ``details`` carry :func:`alert_jobs.core.baseline.details` plus ``crossed`` =
    "min"/"max" when a fixed bound was crossed.
    """
    labels = dict(labels or {})
    if baseline is not None:
        return _judge_with_baseline(rule, value, bounds, baseline, subject=subject,
                                    window=window, was_firing=was_firing, labels=labels)
    expected = bounds.expected_text()
    frame = f"in the last {window}" if window else ""
    if value is None:
        return Observation(
            rule, Status.NODATA, labels, None,
            summary=f"Expected {subject} {expected} {frame}, but the query returned no value "
                    "(no row, or NULL)",
            expected=expected, seen="no value", window=window,
        )
    if math.isnan(value):
        return Observation(
            rule, Status.NODATA, labels, None,
            summary=f"Expected {subject} {expected} {frame}, but the query returned NaN",
            expected=expected, seen="NaN", window=window,
        )
    seen = fmt_number(value)
    good = bounds.contains(value, recovering=was_firing)
    summary = f"Expected {subject} {expected} {frame}, got {seen}"
    if was_firing and not good and bounds.contains(value):
        summary += " (inside the alert range, not yet inside the resolve range)"
    return Observation(
        rule, Status.OK if good else Status.ALERT, labels, float(value),
        summary=summary, expected=expected, seen=seen, window=window,
        details={"min": bounds.min, "max": bounds.max},
    )


def _has_fixed(bounds: Bounds) -> bool:
    return bounds.min is not None or bounds.max is not None


def _judge_with_baseline(rule: str, value: float | None, bounds: Bounds, assessment: Assessment,
                         *, subject: str, window: str, was_firing: bool,
                         labels: dict[str, str]) -> Observation:
    """Both must hold: a fixed bound crossed speaks first (it is the harder promise),
    then the baseline; a baseline still learning is a quiet ``nodata`` that keeps the
    value (it is history for the baseline)."""
    fixed = bounds.expected_text() if _has_fixed(bounds) else ""
    expected = assessment.expected_text + (f" and {fixed}" if fixed else "")
    details: dict[str, object] = {"min": bounds.min, "max": bounds.max,
                                  **baseline_details(assessment)}
    if value is None or math.isnan(value):
        seen = "no value" if value is None else "NaN"
        what = "no value (no row, or NULL)" if value is None else "NaN"
        return Observation(
            rule, Status.NODATA, labels, None,
            summary=baseline_summary(subject, window, assessment, "nothing").rsplit(
                ", got ", 1)[0] + f", but the query returned {what}",
            expected=expected, seen=seen, window=window, details=details)
    seen = fmt_number(value)
    if _has_fixed(bounds) and not bounds.contains(value, recovering=was_firing):
        crossed = "min" if bounds.min is not None and value < bounds.min else "max"
        if bounds.contains(value):  # only the resolve range is missed (hysteresis)
            crossed = "min" if bounds.resolve_min is not None and value < bounds.resolve_min \
                else "max"
        frame = f"in the last {window}" if window else ""
        summary = f"Expected {subject} {fixed} {frame}, got {seen}"
        if was_firing and bounds.contains(value):
            summary += " (inside the alert range, not yet inside the resolve range)"
        return Observation(rule, Status.ALERT, labels, float(value), summary=summary,
                           expected=expected, seen=seen, window=window,
                           details={**details, "crossed": crossed})
    summary = baseline_summary(subject, window, assessment, seen)
    if assessment.learning:
        return Observation(rule, Status.NODATA, labels, float(value), summary=summary,
                           expected=expected, seen=seen, window=window, details=details,
                           learning=True)
    status = Status.ALERT if assessment.is_alert else Status.OK
    return Observation(rule, status, labels, float(value), summary=summary,
                       expected=expected, seen=seen, window=window, details=details)
