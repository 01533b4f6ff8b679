"""The SRE Workbook's numbers (ch. 5), checked on synthetic SLI streams (issue #13 point 6).

A stream is a list of per-minute buckets in memory: 30 days of steady traffic (1,000
events a minute, no errors), then errors at a fixed ratio from ``t0`` for a while, then
healthy again. Each minute the windows are summed from the buckets (running totals, as
the bucket store does), the check evaluates them, and the test records when the alert
fires, at which severity, and when it resets.

Expectations come from the Workbook's formulas, written out here and not taken from the
code under test:

* time to fire of a window = ``(1 − SLO) / error_ratio × window × factor``; a pair fires
  once both its windows are above (the long one is the later, as the short is 1/12);
* a pair is "above" strictly, so on a minute grid it fires at the first whole minute
  after that time (minute resolution is enough: the fastest case, 0.864 min, is
  caught in the first minute as the Workbook's "under a minute" implies);
* ``d`` minutes of errors at ratio ``e`` leave ``min(d, W − k)`` minutes of them in a
  window ``W`` long, ``k`` minutes after they stop, so a pair holds while both
  ``min(d, W − k) / W × e / (1 − SLO) > factor``; its short window lets go at
  ``k = short × (1 − factor × (1 − SLO) / e)``;
* the budget consumed by burning at ``factor`` for ``long`` is ``factor × long / period``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.slo.check import (
    Bucket,
    Counts,
    SloReport,
    burn_rate,
    evaluate,
    judge,
    time_to_fire,
    windows_of,
)
from alert_jobs.families.slo.config import SloRule

MIN = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)
PERIOD = 30 * D
SLO = 0.999
BUDGET = 1 - SLO  # 0.001, the sustainable error ratio
PER_MINUTE = 1000
T0 = datetime(2026, 3, 1, tzinfo=UTC)

WorkbookPair = tuple[timedelta, timedelta, float, str]  # long, short, factor, severity

#: Table 5-8 plus the 24 h / 2 h ticket of the Workbook's example rules.
WORKBOOK: list[WorkbookPair] = [
    (H, 5 * MIN, 14.4, "page"),
    (6 * H, 30 * MIN, 6.0, "page"),
    (D, 2 * H, 3.0, "ticket"),
    (3 * D, 6 * H, 1.0, "ticket"),
]
SEVERITY = {"page": Severity.CRITICAL, "ticket": Severity.WARNING}


def workbook_rule() -> SloRule:
    return SloRule.model_validate({
        "name": "checkout", "objective": 99.9, "service": "Checkout",
        "sli": {"sql": {"database": "sqlite://", "query": "select 1 as good, 1 as total"}},
    })


# --- the Workbook's formulas -------------------------------------------------------

def minutes(delta: timedelta) -> float:
    return delta / MIN


def fire_minute(error_ratio: float, long: timedelta, short: timedelta, factor: float
                ) -> int | None:
    """First whole minute after both windows' time to fire; None if the ratio never gets
    the pair above its factor."""
    if error_ratio / BUDGET <= factor:
        return None
    ttf = max(BUDGET / error_ratio * minutes(w) * factor for w in (long, short))
    return math.floor(ttf + 1e-9) + 1


def above_after(error_ratio: float, errors_for: int, k: int, span: timedelta,
                factor: float) -> bool:
    """Whether a window is above ``factor`` ``k`` minutes after ``errors_for`` minutes
    of errors ended."""
    inside = max(0, min(errors_for, minutes(span) - k))
    return inside / minutes(span) * error_ratio / BUDGET > factor * (1 + 1e-9)


def holds_after(error_ratio: float, errors_for: int, k: int, pair: WorkbookPair) -> bool:
    long, short, factor, _ = pair
    return all(above_after(error_ratio, errors_for, k, w, factor) for w in (long, short))


def short_reset(error_ratio: float, pair: WorkbookPair) -> int:
    """Minutes after the errors stop when the pair's short window drops to its factor."""
    _, short, factor, _ = pair
    return math.ceil(minutes(short) * (1 - factor * BUDGET / error_ratio) - 1e-9)


# --- the stream ------------------------------------------------------------------------

