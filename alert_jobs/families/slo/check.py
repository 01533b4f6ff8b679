"""SLO burn rates, pure: counts per window in, one observation out (no I/O).

Formulas (SRE Workbook ch. 5; research/alerting.md §2):

* error ratio of a window = bad / total; burn rate = error ratio / (1 − objective);
* a pair fires when both its long and its short window burn faster than its factor;
  factor = budget_percent/100 × period / long;
* burning at ``factor`` for ``long`` spends ``factor × long / period`` of the budget;
* with error ratio ``e`` from a start, a pair's long window crosses after
  ``(1 − objective) / e × long × factor`` (time to fire);
* the budget left is ``1 − bad_in_period / (budget_fraction × total_in_period)``; at
  the current (long-window) burn it is gone in ``left × period / burn``.

Objectives are percents (``99.9``) everywhere, as in the rules file. A pair "holds" when
both burns are strictly above its factor; a relative tolerance of ``1e-9`` keeps a burn
that is exactly the factor (14.4 computed as 14.400000000002) from flapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alert_jobs.core.durations import short_duration
from alert_jobs.core.formatting import fmt_number
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.slo.config import SEVERITIES, SloRule


@dataclass(frozen=True)
class Bucket:
    """Events counted in ``[start, end)``. ``has_data`` false: the source had nothing for
    it (no series, NULL total) — a gap, which is not the same as zero traffic."""

    start: datetime
    end: datetime
    good: float
    total: float
    has_data: bool = True

    def __post_init__(self) -> None:
        # A source that returns more good than total events (or negative counts) would
        # turn into a negative burn: refuse it where it enters, with the numbers.
        if self.end <= self.start:
            raise ValueError(f"bucket ends ({self.end}) before it starts ({self.start})")
        if not (math.isfinite(self.good) and math.isfinite(self.total)):
            raise ValueError(f"bucket counts must be numbers, got good={self.good} "
                             f"total={self.total}")
        if self.good < 0 or self.total < 0:
            raise ValueError(f"bucket counts must not be negative, got good={self.good} "
                             f"total={self.total}")
        if self.good > self.total * (1 + 1e-9):
            raise ValueError(f"more good events than events in total: good={self.good} "
                             f"total={self.total} (is the query's column order good, total?)")

    @property
    def bad(self) -> float:
        return self.total - self.good


@dataclass(frozen=True)
class Counts:
    """Events in one window ending now: sums over its stored buckets (prorated at the
    edge), and how much of the window the buckets cover with data."""

    span: timedelta
    good: float
    total: float
    covered: timedelta  # seconds of the window inside buckets that have data

    @property
    def bad(self) -> float:
        return self.total - self.good

    @property
    def coverage(self) -> float:
        """Share of the window with data, 0..1."""
        return self.covered / self.span if self.span else 0.0

    @property
    def error_ratio(self) -> float | None:
        return self.bad / self.total if self.total > 0 else None


#: A window needs at least this share covered by data to be judged; less is a gap.
MIN_COVERAGE = 0.9


@dataclass(frozen=True)
class Pair:
    """A configured pair with its factor worked out for the rule's period."""

    long: timedelta
    short: timedelta
    factor: float
    budget_percent: float  # share of the period's budget burnt at `factor` over `long`
    severity: Severity  # page → critical, ticket → warning
    label: str  # "page" | "ticket"


@dataclass(frozen=True)
class PairResult:
    pair: Pair
    long_burn: float | None  # None: not judged (see `reason`)
    short_burn: float | None
    firing: bool
    #: Why the pair was not judged: "" (judged), "gap" (a window under MIN_COVERAGE),
    #: "few_events" (a window under min_events).
    reason: str = ""


@dataclass(frozen=True)
class SloReport:
    """Everything one evaluation knows, for the observation, the asset's metadata and the
    monthly report."""

    rule: str
    objective: float  # percent
    period: timedelta
    sli: float | None  # good / total over the period (0..1), None without events
    budget_remaining: float | None  # fraction of the period's budget left (may be < 0)
    burn: Mapping[timedelta, float | None]  # burn rate per window span (each long, short)
    pairs: Sequence[PairResult]
    firing: PairResult | None  # the highest-severity pair that holds (then fastest burn)
    exhaustion: timedelta | None  # budget left gone in this long at the firing pair's burn
    #: Windows too thin to judge: "too few events to judge 5 min: 8 of 100".
    notes: Sequence[str] = field(default_factory=tuple)
    #: Share of each window (pairs' and the period) with data, 0..1: names a gap.
    coverage: Mapping[timedelta, float] = field(default_factory=dict)


_FEW = "too few events to judge "

