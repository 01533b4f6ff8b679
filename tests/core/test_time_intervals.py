"""Time intervals as Alertmanager reads them (timeinterval.go, docs/configuration.md):
pure matching and the parsers' refusals. Each "does not match" sits beside a "matches"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alert_jobs.core import time_intervals as ti
from alert_jobs.core.time_intervals import IntervalEntry, Span, TimeInterval, time_mute


def at(text: str) -> datetime:
    """An instant written in UTC, ``2026-12-01 01:30``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def entry(**fields) -> IntervalEntry:
    """An entry from rules-file text, through the same parsers the rules file uses."""
    parse = {"weekdays": ti.weekday_span, "days_of_month": ti.day_of_month_span,
             "months": ti.month_span, "years": ti.year_span}
    out = {}
    for key, values in fields.items():
        if key == "times":
            out[key] = tuple(ti.time_range(a, b) for a, b in values)
        elif key == "location":
            out[key] = ti.location(values)
        else:
            out[key] = tuple(parse[key](v) for v in values)
    return IntervalEntry(**out)


# ----- times: [start, end) -----------------------------------------------------------

def test_times_include_the_start_and_exclude_the_end():
    evening = entry(times=[("17:00", "24:00")])
    assert evening.contains(at("2026-12-01 17:00"))
    assert evening.contains(at("2026-12-01 23:59"))
    assert not evening.contains(at("2026-12-01 16:59"))
    assert not evening.contains(at("2026-12-02 00:00"))  # 24:00 is the next day's 00:00


def test_any_time_range_of_an_entry_matches():
    night = entry(times=[("22:00", "24:00"), ("00:00", "06:00")])  # over midnight: two ranges
    assert night.contains(at("2026-12-01 23:00"))
    assert night.contains(at("2026-12-01 05:59"))
    assert not night.contains(at("2026-12-01 06:00"))
    assert not night.contains(at("2026-12-01 21:59"))


def test_a_range_over_midnight_is_refused():
    with pytest.raises(ti.TimeIntervalError, match="two ranges"):
        ti.time_range("22:00", "06:00")
    with pytest.raises(ti.TimeIntervalError, match="must be after"):
        ti.time_range("10:00", "10:00")  # empty: Alertmanager refuses equal times too
    assert ti.time_range("00:00", "24:00") == ti.TimeRange(0, 1440)


@pytest.mark.parametrize("text", ["9:00", "24:01", "25:00", "12:60", "1200", "12:00:00", ""])
def test_times_are_two_digit_hours_and_minutes(text):
    with pytest.raises(ti.TimeIntervalError, match="HH:MM"):
        ti.parse_time(text)


def test_times_read():
    assert ti.parse_time("09:05") == 545
    assert ti.parse_time("24:00") == 1440


# ----- weekdays -----------------------------------------------------------------------

def test_weekday_ranges_are_inclusive_and_the_week_starts_on_sunday():
    workweek = entry(weekdays=["monday:friday"])
    monday, friday = at("2026-11-30 12:00"), at("2026-12-04 12:00")
    saturday, sunday = at("2026-12-05 12:00"), at("2026-11-29 12:00")
    assert workweek.contains(monday) and workweek.contains(friday)
    assert not workweek.contains(saturday) and not workweek.contains(sunday)
    weekend = entry(weekdays=["saturday", "Sunday"])  # names in any case, as Alertmanager
    assert weekend.contains(saturday) and weekend.contains(sunday)
    assert not weekend.contains(monday)
    assert ti.weekday_span("sunday:saturday") == Span(0, 6)


def test_a_weekday_range_across_the_weekend_is_refused():
    with pytest.raises(ti.TimeIntervalError, match="ends before it starts"):
        ti.weekday_span("saturday:sunday")
    with pytest.raises(ti.TimeIntervalError, match="not a weekday"):
        ti.weekday_span("mon")
    with pytest.raises(ti.TimeIntervalError, match="range like monday:friday"):
        ti.weekday_span("monday:wednesday:friday")


# ----- days of the month ---------------------------------------------------------------

