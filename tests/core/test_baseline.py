"""The baseline maths on numbers: slots across DST, robust bands, learning, shifts,
the message and the backfill order."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alert_jobs.core.baseline import (
    RECENT,
    RECENT_MIN,
    Learner,
    Point,
    Recent,
    Settings,
    Shift,
    adjusted,
    adoption,
    assess,
    backfill_times,
    band,
    details,
    history_start,
    level_of,
    live_shifts,
    season_phrase,
    slot_label,
    slot_ranges,
    summary,
)

NOW = datetime(2026, 11, 24, 14, 7, tzinfo=UTC)  # a Tuesday
WEEKS4 = timedelta(days=28)


def test_hour_of_week_slots_are_the_same_time_in_each_past_week_oldest_first() -> None:
    ranges = slot_ranges(NOW, "hour_of_week", WEEKS4, "UTC")
    assert len(ranges) == 4
    for k, (lo, hi) in zip((4, 3, 2, 1), ranges, strict=True):
        t = NOW - timedelta(weeks=k)
        assert (lo, hi) == (t - timedelta(minutes=30), t + timedelta(minutes=30))
        assert lo.weekday() == 1  # Tuesdays
    assert ranges[0][0] == NOW - WEEKS4 - timedelta(minutes=30)
    assert history_start(NOW, "hour_of_week", WEEKS4) == ranges[0][0]
    assert history_start(NOW, "none", WEEKS4) == NOW - WEEKS4


def test_hour_of_day_gives_a_range_per_past_day_and_none_the_whole_history() -> None:
    assert len(slot_ranges(NOW, "hour_of_day", timedelta(days=14), "UTC")) == 14
    assert slot_ranges(NOW, "none", timedelta(days=7), "UTC") == [(NOW - timedelta(days=7),
                                                                   NOW)]


def test_slots_keep_the_local_wall_clock_across_a_dst_change() -> None:
    """Berlin leaves summer time on 2026-10-25: Tuesday 14:00 CET on 2026-10-27 is 13:00
    UTC; the Tuesday before (CEST) 14:00 local is 12:00 UTC, not 13:00."""
    zone = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 10, 27, 14, 0, tzinfo=zone).astimezone(UTC)
    (lo, hi), = slot_ranges(now, "hour_of_week", timedelta(days=7), "Europe/Berlin")
    assert lo + timedelta(minutes=30) == datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    assert hi - lo == timedelta(hours=1)
    assert slot_label(now, "hour_of_week", "Europe/Berlin") == "Tuesday 14:00"
    assert slot_label(now, "hour_of_day", "Europe/Berlin") == "14:00"
    assert slot_label(now, "none", "UTC") == "any time"


def test_an_unknown_season_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown season 'hourly'"):
        slot_ranges(NOW, "hourly", WEEKS4, "UTC")


def test_season_phrases() -> None:
    assert season_phrase("hour_of_week", WEEKS4) == \
        "from the same hour of the week over the last 4 weeks"
    assert season_phrase("hour_of_day", timedelta(days=10)) == \
        "from the same hour of the day over the last 10 days"
    assert season_phrase("none", timedelta(days=1)) == "from the last day"


def test_the_band_is_median_and_mad_so_an_old_incident_does_not_widen_it() -> None:
    rng = random.Random(7)
    calm = [1000 + rng.gauss(0, 50) for _ in range(48)]
    with_incident = calm[:40] + [10_000.0] * 8  # a sixth of the history was a spike
    s = Settings()
    quiet, noisy = band(calm, s), band(with_incident, s)
    assert 30 < quiet.spread < 70  # ≈ the true 50
    assert noisy.upper < quiet.upper * 1.1  # the spike barely moves the band
    # a mean ± 3 standard deviations would have swallowed a doubling of the traffic:
    mean = sum(with_incident) / len(with_incident)
    sd = math.sqrt(sum((v - mean) ** 2 for v in with_incident) / len(with_incident))
    assert mean + 3 * sd > 2000 > noisy.upper


def test_direction_floor_and_width() -> None:
    flat = [5.5] * 30  # a measurement, not a count: no spread of its own
    assert band(flat, Settings()).upper == 5.5  # no spread, no floor: any change is news
    floored = band(flat, Settings(floor=2))
    assert (floored.lower, floored.upper) == (3.5, 7.5)
    wobbly = [10.5, 11.5, 12.5, 9.5, 8.5] * 5
    above = band(wobbly, Settings(direction="above"))
    assert above.lower == -math.inf and above.upper > 12.5
    below = band(wobbly, Settings(direction="below"))
    assert below.upper == math.inf and below.lower < 8.5
    wide = band(wobbly, Settings(width=8))
    assert wide.upper - wide.expected == pytest.approx(2 * (band(
        wobbly, Settings()).upper - wide.expected))


def _history(values: list[float]) -> list[Point]:
    return [Point(NOW - timedelta(hours=i + 1), v) for i, v in enumerate(values)]


def test_learning_until_min_points_then_a_band() -> None:
    s = Settings(min_points=20)
    early = assess(5000, _history([100.0] * 12), s, now=NOW, timezone="UTC")
    assert early.band is None and not early.is_alert
    assert early.learning == "learning: 12 of 20 points for Tuesday 14:00"
    assert details(early)["expected_value"] is None
    ready = assess(5000, _history([100.0 + i % 5 for i in range(20)]), s, now=NOW,
                   timezone="UTC")
    assert ready.learning is None and ready.crossed == "upper" and ready.is_alert


def test_a_value_on_the_bound_is_inside_and_below_is_lower() -> None:
    s = Settings(floor=10)
    hist = _history([100.5] * 25)
    assert assess(110.5, hist, s, now=NOW, timezone="UTC").crossed is None
    assert assess(90.4, hist, s, now=NOW, timezone="UTC").crossed == "lower"


def test_the_message_reads_like_the_standard() -> None:
    hist = _history([1200 + d for d in (-50, 0, 50) * 8])
    a = assess(310, hist, Settings(), now=NOW, timezone="UTC")
    text = summary("orders", "1 hour", a, "310")
    assert text.startswith("Expected orders in the last hour to be about 1,200 (")
    assert text.endswith(", from the same hour of the week over the last 4 weeks), got 310")
    d = details(a)
    assert d["crossed"] == "lower" and d["expected_value"] == 1200
    assert d["lower"] is not None and d["upper"] is not None and d["lower"] < 1200 < d["upper"]
    one_sided = assess(310, hist, Settings(direction="above"), now=NOW, timezone="UTC")
    assert one_sided.crossed is None and details(one_sided)["lower"] is None
    assert "to be at most" in one_sided.expected_text
    learning = assess(3, hist[:3], Settings(), now=NOW, timezone="UTC")
    assert summary("orders", "30 minutes", learning, "3").endswith(
        "got 3 (learning: 3 of 20 points for Tuesday 14:00)")


def test_shifts_re_level_older_points_and_expire_with_the_history() -> None:
    since = NOW - timedelta(days=2)
    points = [Point(since - timedelta(days=1), 100), Point(since + timedelta(hours=1), 300)]
    shift = Shift(since, NOW - timedelta(days=1), 200)
    assert adjusted(points, [shift]) == [300, 300]
    two = [shift, Shift(since + timedelta(minutes=30), NOW, -50)]
    assert adjusted(points, two) == [250, 300]
    assert live_shifts([shift], NOW, timedelta(days=7)) == [shift]
    assert live_shifts([shift], NOW, timedelta(days=1)) == []


def _window(values: list[float], expected: float, *, hours: float = 6,
            alerting: bool = True) -> list[Recent]:
    """Evaluations every 5 minutes over the last ``hours``, oldest first."""
    n = int(hours * 12)
    return [Recent(NOW - timedelta(minutes=5 * (n - i)), values[i % len(values)], expected,
                   alerting) for i in range(n)]


def test_a_lasting_level_is_adopted_by_the_sign_test_with_a_factor() -> None:
    hist = _history([100.0 + i % 3 for i in range(30)])
    s = Settings(adopt_after=timedelta(hours=6))
    out = assess(180, hist, s, now=NOW, timezone="UTC")
    assert out.crossed == "upper"
    # six hours of ~1.8×, a few of them back inside the band (at night): adopted
    lasting = _window([175, 185, 180, 101], 100.0)
    shift = adoption(out, lasting, 180, [], NOW, s)
    assert shift is not None and shift.factor == pytest.approx(1.8, abs=0.05)
    assert shift.offset == 0 and shift.adopted_at == NOW
    assert shift.since == lasting[0].at  # the first alerting evaluation on that side
    after = assess(180, hist, s, now=NOW, timezone="UTC", shifts=[shift])
    assert after.crossed is None  # the old level, scaled, holds the new one
    # positive controls: nothing when …
    half = _window([180, 100, 99, 98], 100.0)  # … only a quarter lay above
    assert adoption(out, half, 180, [], NOW, s) is None
    short = _window([180], 100.0, hours=4)  # … the evaluations span only 4 of 6 hours
    assert adoption(out, short, 180, [], NOW, s) is None
    recent_shift = [replace_at(shift, NOW - timedelta(hours=1))]  # … adopted an hour ago
    assert adoption(out, lasting, 180, recent_shift, NOW, s) is None
    assert adoption(out, lasting, 180, [], NOW, Settings(adopt_after=None)) is None
    inside = assess(101, hist, s, now=NOW, timezone="UTC")
    assert adoption(inside, lasting, 101, [], NOW, s) is None


def replace_at(shift: Shift, adopted_at: datetime) -> Shift:
    return Shift(shift.since, adopted_at, shift.offset, shift.factor)


def test_a_metric_around_zero_adopts_an_offset() -> None:
    hist = _history([-1.0, 0.0, 1.0] * 10)
    s = Settings(adopt_after=timedelta(hours=6), floor=1)
    out = assess(-20, hist, s, now=NOW, timezone="UTC")
    shift = adoption(out, _window([-20, -21, -19], 0.0), -20, [], NOW, s)
    assert shift is not None and shift.factor == 1 and shift.offset == pytest.approx(-20)
    assert adjusted([Point(NOW - timedelta(days=8), 1.0)], [shift]) == [-19.0]


def test_today_s_level_scales_the_band_from_the_last_hours() -> None:
    hist = _history([1000.0 + d for d in (-30, 0, 30) * 10])
    s = Settings()
    busy = _window([1200.0], 1000.0, alerting=False)  # a sale: the day runs 20 % above
    assert level_of(busy) == pytest.approx(1.2)
    plain = assess(1200, hist, s, now=NOW, timezone="UTC")
    today = assess(1200, hist, s, now=NOW, timezone="UTC", recent=busy)
    assert plain.crossed == "upper" and today.crossed is None  # the positive control
    assert today.band is not None and today.band.level == pytest.approx(1.2)
    assert today.band.expected == pytest.approx(1200)
    assert details(today)["level"] == pytest.approx(1.2)
    # alerting evaluations do not move the level (an incident is not the new normal) …
    assert level_of(_window([1200.0], 1000.0, alerting=True)) == 1.0
    # … nor do too few, or a metric that is not positive
    assert level_of(busy[:RECENT_MIN - 1]) == 1.0
    assert level_of(_window([5.0], -3.0, alerting=False)) == 1.0
    assert timedelta(hours=6) == RECENT


def test_counts_keep_a_poisson_spread_and_other_values_do_not() -> None:
    agreed = [400.0] * 30  # four weeks that agreed exactly
    b = band(agreed, Settings())
    assert b.spread == pytest.approx(20) and b.upper == pytest.approx(480)  # √400 × 4
    measured = band([400.5] * 30, Settings())  # not a count: no floor of its own
    assert measured.spread == 0 and measured.upper == 400.5


def test_the_learner_judges_like_the_pieces_and_keeps_alerts_out_of_its_history() -> None:
    s = Settings(season="none", history=timedelta(days=1), min_points=10, width=4)
    learner = Learner(s, "UTC")
    start = NOW - timedelta(hours=3)
    learner.learn([Point(start - timedelta(minutes=5 * (i + 1)), 100.0 + i % 5)
                   for i in range(20)])
    first = learner.evaluate(101, start)
    assert first.crossed is None and first.band is not None
    spike = learner.evaluate(500, start + timedelta(minutes=5))
    assert spike.crossed == "upper"
    assert all(p.value != 500 for p in learner.slot(start + timedelta(minutes=10)))
    assert any(p.value == 101 for p in learner.slot(start + timedelta(minutes=10)))
    with pytest.raises(ValueError, match="time order"):
        learner.record(start, 1.0, None, alerting=False)


def test_backfill_times_cover_the_history_before_the_first_evaluation_slot_first() -> None:
    step = timedelta(minutes=5)
    times = backfill_times(NOW, step, WEEKS4, "hour_of_week", "UTC", before=NOW)
    assert len(times) == len(set(times)) == 28 * 24 * 12 + 6
    assert max(times) == NOW - step
    assert min(times) >= history_start(NOW, "hour_of_week", WEEKS4)
    # the first 54: the current slot of the 4 past weeks (±30 minutes: 48) and this
    # week's last half hour (6: next week's slot)
    slots = slot_ranges(NOW, "hour_of_week", WEEKS4, "UTC")
    first = [t for t in times[:54] if any(lo <= t < hi for lo, hi in slots)]
    assert len(first) == 48
    assert all(not any(lo <= t < hi for lo, hi in slots) for t in times[54:])
    newest = backfill_times(NOW, step, timedelta(days=1), "none", "UTC", before=NOW)
    assert newest == sorted(newest, reverse=True)
    later = backfill_times(NOW, step, WEEKS4, "hour_of_day", "UTC",
                           before=NOW - timedelta(days=27))
    assert all(t < NOW - timedelta(days=27) for t in later) and len(later) == 12 * 24 + 6
    with pytest.raises(ValueError, match="longer than 0s"):
        backfill_times(NOW, timedelta(0), WEEKS4, "none", "UTC", before=NOW)