#: Relative tolerance of "strictly above the factor": float noise is not a burn.
_TOLERANCE = 1e-9


def _budget_fraction(objective: float) -> float:
    """``1 − objective`` as a fraction of events (0.001 for 99.9), without float noise."""
    return round((100 - objective) / 100, 12)


def factor_for(budget_percent: float, period: timedelta, long: timedelta) -> float:
    """``budget_percent/100 × period / long`` (14.4 for 2 % of 30 days in 1 h)."""
    if long <= timedelta(0):
        raise ValueError("the long window must be a positive duration")
    return budget_percent / 100 * (period / long)


def budget_consumed(factor: float, long: timedelta, period: timedelta) -> float:
    """Share of the budget (0..1) spent by burning at ``factor`` for ``long``: 0.02 for
    14.4 × 1 h of 30 days."""
    if period <= timedelta(0):
        raise ValueError("the period must be a positive duration")
    return factor * (long / period)


def time_to_fire(objective: float, error_ratio: float, long: timedelta, factor: float
                 ) -> timedelta:
    """How long an error ratio must last for a pair's long window to cross (Workbook):
    ``(1 − objective) / error_ratio × long × factor``. ``objective`` is a percent. A
    result longer than ``long`` means the pair never fires at this error ratio."""
    if not 0 < error_ratio <= 1:
        raise ValueError(f"error ratio must be in (0, 1], got {error_ratio!r}")
    return long * (_budget_fraction(objective) / error_ratio * factor)


def burn_rate(counts: Counts, objective: float) -> float | None:
    """Error ratio over ``1 − objective`` (``objective`` a percent, 99.9); None without
    events."""
    ratio = counts.error_ratio
    if ratio is None:
        return None
    return ratio / _budget_fraction(objective)


def pairs_of(rule: SloRule) -> list[Pair]:
    """The rule's pairs with factors for its period, highest severity first (the rules
    file order is kept within a severity)."""
    pairs = []
    for p in rule.pairs:
        if p.factor is not None:
            factor = p.factor
            percent = budget_consumed(factor, p.long, rule.period) * 100
        else:
            assert p.budget_percent is not None  # the rule model enforces one of them
            percent = p.budget_percent
            factor = factor_for(percent, rule.period, p.long)
        pairs.append(Pair(long=p.long, short=p.short, factor=factor, budget_percent=percent,
                          severity=SEVERITIES[p.severity], label=p.severity))
    return sorted(pairs, key=lambda pair: -pair.severity.rank)


def windows_of(rule: SloRule) -> list[timedelta]:
    """Every span the evaluation needs summed: each pair's long and short, and the
    period — distinct, longest first. The store sums them in one read."""
    spans = {rule.period}
    for p in rule.pairs:
        spans.update((p.long, p.short))
    return sorted(spans, reverse=True)


def _thin(rule: SloRule, counts: Mapping[timedelta, Counts], spans: set[timedelta]
          ) -> list[str]:
    """``5 min: 8 of 100`` for each covered window under ``min_events`` (or with no
    events at all), shortest first."""
    out = []
    for span in sorted(spans):
        c = counts[span]
        if c.coverage < MIN_COVERAGE:
            continue  # a gap, reported as such
        if rule.min_events and c.total < rule.min_events:
            out.append(f"{_span_text(span)}: {fmt_number(c.total)} of "
                       f"{fmt_number(rule.min_events)}")
        elif c.total <= 0:
            out.append(f"{_span_text(span)}: no events")
    return out


def _above(burn: float | None, factor: float) -> bool:
    return burn is not None and burn > factor * (1 + _TOLERANCE)


def _judge_pair(rule: SloRule, pair: Pair, counts: Mapping[timedelta, Counts]) -> PairResult:
    windows = (counts[pair.long], counts[pair.short])
    if any(c.coverage < MIN_COVERAGE for c in windows):
        return PairResult(pair, None, None, False, "gap")
    if any(c.total <= 0 or c.total < rule.min_events for c in windows):
        return PairResult(pair, None, None, False, "few_events")
    long_burn = burn_rate(windows[0], rule.objective)
    short_burn = burn_rate(windows[1], rule.objective)
    return PairResult(pair, long_burn, short_burn,
                      _above(long_burn, pair.factor) and _above(short_burn, pair.factor))