@dataclass
class Stream:
    """Per-minute buckets and their running totals (``cum[i]`` = the first ``i``)."""

    buckets: list[Bucket] = field(default_factory=list)
    cum: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.0, 0.0, 0.0)])

    def add(self, bad: int, *, has_data: bool = True) -> None:
        start = self.buckets[-1].end if self.buckets else T0 - PERIOD
        total = PER_MINUTE if has_data else 0
        bucket = Bucket(start, start + MIN, total - bad, total, has_data)
        self.buckets.append(bucket)
        good, tot, covered = self.cum[-1]
        self.cum.append((good + bucket.good, tot + bucket.total,
                         covered + (60.0 if has_data else 0.0)))

    def window(self, span: timedelta) -> Counts:
        """The sum of the last ``span`` of buckets."""
        n = int(span / MIN)
        assert n <= len(self.buckets), "the history is shorter than the window"
        (g1, t1, c1), (g0, t0, c0) = self.cum[-1], self.cum[-1 - n]
        return Counts(span=span, good=g1 - g0, total=t1 - t0,
                      covered=timedelta(seconds=c1 - c0))

    def copy(self) -> Stream:
        return Stream(list(self.buckets), list(self.cum))

    @property
    def now(self) -> datetime:
        return self.buckets[-1].end


@pytest.fixture(scope="module")
def history() -> Stream:
    """30 days of healthy traffic ending at ``t0``."""
    stream = Stream()
    for _ in range(int(PERIOD / MIN)):
        stream.add(0)
    assert stream.now == T0
    return stream


@dataclass(frozen=True)
class Minute:
    m: int  # minutes since t0 (the end of the m-th bucket)
    obs: Observation
    report: SloReport
    burn_1h: float


def replay(history: Stream, error_ratio: float, errors_for: int, after: int) -> list[Minute]:
    """Errors at ``error_ratio`` for ``errors_for`` minutes from t0, then ``after``
    healthy minutes; one evaluation at the end of each minute."""
    rule = workbook_rule()
    spans = windows_of(rule)
    stream = history.copy()
    bad = round(error_ratio * PER_MINUTE)
    assert bad == pytest.approx(error_ratio * PER_MINUTE)  # whole events, exact ratio
    out = []
    for m in range(1, errors_for + after + 1):
        stream.add(bad if m <= errors_for else 0)
        report = evaluate(rule, {s: stream.window(s) for s in spans})
        obs = judge(rule, report, now=stream.now)
        out.append(Minute(m, obs, report, burn_rate(stream.window(H), rule.objective) or 0.0))
    return out


def detection(run: list[Minute]) -> Minute:
    return next(x for x in run if x.obs.status == Status.ALERT)


def reset_after(run: list[Minute], errors_for: int) -> int:
    """Minutes from the end of the errors to the first minute no pair holds."""
    assert run[errors_for - 1].obs.status == Status.ALERT, "not firing when errors stop"
    return next(x.m for x in run[errors_for:] if x.obs.status == Status.OK) - errors_for


def expected_detection(error_ratio: float) -> tuple[int, WorkbookPair]:
    """The minute of the first pair to fire, and that pair (highest severity on a tie)."""
    timed = [(fire_minute(error_ratio, *p[:3]), i, p) for i, p in enumerate(WORKBOOK)]
    m, _, pair = min((m, i, p) for m, i, p in timed if m is not None)
    return m, pair


def expected_reset(error_ratio: float, errors_for: int) -> int:
    """The latest short-window reset among the pairs holding when the errors stop."""
    firing = [p for p in WORKBOOK if holds_after(error_ratio, errors_for, 0, p)]
    resets = [short_reset(error_ratio, p) for p in firing]
    for pair, k in zip(firing, resets, strict=True):
        # it is the short window that lets go: the long one is still above then
        assert above_after(error_ratio, errors_for, k, pair[0], pair[2])
    return max(resets)


def consumed(report: SloReport) -> float:
    assert report.budget_remaining is not None
    return 1 - report.budget_remaining


# --- the cases -------------------------------------------------------------------------

def test_formulas_agree_with_the_check() -> None:
    for ratio, ttf in ((1.0, 0.864), (0.1, 8.64), (0.02, 43.2)):
        assert minutes(time_to_fire(99.9, ratio, H, 14.4)) == pytest.approx(ttf)
        assert BUDGET / ratio * 60 * 14.4 == pytest.approx(ttf)


@pytest.mark.parametrize(("error_ratio", "errors_for"), [
    (1.0, 2),    # a 2-minute total outage: detected in the first minute (0.864 min)
    (0.1, 15),   # 10 % errors: 8.64 min → minute 9
    (0.02, 60),  # 2 % errors: 43.2 min → minute 44 (the 5-minute window is at 20× > 14.4)
])
def test_detection_and_reset_of_the_1h_page(history: Stream, error_ratio: float,
                                             errors_for: int) -> None:
    run = replay(history, error_ratio, errors_for, after=30)
    fired = detection(run)
    m, pair = expected_detection(error_ratio)
    assert pair[:2] == (H, 5 * MIN)
    assert fired.m == m
    assert fired.obs.severity == Severity.CRITICAL
    assert fired.report.firing is not None and fired.report.firing.pair.long == H
    # it is the only pair holding when the errors stop, so its 5-minute window resets it
    assert [p for p in WORKBOOK if holds_after(error_ratio, errors_for, 0, p)] == [WORKBOOK[0]]
    assert reset_after(run, errors_for) == expected_reset(error_ratio, errors_for)
    # budget: detection lands within one minute's errors past factor × long / period
    floor = 14.4 * (H / PERIOD)  # 2 %
    one_minute = error_ratio * PER_MINUTE / (BUDGET * PER_MINUTE * minutes(PERIOD))
    assert floor < consumed(fired.report) <= floor + one_minute + 1e-12