def test_negative_days_count_from_the_end_of_each_month():
    last_three = entry(days_of_month=["-3:-1"])
    assert [d for d in range(20, 32) if last_three.contains(at(f"2026-01-{d:02d} 12:00"))] \
        == [29, 30, 31]
    assert [d for d in range(20, 29) if last_three.contains(at(f"2026-02-{d:02d} 12:00"))] \
        == [26, 27, 28]
    assert [d for d in range(20, 30) if last_three.contains(at(f"2028-02-{d:02d} 12:00"))] \
        == [27, 28, 29]  # a leap year


def test_day_ranges_are_clipped_to_the_month():
    assert entry(days_of_month=["1:31"]).contains(at("2026-02-28 12:00"))
    late = entry(days_of_month=["30:31"])
    assert not any(late.contains(at(f"2026-02-{d:02d} 12:00")) for d in range(1, 29))
    assert late.contains(at("2026-03-30 12:00"))  # positive control: a long month
    everything = entry(days_of_month=["-31:-1"])  # reaches before February's first day
    assert everything.contains(at("2026-02-01 12:00"))


def test_first_and_one_day():
    days = entry(days_of_month=["1:5", "15"])
    assert days.contains(at("2026-12-05 23:59")) and days.contains(at("2026-12-15 00:00"))
    assert not days.contains(at("2026-12-06 00:00")) and not days.contains(at("2026-12-14 12:00"))


@pytest.mark.parametrize("text,reason", [
    ("0", "not a day of the month"), ("32", "not a day of the month"),
    ("-32", "not a day of the month"), ("-1:5", "must end there too"),
    ("5:1", "ends before it starts"), ("-1:-3", "ends before it starts"),
    ("x", "not a valid day"),
])
def test_bad_days_are_refused(text, reason):
    with pytest.raises(ti.TimeIntervalError, match=reason):
        ti.day_of_month_span(text)


def test_a_positive_start_may_end_counting_from_the_end():
    # Alertmanager accepts 1:-1 (the whole month): checked against the shortest month.
    assert ti.day_of_month_span("1:-1") == Span(1, -1)
    assert entry(days_of_month=["1:-1"]).contains(at("2026-02-28 12:00"))


# ----- months and years ------------------------------------------------------------------

def test_months_by_name_or_number_and_ranges():
    q1_and_december = entry(months=["january:march", "12"])
    assert q1_and_december.contains(at("2026-01-01 00:00"))
    assert q1_and_december.contains(at("2026-03-31 23:59"))
    assert q1_and_december.contains(at("2026-12-01 12:00"))
    assert not q1_and_december.contains(at("2026-04-01 00:00"))
    assert ti.month_span("1:3") == ti.month_span("January:MARCH") == Span(1, 3)
    for bad, reason in [("13", "not a month"), ("march:january", "ends before"),
                        ("jan", "not a month")]:
        with pytest.raises(ti.TimeIntervalError, match=reason):
            ti.month_span(bad)


def test_years():
    years = entry(years=["2026:2027", "2030"])
    assert years.contains(at("2026-01-01 00:00")) and years.contains(at("2027-12-31 23:59"))
    assert years.contains(at("2030-06-01 00:00"))
    assert not years.contains(at("2028-06-01 00:00"))
    with pytest.raises(ti.TimeIntervalError, match="ends before"):
        ti.year_span("2027:2026")


# ----- all fields must match; any entry matches ------------------------------------------

def test_every_field_given_must_match_and_a_missing_field_matches_everything():
    window = entry(weekdays=["tuesday"], times=[("02:00", "04:00")], months=["december"])
    assert window.contains(at("2026-12-01 02:30"))  # a Tuesday in December, at 02:30
    assert not window.contains(at("2026-12-01 04:30"))  # wrong time
    assert not window.contains(at("2026-12-02 02:30"))  # wrong weekday
    assert not window.contains(at("2026-11-24 02:30"))  # a Tuesday, wrong month
    assert IntervalEntry().contains(at("2026-12-01 02:30"))  # nothing given: always
    assert IntervalEntry(times=()).contains(at("2026-12-01 02:30"))  # empty list: the same


def test_an_interval_is_active_when_any_entry_matches():
    interval = TimeInterval("quiet", (entry(weekdays=["saturday", "sunday"]),
                                      entry(times=[("00:00", "06:00")])))
    assert interval.contains(at("2026-12-05 12:00"))  # the weekend entry
    assert interval.contains(at("2026-12-01 03:00"))  # the night entry
    assert not interval.contains(at("2026-12-01 12:00"))  # neither
    assert not TimeInterval("empty").contains(at("2026-12-01 12:00"))  # no entries: never