def evaluate(rule: SloRule, counts: Mapping[timedelta, Counts]) -> SloReport:
    """Judge every pair on ``counts`` (one entry per :func:`windows_of` span).

    A window under :data:`MIN_COVERAGE` is a gap and one under ``min_events`` too thin:
    its pair is not judged (cannot fire). The firing pair is the highest severity that
    holds, then the fastest long burn: one alert per SLO, no duplicate page + ticket.
    """
    missing = [s for s in windows_of(rule) if s not in counts]
    if missing:
        raise ValueError("counts lack the window(s) "
                         + ", ".join(_span_text(s) for s in missing))
    pairs = pairs_of(rule)
    results = [_judge_pair(rule, pair, counts) for pair in pairs]
    holding = [r for r in results if r.firing]
    firing = max(holding, key=lambda r: (r.pair.severity.rank, r.long_burn or 0.0),
                 default=None)

    period = counts[rule.period]
    sli = period.good / period.total if period.total > 0 else None
    remaining = (1 - period.bad / (rule.budget_fraction * period.total)
                 if period.total > 0 else None)
    exhaustion = None
    if firing is not None and firing.long_burn and remaining is not None and remaining > 0:
        exhaustion = rule.period * (remaining / firing.long_burn)

    pair_spans = {span for p in pairs for span in (p.long, p.short)}
    thin = _thin(rule, counts, pair_spans)
    notes = [_FEW + text for text in thin]
    burn = {span: burn_rate(counts[span], rule.objective)
            for span in windows_of(rule) if span in pair_spans}
    return SloReport(rule=rule.name, objective=rule.objective, period=rule.period, sli=sli,
                     budget_remaining=remaining, burn=burn, pairs=tuple(results),
                     firing=firing, exhaustion=exhaustion, notes=tuple(notes),
                     coverage={span: counts[span].coverage for span in windows_of(rule)})


def judge(rule: SloRule, report: SloReport, *, now: datetime,
          labels: Mapping[str, str] | None = None) -> Observation:
    """One observation per SLO.

    ALERT with ``severity`` = the firing pair's (page → critical over ticket → warning)
    when a pair holds; OK when none does; NODATA (with the reason) when no pair holds
    and a window of some pair is a gap; ``value`` is the firing (else the fastest
    judged pair's long) burn rate. The summary follows the message standard, e.g.:
    "Checkout availability (SLO 99.9 % over 30 days) is burning its error budget 15.2×
    too fast over the last 1 h and 14.8× over the last 5 min (expected below 14.4×,
    which spends 2 % of the budget in 1 h). At this rate the rest of the budget (62 %)
    is gone in 1 day 23 h."

    ``now`` is the evaluation time; the sentences speak of "the last …" windows ending
    at it, so it does not change the text.
    """
    del now  # part of the family contract; the windows already end at it
    head = (f"{_subject(rule)} (SLO {fmt_number(rule.objective)} % over "
            f"{_period_text(rule.period)})")
    details = _details(report)
    obs_labels = dict(labels or {})
    firing = report.firing
    if firing is not None:
        return _alert(rule, report, firing, head, details, obs_labels)

    gaps = [r for r in report.pairs if r.reason == "gap"]
    if gaps:
        # freshest first: a source that stopped shows as 100 % of the short windows
        spans = sorted({span for r in gaps for span in (r.pair.long, r.pair.short)
                        if report.coverage.get(span, 0.0) < MIN_COVERAGE})
        reason = "no data for " + _and([
            f"{_percent(1 - report.coverage.get(s, 0.0))} % of the last {_span_text(s)}"
            for s in spans])
        return Observation(rule.name, Status.NODATA, obs_labels, None,
                           summary=f"{head} cannot be judged: {reason}.",
                           expected=_expected(gaps[0].pair), seen=reason,
                           window=_span_text(gaps[0].pair.long), details=details)

    judged = [r for r in report.pairs if r.reason == ""]
    budget = _budget_left_text(report)
    few = ", ".join(n.removeprefix(_FEW) for n in report.notes)
    if not judged:
        summary = f"{head} has too few events to judge its burn rate ({few or 'no events'})"
        summary += f"; {budget}." if budget else "."
        return Observation(rule.name, Status.OK, obs_labels, None, summary=summary,
                           expected=_expected(report.pairs[0].pair), seen="too few events",
                           window=_span_text(report.pairs[0].pair.long), details=details)
    top = max(judged, key=lambda r: r.long_burn or 0.0)
    assert top.long_burn is not None and top.short_burn is not None
    if _above(top.long_burn, top.pair.factor):
        # The long window still remembers a burst the short one has seen end: say that
        # the burn has stopped, not only a big number that reads like an alarm.
        summary = (f"{head} is within its error budget again: burning "
                   f"{_rate(top.short_burn)}× over the last {_span_text(top.pair.short)} "
                   f"(below {_factor(top.pair.factor)}×); the last "
                   f"{_span_text(top.pair.long)} still averages {_rate(top.long_burn)}×")
    else:
        summary = (f"{head} is within its error budget: burning "
                   f"{_rate(top.long_burn)}× over the last {_span_text(top.pair.long)}")
    summary += f"; {budget}." if budget else "."
    if few:
        summary += f" {_FEW[0].upper()}{_FEW[1:]}{few}."
    return Observation(rule.name, Status.OK, obs_labels, top.long_burn, summary=summary,
                       expected=_expected(top.pair),
                       seen=f"{_rate(top.long_burn)}× / {_rate(top.short_burn)}×",
                       window=_span_text(top.pair.long), details=details)


