"""The Redis guide's hit-rate bands and sustained ops/s levels, as pure logic: each band
boundary, sustained vs a brief spike, the low-traffic guard, the off switches, the
quoted messages word for word, and the Upstash presets."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import Severity, Status
from alert_jobs.families.redis_quota.check import (
    HistorySample,
    HitRateSpec,
    HitWindow,
    OpsSpec,
    hit_window,
    judge_hit_rate,
    judge_ops_rate,
)
from alert_jobs.families.redis_quota.config import RedisQuotaDefaults
from alert_jobs.families.redis_quota.plans import PLANS, PRICING_SOURCE, payg_commands

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def reads(hits: float, misses: float, span: timedelta = QUARTER) -> HitWindow:
    return HitWindow(hits, misses, span)


# ----- hit-rate bands -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hits", "status", "severity", "band"),
    [
        pytest.param(800, Status.OK, None, "good", id="80-is-good"),
        pytest.param(799, Status.OK, None, "fair", id="79.9-is-fair"),
        pytest.param(500, Status.OK, None, "fair", id="50-is-not-bad"),
        pytest.param(499, Status.ALERT, Severity.WARNING, "bad", id="49.9-is-bad"),
        pytest.param(200, Status.ALERT, Severity.WARNING, "bad", id="20-is-not-terrible"),
        pytest.param(199, Status.ALERT, Severity.CRITICAL, "terrible", id="19.9-is-terrible"),
        pytest.param(0, Status.ALERT, Severity.CRITICAL, "terrible", id="0"),
    ],
)
def test_each_band_boundary(hits: int, status: Status, severity: Severity | None,
                            band: str) -> None:
    obs = judge_hit_rate("cache", reads(hits, 1000 - hits), HitRateSpec(), labels={"env": "p"})
    assert (obs.status, obs.severity) == (status, severity)
    assert obs.details["band"] == band
    assert obs.labels == {"env": "p", "check": "hit_rate"}
    assert f" is {band} (" in obs.summary
    assert obs.value == pytest.approx(hits / 10)


def test_golden_bad_message() -> None:
    obs = judge_hit_rate("cache", reads(350, 650), HitRateSpec(), labels={})
    assert obs.summary == ("hit rate 35 % over the last 15 minutes is bad (< 50 %): most "
                           "reads miss the cache — check key expiry (TTL) and eviction")
    assert obs.seen == "35 % (350 hits, 650 misses)"


def test_terrible_message_says_what_it_means() -> None:
    obs = judge_hit_rate("cache", reads(120, 880), HitRateSpec(), labels={})
    assert obs.summary.startswith("hit rate 12 % over the last 15 minutes is terrible "
                                  "(< 20 %): the cache is barely used: no caching or wrong "
                                  "cache keys")


def test_low_traffic_is_not_judged_and_says_so() -> None:
    quiet = judge_hit_rate("cache", reads(0, 99), HitRateSpec(), labels={})
    assert quiet.status == Status.OK and quiet.severity is None
    assert quiet.summary == ("hit rate not judged: only 99 reads over the last 15 minutes "
                             "(fewer than 100), too few to say how well the cache works")
    assert quiet.details["low_traffic"] is True and quiet.details["judged"] is False
    # Positive control: one read more, the same 0 % hit rate is terrible.
    busy = judge_hit_rate("cache", reads(0, 100), HitRateSpec(), labels={})
    assert (busy.status, busy.severity) == (Status.ALERT, Severity.CRITICAL)


def test_a_band_turned_off_no_longer_alerts() -> None:
    spec = HitRateSpec(terrible=None)
    obs = judge_hit_rate("cache", reads(100, 900), spec, labels={})
    assert (obs.status, obs.severity, obs.details["band"]) == (Status.ALERT,
                                                               Severity.WARNING, "bad")
    neither = judge_hit_rate("cache", reads(100, 900), HitRateSpec(bad=None, terrible=None),
                             labels={})
    assert neither.status == Status.OK


def sample(minutes: float, increment: float = 0, hits: float | None = None,
           misses: float | None = None, server: str = "a") -> HistorySample:
    return HistorySample(T0 + timedelta(minutes=minutes), increment, server, hits, misses)


def test_hit_window_takes_the_samples_of_the_window_and_survives_a_restart() -> None:
    history = [sample(0, hits=0, misses=0), sample(5, hits=100, misses=900),
               sample(10, hits=200, misses=1800), sample(15, hits=300, misses=2700),
               # restart: the counters start from zero on another server
               sample(20, hits=40, misses=60, server="b")]
    got = hit_window(history, T0 + timedelta(minutes=20), QUARTER)
    assert got == HitWindow(hits=100 + 100 + 40, misses=900 + 900 + 60,
                            span=timedelta(minutes=15))
    # Checks further apart than the window: the last interval.
    sparse = [sample(0, hits=0, misses=0), sample(30, hits=10, misses=990)]
    assert hit_window(sparse, T0 + timedelta(minutes=30), QUARTER) == HitWindow(
        10, 990, timedelta(minutes=30))
    assert hit_window(sparse[:1], T0, QUARTER) is None


# ----- ops/s levels -------------------------------------------------------------------


def steady(rate: float, minutes: list[float]) -> list[HistorySample]:
    """Samples at ``minutes`` with ``rate`` ops/s between each."""
    out = [sample(minutes[0])]
    for prev, cur in itertools.pairwise(minutes):
        out.append(sample(cur, increment=rate * (cur - prev) * 60))
    return out


def test_golden_dangerous_message() -> None:
    obs = judge_ops_rate("cache", steady(1500, [0, 5, 10]), OpsSpec(), labels={"env": "p"})
    assert obs.summary == ("ops/s has stayed above 1,000 for 10 minutes: this is usually a "
                           "cache bug or an infinite loop — look for tight polling loops")
    assert (obs.status, obs.severity) == (Status.ALERT, Severity.CRITICAL)
    assert obs.labels == {"env": "p", "check": "ops_rate"}
    assert obs.seen.startswith("1,500.0 ops/s over the last 5 minutes; at or above 1,000 for "
                               "10 minutes")
    assert "polling loops" in obs.details["first_steps"]


def test_a_brief_spike_is_not_sustained() -> None:
    history = steady(10, [0, 5]) + steady(5000, [5, 10])[1:]
    obs = judge_ops_rate("cache", history, OpsSpec(), labels={})
    assert obs.status == Status.OK
    assert "above 1,000 for 5 minutes so far, dangerous once it holds for 10 minutes" \
        in obs.summary
    # Positive control: five minutes more of it, and it has held.
    longer = [*history, sample(15, increment=5000 * 300)]
    assert judge_ops_rate("cache", longer, OpsSpec(), labels={}).severity == Severity.CRITICAL


def test_a_spike_that_ended_does_not_count() -> None:
    history = [*steady(5000, [0, 5, 10]), sample(15, increment=50 * 300)]
    assert judge_ops_rate("cache", history, OpsSpec(), labels={}).status == Status.OK


@pytest.mark.parametrize(
    ("rate", "status", "severity"),
    [
        pytest.param(99.9, Status.OK, None, id="under-high"),
        pytest.param(100, Status.ALERT, Severity.WARNING, id="100-is-high"),
        pytest.param(999.9, Status.ALERT, Severity.WARNING, id="under-dangerous"),
        pytest.param(1000, Status.ALERT, Severity.CRITICAL, id="1000-is-dangerous"),
    ],
)
def test_each_level_boundary(rate: float, status: Status, severity: Severity | None) -> None:
    obs = judge_ops_rate("cache", steady(rate, [0, 15]), OpsSpec(), labels={})
    assert (obs.status, obs.severity) == (status, severity)


def test_high_message_and_a_level_turned_off() -> None:
    high = judge_ops_rate("cache", steady(250, [0, 15]), OpsSpec(), labels={})
    assert high.summary.startswith("ops/s has stayed above 100 for 10 minutes: heavy usage")
    off = judge_ops_rate("cache", steady(250, [0, 15]), OpsSpec(high=None), labels={})
    assert off.status == Status.OK
    # Positive control for the dangerous level still on without high.
    assert judge_ops_rate("cache", steady(2500, [0, 15]), OpsSpec(high=None),
                          labels={}).severity == Severity.CRITICAL


def test_one_sample_is_no_rate() -> None:
    obs = judge_ops_rate("cache", [sample(0)], OpsSpec(), labels={})
    assert obs.status == Status.OK and obs.value is None


# ----- configuration --------------------------------------------------------------------


def rules(target: str = "", defaults: str = "") -> object:
    return parse_rules(f"""