# ----- locations ------------------------------------------------------------------------

def test_times_are_read_on_the_locations_clock_across_daylight_saving():
    office = entry(times=[("09:00", "17:00")], location="Europe/Berlin")
    # Winter: Berlin is UTC+1, so the day starts at 08:00 UTC.
    assert office.contains(at("2026-12-01 08:00"))
    assert not office.contains(at("2026-12-01 07:59"))
    assert not office.contains(at("2026-12-01 16:00"))
    # Summer: UTC+2, the day starts at 07:00 UTC.
    assert office.contains(at("2026-07-01 07:00"))
    assert not office.contains(at("2026-07-01 06:59"))
    # Without a location the times are UTC.
    assert entry(times=[("09:00", "17:00")]).contains(at("2026-12-01 16:00"))


def test_wall_clock_hours_that_do_not_exist_or_happen_twice():
    two_to_three = entry(times=[("02:00", "03:00")], location="Europe/Berlin")
    # 2026-03-29: Berlin's clocks jump from 02:00 to 03:00: the window never happens.
    spring = at("2026-03-28 23:00")
    minutes = [spring + timedelta(minutes=m) for m in range(0, 5 * 60)]
    assert not any(two_to_three.contains(m) for m in minutes)
    assert two_to_three.contains(at("2026-03-30 00:30"))  # positive control: the next night
    # 2026-10-25: clocks go back from 03:00 to 02:00: 02:00-03:00 happens twice.
    autumn = at("2026-10-24 22:00")
    inside = [m for m in (autumn + timedelta(minutes=k) for k in range(0, 6 * 60))
              if two_to_three.contains(m)]
    assert len(inside) == 120
    assert inside[0] == at("2026-10-25 00:00") and inside[-1] == at("2026-10-25 01:59")


def test_weekday_and_day_are_the_locations_too():
    # Sunday 23:30 UTC is already Monday 00:30 in Berlin.
    late_sunday = at("2026-11-29 23:30")
    assert entry(weekdays=["monday"], location="Europe/Berlin").contains(late_sunday)
    assert not entry(weekdays=["monday"]).contains(late_sunday)
    # The last day of November in UTC is the first of December in Tokyo.
    assert entry(days_of_month=["1"], location="Asia/Tokyo").contains(at("2026-11-30 20:00"))


def test_unknown_locations_are_refused():
    with pytest.raises(ti.TimeIntervalError, match="IANA"):
        ti.location("Mars/Olympus")
    assert ti.location("America/New_York") == "America/New_York"


# ----- routes: mute and active ----------------------------------------------------------

INTERVALS = {
    "night": TimeInterval("night", (entry(times=[("00:00", "06:00")]),)),
    "weekend": TimeInterval("weekend", (entry(weekdays=["saturday", "sunday"]),)),
    "business": TimeInterval("business", (entry(weekdays=["monday:friday"],
                                                times=[("09:00", "17:00")]),)),
}


def test_a_route_is_muted_while_any_mute_interval_is_active():
    tuesday_night, tuesday_noon = at("2026-12-01 03:00"), at("2026-12-01 12:00")
    assert time_mute(["weekend", "night"], [], INTERVALS, tuesday_night) \
        == "muted by time interval night"
    assert time_mute(["weekend", "night"], [], INTERVALS, tuesday_noon) is None
    assert time_mute([], [], INTERVALS, tuesday_night) is None


def test_a_route_sends_only_while_one_of_its_active_intervals_is_active():
    tuesday_noon, saturday_noon = at("2026-12-01 12:00"), at("2026-12-05 12:00")
    assert time_mute([], ["business"], INTERVALS, tuesday_noon) is None
    assert time_mute([], ["business"], INTERVALS, saturday_noon) \
        == "outside its active time intervals (business)"
    assert time_mute([], ["business", "weekend"], INTERVALS, saturday_noon) is None
    # Muting wins over being active (both stages apply in Alertmanager).
    assert time_mute(["weekend"], ["weekend"], INTERVALS, saturday_noon) \
        == "muted by time interval weekend"