def _alert(rule: SloRule, report: SloReport, firing: PairResult, head: str,
           details: dict[str, float], labels: dict[str, str]) -> Observation:
    pair = firing.pair
    assert firing.long_burn is not None and firing.short_burn is not None
    long_burn = _rate(firing.long_burn, near=pair.factor)
    short_burn = _rate(firing.short_burn, near=pair.factor)
    summary = (f"{head} is burning its error budget {long_burn}× too fast over the last "
               f"{_span_text(pair.long)} and {short_burn}× over the last "
               f"{_span_text(pair.short)} (expected below {_factor(pair.factor)}×, which "
               f"spends {_percent(pair.budget_percent / 100)} % of the budget in "
               f"{_span_text(pair.long)}).")
    left = report.budget_remaining
    if left is not None and left > 0 and report.exhaustion is not None:
        summary += (f" At this rate the rest of the budget ({_percent(left)} %) is gone in "
                    f"{_human(report.exhaustion)}.")
    elif left is not None:
        summary += (f" The error budget of the last {_period_text(rule.period)} is already "
                    f"spent ({_percent(1 - left)} % used).")
    return Observation(rule.name, Status.ALERT, labels, firing.long_burn, summary=summary,
                       expected=_expected(pair), seen=f"{long_burn}× / {short_burn}×",
                       window=_span_text(pair.long), details=details, severity=pair.severity)


def _and(parts: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _details(report: SloReport) -> dict[str, float]:
    """Plain numbers for the asset's metadata: ``burn_<window>``, ``sli`` and
    ``budget_remaining`` (fractions, 0..1; the budget may be negative),
    ``exhaustion_seconds``; a number that is unknown is left out."""
    out: dict[str, float] = {}
    for span, burn in report.burn.items():
        if burn is not None:
            out[f"burn_{short_duration(span)}"] = burn
    if report.sli is not None:
        out["sli"] = report.sli
    if report.budget_remaining is not None:
        out["budget_remaining"] = report.budget_remaining
    if report.exhaustion is not None:
        out["exhaustion_seconds"] = report.exhaustion.total_seconds()
    return out


def _expected(pair: Pair) -> str:
    return (f"below {_factor(pair.factor)}× burn over {_span_text(pair.long)} and "
            f"{_span_text(pair.short)}")


def _budget_left_text(report: SloReport) -> str:
    left = report.budget_remaining
    if left is None:
        return ""
    if left <= 0:
        return f"the budget is already spent ({_percent(1 - left)} % used)"
    return f"{_percent(left)} % of the budget left"


def _subject(rule: SloRule) -> str:
    return rule.service or rule.description or rule.name.replace("_", " ")


def _factor(value: float) -> str:
    """A factor as configured: up to two decimals (14.4, 13.44, 6, 0.93)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _rate(value: float, *, near: float | None = None) -> str:
    """A burn rate: one decimal (15.2, 0.4), two when one would print the factor it is
    compared with (14.43 vs 14.4), whole thousands from 100 (1,000)."""
    if value >= 100:
        return f"{value:,.0f}"
    if value < 0.1 and value != 0:
        return f"{value:.2g}"
    text = f"{value:.1f}"
    if near is not None and text == f"{near:.1f}":
        text = f"{value:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _percent(fraction: float) -> str:
    """A share as a percent: whole from 10 (62), one decimal below (2.5, 0.9)."""
    value = fraction * 100
    text = f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _span_text(span: timedelta) -> str:
    """A window the way the message standard writes it: ``5 min``, ``1 h``, ``3 days``,
    ``1 h 30 min``."""
    seconds = round(span.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}" + ("s" if unit == "day" and n != 1 else ""))
    return " ".join(parts) or "0 s"


def _period_text(period: timedelta) -> str:
    """``30 days``, ``28 days`` (never "4 weeks": SLO periods are said in days)."""
    days = period / timedelta(days=1)
    if days.is_integer():
        return f"{int(days)} day" + ("s" if days != 1 else "")
    return _span_text(period)


def _human(delta: timedelta) -> str:
    """A coming time, to its two largest units: ``1 day 23 h``, ``5 h 12 min``,
    ``42 min``, ``40 s``."""
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} day" + ("s" if days != 1 else "") + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min"