def test_2_percent_resets_on_the_short_window_not_the_long_one(history: Stream) -> None:
    """Figure 5-6's point: the long window alone would stay above for ~17 minutes
    after the errors stop; the 5-minute window resets the page after 2."""
    run = replay(history, 0.02, 60, after=30)
    assert reset_after(run, 60) == short_reset(0.02, WORKBOOK[0]) == 2
    long_alone = next(k for k in range(60) if not above_after(0.02, 60, k, H, 14.4))
    assert long_alone == 17  # (60 − k) / 60 × 20 ≤ 14.4 from k = 16.8
    assert next(x.m for x in run[60:] if x.burn_1h <= 14.4 * (1 + 1e-9)) - 60 == long_alone


def test_long_total_outage_steps_down_from_page_to_ticket(history: Stream) -> None:
    """10 minutes at 100 %: all four pairs hold; still one alert, critical while a page
    pair holds, then warning while a ticket pair does, then resolved."""
    errors_for = 10
    assert all(holds_after(1.0, errors_for, 0, p) for p in WORKBOOK)
    page_ends = max(short_reset(1.0, p) for p in WORKBOOK if p[3] == "page")  # 30 min
    ticket_ends = expected_reset(1.0, errors_for)  # 6 h
    run = replay(history, 1.0, errors_for, after=ticket_ends + 5)
    assert detection(run).m == expected_detection(1.0)[0] == 1
    severities = [x.obs.severity for x in run[errors_for - 1:]]  # k = 0, 1, ...
    assert severities[:page_ends] == [Severity.CRITICAL] * page_ends
    assert severities[page_ends:ticket_ends] == [Severity.WARNING] * (ticket_ends - page_ends)
    assert reset_after(run, errors_for) == ticket_ends == 360
    assert all(x.obs.status == Status.ALERT for x in run if x.m < errors_for + ticket_ends)


def test_35x_burn_is_caught_where_a_single_1h_window_at_36_never_fires(history: Stream
                                                                      ) -> None:
    """Workbook iteration 4 (5 % of the budget in 1 h needs a burn of 36): a 35× burn
    never alerts. The multi-window pairs page on it."""
    ratio = 0.035  # 35 × 0.001
    run = replay(history, ratio, errors_for=180, after=0)
    # single window, burn above 36 over 1 h: its time to fire exceeds the window
    assert BUDGET / ratio * 60 * 36 > 60
    assert max(x.burn_1h for x in run) == pytest.approx(35)
    assert not any(x.burn_1h > 36 for x in run)
    # the Workbook pairs: the 1 h / 5 min page at 14.4 after 24.7 minutes
    fired = detection(run)
    m, pair = expected_detection(ratio)
    assert (fired.m, pair[:2]) == (m, (H, 5 * MIN)) and m == 25
    assert fired.obs.severity == Severity.CRITICAL


def test_2x_burn_never_pages_but_tickets_after_36_hours(history: Stream) -> None:
    """0.2 % errors (2×): below 14.4, 6 and 3, above 1 — only the 3 d / 6 h ticket, whose
    long window crosses at 0.001 / 0.002 × 3 days × 1 = 36 h (exactly: so the first
    minute strictly above is 36 h + 1 min)."""
    ratio = 0.002
    assert [fire_minute(ratio, *p[:3]) for p in WORKBOOK[:3]] == [None, None, None]
    m, pair = expected_detection(ratio)
    assert pair[:2] == (3 * D, 6 * H) and m == 36 * 60 + 1
    run = replay(history, ratio, errors_for=m + 5, after=0)
    fired = detection(run)
    assert fired.m == m
    assert fired.obs.severity == Severity.WARNING
    assert not any(x.obs.severity == Severity.CRITICAL for x in run)
    assert fired.report.firing is not None and fired.report.firing.pair.long == 3 * D
    # budget consumed by then: factor × long / period = 10 %, plus the last minute
    assert 0.10 < consumed(fired.report) <= 0.10 + ratio / BUDGET / minutes(PERIOD) + 1e-12
