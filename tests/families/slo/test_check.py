"""The pure SLO check: factors, burn rates, pair semantics, severity and the message.

Counts are built from traffic and error ratios (1,000 events a minute unless a test
says otherwise), so each expectation reads as the SRE Workbook states it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.slo.check import (
    MIN_COVERAGE,
    Bucket,
    Counts,
    SloReport,
    budget_consumed,
    burn_rate,
    evaluate,
    factor_for,
    judge,
    pairs_of,
    time_to_fire,
    windows_of,
)
from alert_jobs.families.slo.config import SloRule

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def make_rule(**fields: Any) -> SloRule:
    spec: dict[str, Any] = {
        "name": "checkout_availability", "objective": 99.9,
        "service": "Checkout availability",
        "sli": {"sql": {"database": "sqlite://", "query": "select 1 as good, 1 as total"}},
    }
    spec.update(fields)
    return SloRule.model_validate(spec)


def window(span: timedelta, error_ratio: float = 0.0, *, per_minute: float = 1000,
           coverage: float = 1.0) -> Counts:
    """A window of steady traffic with ``error_ratio`` of it bad, ``coverage`` of it
    with data (the events counted are those of the covered part)."""
    total = per_minute * (span / MIN) * coverage
    return Counts(span=span, good=total - total * error_ratio, total=total,
                  covered=span * coverage)


def counts(rule: SloRule, **by_window: Counts) -> dict[timedelta, Counts]:
    """Healthy windows (no errors) for every span of ``rule``, replaced by the given
    windows (each by its span; the keyword names are only labels)."""
    out = {span: window(span) for span in windows_of(rule)}
    for counted in by_window.values():
        out[counted.span] = counted
    return out


def observe(rule: SloRule, table: dict[timedelta, Counts]) -> tuple[SloReport, Observation]:
    report = evaluate(rule, table)
    return report, judge(rule, report, now=NOW)


def burning(rule: SloRule, burn: float, *spans: timedelta) -> dict[timedelta, Counts]:
    """``spans`` burning at ``burn`` (× the sustainable rate), the rest healthy."""
    ratio = burn * rule.budget_fraction
    return counts(rule, **{f"w{i}": window(s, ratio) for i, s in enumerate(spans)})


# --- formulas ------------------------------------------------------------------------

def test_workbook_factors_for_30_and_28_days() -> None:
    assert [p.factor for p in pairs_of(make_rule())] == pytest.approx([14.4, 6, 3, 1])
    assert [p.factor for p in pairs_of(make_rule(period="28d"))] == \
        pytest.approx([13.44, 5.6, 2.8, 0.9333], rel=1e-4)
    assert factor_for(2, 30 * D, H) == pytest.approx(14.4)
    assert factor_for(10, 30 * D, 3 * D) == pytest.approx(1)


def test_pair_given_as_factor_gets_its_budget_percent() -> None:
    rule = make_rule(pairs=[{"long": "1h", "short": "5m", "factor": 36}])
    (pair,) = pairs_of(rule)
    assert pair.factor == 36
    assert pair.budget_percent == pytest.approx(5)  # Workbook iteration 4: 5 % in 1 h


def test_budget_consumed_is_factor_times_window_over_period() -> None:
    assert budget_consumed(14.4, H, 30 * D) == pytest.approx(0.02)
    assert budget_consumed(6, 6 * H, 30 * D) == pytest.approx(0.05)
    assert budget_consumed(1, 3 * D, 30 * D) == pytest.approx(0.10)
    for pair in pairs_of(make_rule(period="28d")):
        assert budget_consumed(pair.factor, pair.long, 28 * D) == \
            pytest.approx(pair.budget_percent / 100)


@pytest.mark.parametrize(("error_ratio", "minutes"), [(1.0, 0.864), (0.1, 8.64), (0.02, 43.2)])
def test_time_to_fire_of_the_1h_page(error_ratio: float, minutes: float) -> None:
    assert time_to_fire(99.9, error_ratio, H, 14.4) / MIN == pytest.approx(minutes)


def test_time_to_fire_refuses_a_ratio_that_never_fires() -> None:
    with pytest.raises(ValueError, match="error ratio"):
        time_to_fire(99.9, 0, H, 14.4)


def test_burn_rate_is_error_ratio_over_budget() -> None:
    assert burn_rate(window(H, 0.01), 99.9) == pytest.approx(10)
    assert burn_rate(window(H, 0.01), 99) == pytest.approx(1)
    assert burn_rate(window(H, per_minute=0), 99.9) is None


def test_windows_are_distinct_and_longest_first() -> None:
    assert windows_of(make_rule()) == [30 * D, 3 * D, D, 6 * H, 2 * H, H, 30 * MIN, 5 * MIN]
    shared = make_rule(pairs=[{"long": "6h", "short": "1h", "factor": 6},
                              {"long": "1h", "short": "5m", "factor": 14.4}])
    assert windows_of(shared) == [30 * D, 6 * H, H, 5 * MIN]


def test_pairs_come_highest_severity_first() -> None:
    rule = make_rule(pairs=[
        {"long": "3d", "short": "6h", "budget_percent": 10, "severity": "ticket"},
        {"long": "1h", "short": "5m", "budget_percent": 2, "severity": "page"},
    ])
    assert [(p.label, p.severity) for p in pairs_of(rule)] == [
        ("page", Severity.CRITICAL), ("ticket", Severity.WARNING)]


# --- pair semantics --------------------------------------------------------------------

def test_a_pair_needs_both_windows_above_its_factor() -> None:
    rule = make_rule()
    report, obs = observe(rule, burning(rule, 20, H))  # long only: the spike is over
    assert not any(r.firing for r in report.pairs)
    assert obs.status == Status.OK
    report, obs = observe(rule, burning(rule, 20, 5 * MIN))  # short only: not sustained
    assert obs.status == Status.OK
    # positive control: both windows of the 1 h / 5 min pair
    report, obs = observe(rule, burning(rule, 20, H, 5 * MIN))
    assert obs.status == Status.ALERT and obs.severity == Severity.CRITICAL
    assert report.firing is not None and report.firing.pair.long == H
    assert obs.value == pytest.approx(20)


def test_strictly_above_the_factor() -> None:
    rule = make_rule()
    # 14.4 × 0.001 × 60,000 = 864 bad events: exactly the factor (float noise included)
    _, at = observe(rule, burning(rule, 14.4, H, 5 * MIN))
    assert at.status == Status.OK
    _, above = observe(rule, burning(rule, 14.5, H, 5 * MIN))
    assert above.status == Status.ALERT


def test_a_burn_equal_to_the_factor_despite_float_noise_does_not_fire() -> None:
    """At 99.25 % over 28 days the 1 h factor is 13.44, and 252 bad of 2,500 is exactly
    that burn, which floats compute as 13.440000000000001."""
    rule = make_rule(objective=99.25, period="28d")
    factor = pairs_of(rule)[0].factor
    exact = {s: Counts(s, 2500 - 252, 2500, s) for s in (H, 5 * MIN)}
    noisy = burn_rate(exact[H], 99.25)
    assert noisy is not None and noisy > factor  # the noise this guards against
    _, obs = observe(rule, counts(rule, **{str(s): c for s, c in exact.items()}))
    assert obs.status == Status.OK
    above = {s: Counts(s, 2500 - 253, 2500, s) for s in (H, 5 * MIN)}
    _, obs = observe(rule, counts(rule, **{str(s): c for s, c in above.items()}))
    assert obs.status == Status.ALERT


def test_page_over_ticket_in_one_alert() -> None:
    rule = make_rule()
    every = [s for s in windows_of(rule) if s != rule.period]
    report, obs = observe(rule, burning(rule, 20, *every))
    assert all(r.firing for r in report.pairs)  # all four pairs hold...
    assert obs.status == Status.ALERT and obs.severity == Severity.CRITICAL  # ...one page
    assert report.firing is not None and report.firing.pair.long == H
    # the ticket pairs alone hold: the same alert at warning
    report, obs = observe(rule, burning(rule, 4, D, 2 * H, 3 * D, 6 * H))
    assert obs.severity == Severity.WARNING
    assert report.firing is not None and report.firing.pair.long == D  # 4× over 1 day
    # a ticket pair burning faster than the page pair does not take its place
    table = burning(rule, 20, H, 5 * MIN)
    table.update({s: window(s, 50 * rule.budget_fraction) for s in (D, 2 * H)})
    report, obs = observe(rule, table)
    assert [r.firing for r in report.pairs] == [True, False, True, False]
    assert obs.severity == Severity.CRITICAL and obs.value == pytest.approx(20)


def test_same_severity_tie_goes_to_the_fastest_long_burn() -> None:
    rule = make_rule()
    table = burning(rule, 20, H, 5 * MIN)
    table.update({s: window(s, 30 * rule.budget_fraction) for s in (6 * H, 30 * MIN)})
    report, obs = observe(rule, table)
    assert report.firing is not None and report.firing.pair.long == 6 * H
    assert obs.value == pytest.approx(30)
    assert obs.window == "6 h"


# --- gaps and thin traffic ---------------------------------------------------------------

def test_gap_is_nodata_naming_the_window() -> None:
    rule = make_rule()
    table = counts(rule, w=window(H, coverage=0.6))
    report, obs = observe(rule, table)
    assert [r.reason for r in report.pairs] == ["gap", "", "", ""]
    assert obs.status == Status.NODATA
    assert obs.summary == ("Checkout availability (SLO 99.9 % over 30 days) cannot be "
                           "judged: no data for 40 % of the last 1 h.")
    # positive control: the same healthy traffic fully covered is OK
    _, covered = observe(rule, counts(rule, w=window(H, coverage=1.0)))
    assert covered.status == Status.OK
    # at the threshold the window is judged
    _, edge = observe(rule, counts(rule, w=window(H, coverage=MIN_COVERAGE)))
    assert edge.status == Status.OK


def test_a_stopped_source_names_each_window_it_left_short() -> None:
    """24 minutes without data: all of 5 min, 80 % of 30 min, 40 % of 1 h, 20 % of 2 h
    (6 h is 93 % covered, enough to be judged)."""
    rule = make_rule()
    missing = 24 * MIN
    table = {s: window(s, coverage=max(0.0, 1 - missing / s)) for s in windows_of(rule)}
    report, obs = observe(rule, table)
    assert [r.reason for r in report.pairs] == ["gap", "gap", "gap", ""]
    assert obs.status == Status.NODATA and obs.value is None
    assert obs.seen == ("no data for 100 % of the last 5 min, 80 % of the last 30 min, "
                        "40 % of the last 1 h and 20 % of the last 2 h")


def test_a_gap_does_not_hide_a_pair_that_fires() -> None:
    rule = make_rule()
    table = burning(rule, 8, 6 * H, 30 * MIN)
    table[5 * MIN] = window(5 * MIN, coverage=0)
    _, obs = observe(rule, table)
    assert obs.status == Status.ALERT and obs.severity == Severity.CRITICAL
    assert "6 h" in obs.summary


def test_one_failure_in_ten_requests_does_not_page() -> None:
    """The Workbook's low-traffic case: 10 requests an hour, one failure is a 100× burn
    over the hour, yet no window holds the 100 events the rule asks for."""
    rule = make_rule()
    per_minute = 10 / 60
    table = {s: window(s, per_minute=per_minute) for s in windows_of(rule)}
    table[H] = window(H, 0.1, per_minute=per_minute)  # 1 of 10 failed
    table[5 * MIN] = window(5 * MIN, 1.0, per_minute=1 / 5)  # the 1 request failed
    report, obs = observe(rule, table)
    assert obs.status == Status.OK and obs.severity is None
    assert report.pairs[0].reason == "few_events"
    assert report.burn[H] == pytest.approx(100)
    assert obs.summary == (
        "Checkout availability (SLO 99.9 % over 30 days) has too few events to judge its "
        "burn rate (5 min: 1 of 100, 30 min: 5 of 100, 1 h: 10 of 100, 2 h: 20 of 100, "
        "6 h: 60 of 100); 100 % of the budget left.")
    assert report.notes[2] == "too few events to judge 1 h: 10 of 100"
    # positive control: the same counts with min_events 1 page
    loud = make_rule(min_events=1)
    _, paged = observe(loud, table)
    assert paged.status == Status.ALERT and paged.severity == Severity.CRITICAL


def test_few_events_in_one_window_only_is_a_note_on_an_ok() -> None:
    rule = make_rule()
    table = counts(rule, w=window(5 * MIN, per_minute=1.6))  # 8 events in 5 min
    _, obs = observe(rule, table)
    assert obs.status == Status.OK
    assert obs.summary.endswith(" Too few events to judge 5 min: 8 of 100.")
    # positive control: enough events in 5 min and the same burn pages
    _, paged = observe(rule, burning(rule, 20, H, 5 * MIN))
    assert paged.status == Status.ALERT


# --- message ---------------------------------------------------------------------------

def test_alert_message_follows_the_standard() -> None:
    rule = make_rule()
    table = counts(rule, a=window(H, 0.0152), b=window(5 * MIN, 0.0148),
                   p=window(30 * D, 0.38 * 0.001))  # 38 % of the budget spent
    report, obs = observe(rule, table)
    assert obs.summary == (
        "Checkout availability (SLO 99.9 % over 30 days) is burning its error budget 15.2× "
        "too fast over the last 1 h and 14.8× over the last 5 min (expected below 14.4×, "
        "which spends 2 % of the budget in 1 h). At this rate the rest of the budget (62 %) "
        "is gone in 1 day 5 h.")
    assert obs.expected == "below 14.4× burn over 1 h and 5 min"
    assert obs.seen == "15.2× / 14.8×"
    assert obs.window == "1 h"
    assert obs.details["burn_1h"] == pytest.approx(15.2)
    assert obs.details["burn_5m"] == pytest.approx(14.8)
    assert obs.details["budget_remaining"] == pytest.approx(0.62)
    assert obs.details["sli"] == pytest.approx(1 - 0.00038)
    assert all(isinstance(v, float) for v in obs.details.values())
    # 62 % of 30 days' budget at 15.2×: 0.62 × 720 h / 15.2 = 29.37 h
    assert report.exhaustion == pytest.approx(timedelta(hours=0.62 * 720 / 15.2),
                                              abs=timedelta(seconds=1))


def test_burn_next_to_its_factor_shows_two_decimals() -> None:
    rule = make_rule()
    _, obs = observe(rule, burning(rule, 14.43, H, 5 * MIN))
    assert obs.status == Status.ALERT
    assert obs.seen == "14.43× / 14.43×"


def test_ok_message_follows_the_standard() -> None:
    rule = make_rule()
    table = counts(rule, a=window(H, 0.0004), b=window(30 * D, 0.13 * 0.001))
    _, obs = observe(rule, table)
    assert obs.summary == (
        "Checkout availability (SLO 99.9 % over 30 days) is within its error budget: "
        "burning 0.4× over the last 1 h; 87 % of the budget left.")
    assert obs.value == pytest.approx(0.4)
    assert obs.seen == "0.4× / 0×"


def test_ok_after_a_burst_says_the_burn_has_stopped() -> None:
    """The long window still averages a burst the short one has seen end: the message
    says the burn stopped instead of printing a page-sized number as "ok"."""
    rule = make_rule()
    _, obs = observe(rule, burning(rule, 50.3, H))  # 5 min healthy, 1 h at 50.3×
    assert obs.status == Status.OK
    assert obs.summary.startswith(
        "Checkout availability (SLO 99.9 % over 30 days) is within its error budget again: "
        "burning 0× over the last 5 min (below 14.4×); the last 1 h still averages 50.3×")
    # control: a long window under its factor keeps the plain sentence
    _, quiet = observe(rule, burning(rule, 3, H))
    assert "within its error budget: burning 3× over the last 1 h" in quiet.summary


def test_exhaustion_time_at_the_firing_burn() -> None:
    rule = make_rule()
    table = burning(rule, 20, H, 5 * MIN)
    table[30 * D] = window(30 * D, 0.5 * 0.001)  # half the budget spent
    report, obs = observe(rule, table)
    # 0.5 × 720 h / 20
    assert report.exhaustion == pytest.approx(timedelta(hours=18), abs=timedelta(seconds=1))
    assert obs.summary.endswith("At this rate the rest of the budget (50 %) is gone in 18 h.")
    assert obs.details["exhaustion_seconds"] == pytest.approx(18 * 3600)


def test_negative_budget_is_already_spent() -> None:
    rule = make_rule()
    table = burning(rule, 20, H, 5 * MIN)
    table[30 * D] = window(30 * D, 1.5 * 0.001)
    report, obs = observe(rule, table)
    assert report.budget_remaining == pytest.approx(-0.5)
    assert report.exhaustion is None
    assert obs.summary.endswith(
        "The error budget of the last 30 days is already spent (150 % used).")
    _, ok = observe(rule, counts(rule, p=window(30 * D, 1.5 * 0.001)))
    assert ok.status == Status.OK
    assert ok.summary.endswith("the budget is already spent (150 % used).")


def test_28_day_period_and_subject_fallbacks() -> None:
    rule = make_rule(period="28d", service="", description="Search latency")
    _, obs = observe(rule, burning(rule, 20, H, 5 * MIN))
    assert obs.summary.startswith("Search latency (SLO 99.9 % over 28 days) is burning")
    assert "(expected below 13.44×, which spends 2 % of the budget in 1 h)" in obs.summary
    bare = make_rule(service="")
    _, obs = observe(bare, counts(bare))
    assert obs.summary.startswith("checkout availability (SLO 99.9 % over 30 days)")


# --- bad input ---------------------------------------------------------------------------

def test_counts_must_cover_every_window() -> None:
    rule = make_rule()
    table = counts(rule)
    del table[5 * MIN]
    with pytest.raises(ValueError, match=r"lack the window.*5 min"):
        evaluate(rule, table)


@pytest.mark.parametrize(("good", "total", "message"), [
    (11, 10, "more good events than events in total"),
    (-1, 10, "must not be negative"),
    (float("nan"), 10, "must be numbers"),
])
def test_impossible_buckets_are_refused(good: float, total: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Bucket(NOW, NOW + MIN, good, total)
    assert Bucket(NOW, NOW + MIN, 10, 10).bad == 0  # positive control
