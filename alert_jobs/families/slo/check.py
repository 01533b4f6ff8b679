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

SKELETON: signatures and data shapes are fixed (other modules build on them); bodies are
filled in by the ``slo-math`` work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alert_jobs.core.model import Observation, Severity
from alert_jobs.families.slo.config import SEVERITIES, BurnPair, SloRule


@dataclass(frozen=True)
class Bucket:
    """Events counted in ``[start, end)``. ``has_data`` false: the source had nothing for
    it (no series, NULL total) — a gap, which is not the same as zero traffic."""

    start: datetime
    end: datetime
    good: float
    total: float
    has_data: bool = True

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
    notes: Sequence[str] = field(default_factory=tuple)  # "few events in 5m: 8 of 100"


def pairs_of(rule: SloRule) -> list[Pair]:
    """The rule's pairs with factors for its period, highest severity first."""
    raise NotImplementedError


def factor_for(budget_percent: float, period: timedelta, long: timedelta) -> float:
    """``budget_percent/100 × period / long`` (14.4 for 2 % of 30 days in 1 h)."""
    raise NotImplementedError


def budget_consumed(factor: float, long: timedelta, period: timedelta) -> float:
    """Share of the budget spent by burning at ``factor`` for ``long``."""
    raise NotImplementedError


def time_to_fire(objective: float, error_ratio: float, long: timedelta, factor: float
                 ) -> timedelta:
    """How long an error ratio must last for a pair's long window to cross (Workbook)."""
    raise NotImplementedError


def burn_rate(counts: Counts, objective: float) -> float | None:
    """Error ratio over ``1 − objective``; None without events."""
    raise NotImplementedError


def windows_of(rule: SloRule) -> list[timedelta]:
    """Every span the evaluation needs summed: each pair's long and short, and the
    period — distinct, longest first. The store sums them in one read."""
    raise NotImplementedError


def evaluate(rule: SloRule, counts: Mapping[timedelta, Counts]) -> SloReport:
    """Judge every pair on ``counts`` (one entry per :func:`windows_of` span)."""
    raise NotImplementedError


def judge(rule: SloRule, report: SloReport, *, now: datetime,
          labels: Mapping[str, str] | None = None) -> Observation:
    """One observation per SLO.

    ALERT with ``severity`` = the firing pair's (page → critical over ticket → warning)
    when a pair holds; OK when none does; NODATA (with the reason) when no pair holds
    and a window of some pair is a gap; ``value`` is the firing (else the fastest
    1-pair's long) burn rate. The summary follows the message standard, e.g.:
    "Checkout availability (SLO 99.9 % over 30 days) is burning its error budget 15.2×
    too fast over the last 1 h and 14.8× over the last 5 min (expected below 14.4×,
    which spends 2 % of the budget in 1 h). At this rate the rest of the budget (62 %)
    is gone in 1 day 23 h."
    """
    raise NotImplementedError


def _unused(_: BurnPair) -> None:  # keeps the import for the skeleton's readers
    return None


_ = SEVERITIES