receivers: [{{name: console, type: console}}]
{defaults}
checks:
  redis_quota:
    - {{name: cache, url: 'redis://127.0.0.1:1/0', quota: {{window: day, limit: 1000}}{target}}}
""")


def specs(target: str = "", defaults: str = "") -> tuple[object, object]:
    parsed = rules(target, defaults)
    t = parsed.checks.redis_quota[0]  # type: ignore[attr-defined]
    d = parsed.section(RedisQuotaDefaults)  # type: ignore[attr-defined]
    return t.hit_rate_spec(d), t.ops_spec(d)


def test_defaults_match_the_guide() -> None:
    hit, ops = specs()
    assert (hit.good_at, hit.bad.below, hit.terrible.below) == (80, 50, 20)
    assert (hit.bad.severity, hit.terrible.severity) == (Severity.WARNING, Severity.CRITICAL)
    assert (ops.high.above, ops.dangerous.above) == (100, 1000)
    assert ops.dangerous.for_ == timedelta(minutes=10)


def test_configurable_per_target_and_in_family_defaults() -> None:
    hit, ops = specs(", hit_rate: {bad: {below: 40, severity: critical}, window: 5m}, "
                     "ops_rate: {dangerous: {above: 500, for: 2m}, high: null}")
    assert (hit.bad.below, hit.bad.severity, hit.window) == (40, Severity.CRITICAL,
                                                              timedelta(minutes=5))
    assert ops.high is None and (ops.dangerous.above, ops.dangerous.for_) == (
        500, timedelta(minutes=2))
    hit, ops = specs(defaults="redis_quota_defaults: {hit_rate: null, "
                              "ops_rate: {dangerous: {for: 30m}}}")
    assert hit is None and ops.dangerous.for_ == timedelta(minutes=30)
    # A target's own section wins over the family's off switch.
    hit, _ = specs(", hit_rate: {}", defaults="redis_quota_defaults: {hit_rate: null}")
    assert hit is not None


def test_off_per_target() -> None:
    assert specs(", hit_rate: null, ops_rate: null") == (None, None)
    # The older shorthand still works: null is off, a number is the bad band.
    assert specs(", hit_rate_min_percent: null")[0] is None
    hit, _ = specs(", hit_rate_min_percent: 60, min_lookups: 10")
    assert (hit.bad.below, hit.terrible.below, hit.min_reads) == (60, 20, 10)
    # A shorthand at or under the terrible band keeps its one warning band (as before the
    # bands: below 10 % warns, nothing pages); 0 (allowed before) is off.
    hit, _ = specs(", hit_rate_min_percent: 10")
    assert (hit.bad.below, hit.bad.severity, hit.terrible) == (10, Severity.WARNING, None)
    assert specs(", hit_rate_min_percent: 0")[0] is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param(", hit_rate: {bad: {below: 10}, terrible: {below: 30}}",
                     "hit_rate.terrible.below (30.0 %) is above bad.below (10.0 %)",
                     id="bands-out-of-order"),
        pytest.param(", ops_rate: {high: {above: 2000}}",
                     "ops_rate.high.above (2000.0) must be below dangerous.above (1000.0)",
                     id="levels-out-of-order"),
        pytest.param(", hit_rate: {}, hit_rate_min_percent: 40",
                     "hit_rate_min_percent and hit_rate: both set the hit-rate check",
                     id="shorthand-and-section"),
        pytest.param(", ops_rate: {dangerous: {for: soon}}", "for", id="bad-duration"),
        pytest.param(", hit_rate: {bad: {severity: loud}}", "severity", id="bad-severity"),
    ],
)
def test_bad_configuration_is_a_clear_error(target: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        rules(target)
    assert message in str(err.value)


# ----- Upstash presets --------------------------------------------------------------------


def quota_of(quota: str) -> tuple[str | None, int | None]:
    parsed = parse_rules(f"""
