"""The baseline maths on numbers: slots across DST, robust bands, learning, shifts,
the message and the backfill order."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alert_jobs.core.baseline import (
    Point,
    Settings,
    Shift,
    adjusted,
    assess,
    backfill_times,
    band,
    details,
    due_for_adoption,
    history_start,
    live_shifts,
    new_shift,
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
    flat = [5.0] * 30
    assert band(flat, Settings()).upper == 5.0  # no spread, no floor: any change is news
    floored = band(flat, Settings(floor=2))
    assert (floored.lower, floored.upper) == (3.0, 7.0)
    above = band([10, 11, 12, 9, 8] * 5, Settings(direction="above"))
    assert above.lower == -math.inf and above.upper > 12
    below = band([10, 11, 12, 9, 8] * 5, Settings(direction="below"))
    assert below.upper == math.inf and below.lower < 8
    wide = band([10, 11, 12, 9, 8] * 5, Settings(width=6))
    assert wide.upper - wide.expected == pytest.approx(2 * (band(
        [10, 11, 12, 9, 8] * 5, Settings()).upper - wide.expected))


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
    hist = _history([100.0] * 25)
    assert assess(110, hist, s, now=NOW, timezone="UTC").crossed is None
    assert assess(89.9, hist, s, now=NOW, timezone="UTC").crossed == "lower"


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


def test_adoption_only_after_adopt_after_of_a_crossed_band() -> None:
    hist = _history([100.0 + i % 3 for i in range(30)])
    s = Settings(adopt_after=timedelta(hours=6))
    out = assess(500, hist, s, now=NOW, timezone="UTC")
    inside = assess(101, hist, s, now=NOW, timezone="UTC")
    assert due_for_adoption(out, NOW - timedelta(hours=6), NOW, s)
    assert not due_for_adoption(out, NOW - timedelta(hours=5), NOW, s)
    assert not due_for_adoption(out, None, NOW, s)
    assert not due_for_adoption(inside, NOW - timedelta(days=3), NOW, s)
    assert not due_for_adoption(out, NOW - timedelta(days=3), NOW, Settings(adopt_after=None))
    shift = new_shift([395, 400, 405, 5000], NOW - timedelta(hours=6), NOW)
    assert shift.offset == 402.5 and shift.adopted_at == NOW
    shift = new_shift([395, 400, 405], NOW - timedelta(hours=6), NOW)
    after = assess(500, hist, s, now=NOW, timezone="UTC",
                   shifts=[Shift(NOW + timedelta(seconds=1), NOW, shift.offset)])
    assert after.crossed is None  # the old level, moved up by the offset, holds 500


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
