"""``score_drift`` judgements: two histograms in, one Observation per check out.

One alert instance per (rule, segment, check), so each alert says one thing and
points at one action; fingerprints stay stable because labels are only the segment
values (``model``, ``version``), ``check`` and, for null rates, ``feature``:

- ``distribution``: PSI (value), KS, mean and spread shift; the worst decides.
  Retrain / investigate the population.
- ``high_score_rate``: the share of scores above the threshold against its expected
  rate. Business impact now (e.g. customers blocked).
- ``null_rate`` (one per feature): a broken feature pipeline.
- ``volume``: a silent (or flooding) pipeline.
- ``invalid_scores``: NaN, ±inf and out-of-range scores (a broken model output).

Messages speak to data scientists by default ("PSI of fraud/v3 scores in the last
1 h is 0.31 (expected < 0.10 …; n = 66,670 vs 412,000)"); ``audience: business``
gets plain sentences instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.score_drift.check import (
    DriftMetrics,
    Histogram,
    rate_with_expected,
    two_proportion_test,
)
from alert_jobs.families.score_drift.config import ScoreDriftRule, Threshold

WHY = {
    "distribution": "Models fail silently: a shifted score distribution means the model now "
                    "sees a different population (or broken inputs), and its decisions drift "
                    "with it.",
    "high_score_rate": "More high scores means more cases flagged or blocked right now.",
    "null_rate": "A feature that goes null is usually a broken upstream pipeline; the model "
                 "keeps scoring, silently worse.",
    "volume": "Far fewer scores than usual usually means a stalled pipeline upstream or "
              "downstream of the model.",
    "invalid_scores": "NaN, infinite or out-of-range scores mean the model or its serving "
                      "code is broken.",
}


@dataclass(frozen=True)
class Frame:
    """How messages name what was checked."""

    subject: str  # "fraud/v3 scores" (segment values joined by /)
    window: str  # "1 h"
    reference: str  # "the same hour of the week in the last 4 weeks"
    labels: dict[str, str]
    business: bool = False

    def labels_for(self, check: str, **extra: str) -> dict[str, str]:
        return {**self.labels, "check": check, **extra}


def pct(rate: float | None) -> str:
    """50 %, 1.3 %, 0.05 % — as many decimals as a small rate needs."""
    if rate is None:
        return "n/a"
    value = 100 * rate
    if value == 0 or value >= 10:
        return f"{value:.0f} %"
    if value >= 1:
        return f"{value:.1f} %"
    return f"{value:.2g} %"


#: KS counts as a breach only when it is also this unlikely by chance: at 240 scores an
#: hour against a week, the default warning (KS 0.1) is p ≈ 0.016, so an hourly check
#: of a calm model would warn a few times a day; at α = 0.001 the bar there is KS ≈ 0.126,
#: and at thousands of scores the configured threshold decides alone.
KS_ALPHA = 0.001


def level(value: float | None, threshold: Threshold | None) -> Severity | None:
    if value is None or threshold is None:
        return None
    if threshold.critical is not None and value >= threshold.critical:
        return Severity.CRITICAL
    if value >= threshold.warn:
        return Severity.WARNING
    return None


def _worst(levels: list[Severity | None]) -> Severity | None:
    found = [lv for lv in levels if lv is not None]
    return max(found, key=lambda s: s.rank) if found else None


def expected_high_rate(rule: ScoreDriftRule, reference: Histogram) -> float | None:
    hs = rule.high_score
    if hs is None:
        return None
    return hs.expected_rate if hs.expected_rate is not None else reference.above_rate


def high_score_sentence(rule: ScoreDriftRule, reference: Histogram, current: Histogram) -> str:
    if rule.high_score is None or not current.valid:
        return ""
    return (f"High-score rate {pct(current.above_rate)} (expected about "
            f"{pct(expected_high_rate(rule, reference))}).")


def judge_distribution(rule: ScoreDriftRule, frame: Frame, reference: Histogram,
                       current: Histogram, metrics: DriftMetrics | None) -> Observation:
    labels = frame.labels_for("distribution")
    expected = f"PSI < {rule.psi.warn:.2f}"
    if metrics is None or current.valid < rule.min_samples or \
            reference.valid < rule.min_samples:
        if reference.valid < rule.min_samples:
            why = (f"the reference ({frame.reference}) has only {fmt_number(reference.valid)} "
                   f"valid scores; PSI and KS need at least {fmt_number(rule.min_samples)} "
                   "(min_samples) on each side")
        elif current.valid == 0:
            why = (f"there are no valid {frame.subject} in the last {frame.window}; PSI and KS "
                   f"need at least {fmt_number(rule.min_samples)} (min_samples)")
        else:
            why = (f"only {fmt_number(current.valid)} valid {frame.subject} in the last "
                   f"{frame.window}; PSI and KS need at least {fmt_number(rule.min_samples)} "
                   "(min_samples) to be judged")
        return Observation(rule.name, Status.NODATA, labels, None,
                           summary=f"Cannot judge drift: {why}.", expected=expected,
                           seen="too few scores", window=frame.window,
                           details={"n_current": current.valid, "n_reference": reference.valid})
    m = metrics
    breaches = []
    checks = [("PSI", m.psi, rule.psi), ("KS", m.ks, rule.ks),
              ("mean shift", m.mean_shift, rule.mean_shift),
              ("spread ratio", _spread_change(m.std_ratio), rule.std_ratio)]
    levels = []
    ks_p = m.ks_pvalue
    for name, value, threshold in checks:
        lv = level(value, threshold)
        if name == "KS" and ks_p >= KS_ALPHA:
            lv = None  # as large as chance makes it at this sample size
        levels.append(lv)
        if lv is not None and value is not None and threshold is not None:
            limit = threshold.critical if lv == Severity.CRITICAL else threshold.warn
            breaches.append(f"{name} {value:.3g} ≥ {limit:g}")
    worst = _worst(levels)
    mean_part = ""
    if m.mean_cur is not None and m.mean_ref is not None:
        mean_part = (f" Mean {m.mean_cur:.3f} vs {m.mean_ref:.3f}, std "
                     f"{(m.std_cur or 0):.3f} vs {(m.std_ref or 0):.3f}.")
    seen = f"PSI {m.psi:.2f}"
    if frame.business:
        summary = (f"{frame.subject.capitalize()} in the last {frame.window} look "
                   f"{'different from' if worst else 'like'} {frame.reference}. "
                   f"{high_score_sentence(rule, reference, current)}").strip()
    else:
        summary = (f"PSI of {frame.subject} in the last {frame.window} is {m.psi:.2f} "
                   f"(expected < {rule.psi.warn:.2f} against {frame.reference}; "
                   f"n = {fmt_number(m.n_cur)} vs {fmt_number(m.n_ref)}). "
                   f"{high_score_sentence(rule, reference, current)} "
                   f"KS {m.ks:.3f}.{mean_part}").replace("  ", " ").strip()
    if breaches and not frame.business:
        summary += f" Over the limit: {', '.join(breaches)}."
    return Observation(rule.name, Status.ALERT if worst else Status.OK, labels, m.psi,
                       summary=summary, expected=expected, seen=seen, window=frame.window,
                       severity=worst,
                       details={"psi": m.psi, "ks": m.ks, "ks_p": ks_p, "n_current": m.n_cur,
                                "n_reference": m.n_ref, "psi_bins": m.psi_bins})


def _spread_change(ratio: float | None) -> float | None:
    """A spread that halves is as far off as one that doubles; one that collapses to 0
    (a model stuck on one score) is infinitely far off."""
    if ratio is None or ratio < 0:
        return None
    return math.inf if ratio == 0 else max(ratio, 1 / ratio)


def judge_high_score(rule: ScoreDriftRule, frame: Frame, reference: Histogram,
                     current: Histogram) -> Observation | None:
    hs = rule.high_score
    if hs is None:
        return None
    labels = frame.labels_for("high_score_rate")
    expected_rate = expected_high_rate(rule, reference)
    rate = current.above_rate
    expected = f"about {pct(expected_rate)} above {hs.threshold:g}"
    if current.valid < hs.min_samples:
        return Observation(
            rule.name, Status.NODATA, labels, rate,
            summary=f"High-score rate of {frame.subject} in the last {frame.window} is "
                    f"{pct(rate)} over {fmt_number(current.valid)} scores; it is only judged "
                    f"from {fmt_number(hs.min_samples)} scores on (high_score.min_samples).",
            expected=expected, seen=pct(rate), window=frame.window)
    if expected_rate is None:
        return Observation(
            rule.name, Status.NODATA, labels, rate,
            summary=f"High-score rate of {frame.subject} is {pct(rate)}, but the reference "
                    "has no scores to compare with (set high_score.expected_rate).",
            expected=expected, seen=pct(rate), window=frame.window)
    assert rate is not None
    if hs.expected_rate is not None:
        test = rate_with_expected(current.above, current.valid, hs.expected_rate)
    else:
        test = two_proportion_test(current.above, current.valid, reference.above,
                                   reference.valid)
    significant = test.p_value < hs.alpha
    over_cap = hs.max_rate is None or rate > hs.max_rate
    bad = significant and over_cap
    severity = Severity.CRITICAL if bad and hs.critical_rate is not None and \
        rate >= hs.critical_rate else None
    if frame.business:
        summary = (f"{pct(rate)} of cases scored by {frame.subject.removesuffix(' scores')} in "
                   f"the last {frame.window} got a high score (usually about "
                   f"{pct(expected_rate)}).")
    else:
        cap = f", alerting above {pct(hs.max_rate)}" if hs.max_rate is not None else ""
        summary = (f"{pct(rate)} of {frame.subject} in the last {frame.window} are above "
                   f"{hs.threshold:g} (expected about {pct(expected_rate)} against "
                   f"{frame.reference if hs.expected_rate is None else 'the configured rate'}"
                   f"{cap}; n = {fmt_number(current.valid)}, z = {test.z:.1f}, "
                   f"p = {test.p_value:.2g}).")
    return Observation(rule.name, Status.ALERT if bad else Status.OK, labels, rate,
                       summary=summary, expected=expected, seen=pct(rate), window=frame.window,
                       severity=severity,
                       details={"z": test.z, "p_value": test.p_value,
                                "expected_rate": expected_rate})


def judge_null_rates(rule: ScoreDriftRule, frame: Frame, reference: Histogram,
                     current: Histogram) -> list[Observation]:
    nr = rule.null_rate
    if nr is None:
        return []
    out = []
    for feature in rule.feature_columns:
        labels = frame.labels_for("null_rate", feature=feature)
        cur, ref = current.null_rate(feature), reference.null_rate(feature)
        expected = f"about {pct(ref)} null"
        if current.rows < nr.min_rows or cur is None or ref is None:
            out.append(Observation(
                rule.name, Status.NODATA, labels, cur,
                summary=f"Null rate of feature {feature} for {frame.subject} not judged: "
                        f"{fmt_number(current.rows)} rows in the last {frame.window} (needs "
                        f"{fmt_number(nr.min_rows)}) and {fmt_number(reference.rows)} in the "
                        "reference.",
                expected=expected, seen=pct(cur), window=frame.window))
            continue
        increase = cur - ref
        bad = increase >= nr.max_increase
        severity = Severity.CRITICAL if nr.critical_increase is not None and \
            increase >= nr.critical_increase else None
        nulls = current.feature_nulls.get(feature, 0)
        out.append(Observation(
            rule.name, Status.ALERT if bad else Status.OK, labels, cur,
            summary=f"Null rate of feature {feature} for {frame.subject} in the last "
                    f"{frame.window} is {pct(cur)} (expected about {pct(ref)} against "
                    f"{frame.reference}, alerting from {pct(ref + nr.max_increase)}; "
                    f"{fmt_number(nulls)} of {fmt_number(current.rows)} rows).",
            expected=expected, seen=pct(cur), window=frame.window,
            severity=severity if bad else None))
    return out


def judge_volume(rule: ScoreDriftRule, frame: Frame, current: Histogram,
                 expected_rows: float | None) -> Observation | None:
    vol = rule.volume
    if vol is None:
        return None
    labels = frame.labels_for("volume")
    rows = current.estimated_rows
    if expected_rows is None or expected_rows < vol.min_expected:
        return Observation(
            rule.name, Status.OK, labels, rows,
            summary=f"{fmt_number(round(rows))} {frame.subject} in the last {frame.window}; "
                    f"the reference expects about {fmt_number(round(expected_rows or 0))}, too "
                    f"few to judge volume (volume.min_expected {fmt_number(vol.min_expected)}).",
            window=frame.window)
    ratio = rows / expected_rows
    low = vol.min_ratio is not None and ratio < vol.min_ratio
    high = vol.max_ratio is not None and ratio > vol.max_ratio
    severity = Severity.CRITICAL if low and vol.critical_min_ratio is not None and \
        ratio < vol.critical_min_ratio else None
    bounds = []
    if vol.min_ratio is not None:
        bounds.append(f"at least {pct(vol.min_ratio)}")
    if vol.max_ratio is not None:
        bounds.append(f"at most {pct(vol.max_ratio)}")
    hint = " Is the scoring pipeline stalled?" if low else ""
    summary = (f"Expected about {fmt_number(round(expected_rows))} {frame.subject} in the last "
               f"{frame.window} (from {frame.reference}; {' and '.join(bounds)} of that), got "
               f"{fmt_number(round(rows))} ({pct(ratio)}).{hint}")
    return Observation(rule.name, Status.ALERT if low or high else Status.OK, labels, rows,
                       summary=summary, expected=f"about {fmt_number(round(expected_rows))}",
                       seen=fmt_number(round(rows)), window=frame.window,
                       severity=severity, details={"ratio": ratio})


def judge_invalid(rule: ScoreDriftRule, frame: Frame, current: Histogram) -> Observation | None:
    if rule.invalid_max_rate is None:
        return None
    labels = frame.labels_for("invalid_scores")
    scored = current.valid + current.invalid
    rate = current.invalid / scored if scored else 0.0
    lo, hi = rule.score_range
    bad = scored > 0 and rate > rule.invalid_max_rate
    summary = (f"{pct(rate)} of {frame.subject} in the last {frame.window} are not valid "
               f"scores in [{lo:g}, {hi:g}]: {fmt_number(current.nans)} NaN, "
               f"{fmt_number(current.infs)} infinite, {fmt_number(current.out_of_range)} out "
               f"of range, {fmt_number(current.nulls)} NULL (expected at most "
               f"{pct(rule.invalid_max_rate)}; NULL is not counted as invalid).")
    return Observation(rule.name, Status.ALERT if bad else Status.OK, labels, rate,
                       summary=summary, expected=f"at most {pct(rule.invalid_max_rate)}",
                       seen=pct(rate), window=frame.window)