receivers: [{{name: console, type: console}}]
checks:
  redis_quota:
    - {{name: cache, url: 'redis://127.0.0.1:1/0', quota: {quota}}}
""")
    q = parsed.checks.redis_quota[0].quota  # type: ignore[attr-defined]
    return q.window, q.limit


def test_presets_come_from_upstash_pricing_with_their_source() -> None:
    assert PRICING_SOURCE == "upstash/docs redis/overall/billing.mdx @ ef0ce43, read 2026-11-30"
    assert all(p.source == PRICING_SOURCE for p in PLANS.values())
    assert PLANS["upstash_free"].monthly_commands == 500_000
    assert PLANS["upstash_fixed_500gb"].commands_per_second == 16_000
    assert quota_of("{preset: upstash_free}") == ("month", 500_000)
    assert quota_of("{preset: upstash_payg, budget_usd: 20}") == ("month", 10_000_000)
    assert payg_commands(0.2) == 100_000
    assert quota_of("{preset: upstash_free_legacy_daily}") == ("day", 10_000)


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        pytest.param("{preset: upstash_payg}", "upstash_payg has no command quota of its own: "
                     "give budget_usd", id="payg-without-budget"),
        pytest.param("{preset: upstash_fixed_1gb}", "upstash_fixed_1gb has no command quota "
                     "(Fixed 1 GB: a flat $20 / month, capped at 10,000 commands/s and 1 GB",
                     id="fixed-has-no-quota"),
        pytest.param("{preset: upstash_free, budget_usd: 5}", "budget_usd is the monthly "
                     "budget of a Pay-as-you-go database", id="budget-without-payg"),
        pytest.param("{preset: upstash_pro}", "upstash_fixed_250mb", id="unknown-preset"),
    ],
)
def test_bad_presets_are_clear_errors(quota: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        quota_of(quota)
    assert message in str(err.value)


def test_cli_lists_the_presets_with_source_and_date(capsys: pytest.CaptureFixture[str]) -> None:
    from alert_jobs.cli.main import main

    assert main(["redis", "presets"]) == 0
    out = capsys.readouterr().out
    assert "upstash_free " in out and "500,000 / month" in out
    assert "upstash_fixed_500gb" in out and "$1,500 / month" in out
    assert "upstash/docs redis/overall/billing.mdx @ ef0ce43, read 2026-11-30" in out
