"""Pure Redis quota and health computations: windows, reset-aware counting, judgements.

Every clock is injected (aware datetimes); nothing here touches Redis or a database.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alert_jobs.core.model import Severity, Status
from alert_jobs.families.redis_quota.check import (
    FIRST_STEPS,
    CounterSample,
    QuotaReading,
    QuotaWindow,
    RateMeasure,
    RatePoint,
    RestartNote,
    WindowUsage,
    advance,
    corrected_increment,
    estimate_restart,
    fmt_bytes,
    judge_clients,
    judge_counter,
    judge_keys,
    judge_memory,
    judge_quota,
    measure_rate,
    project,
    project_reading,
    restart_time,
    window_at,
)

BERLIN = ZoneInfo("Europe/Berlin")
MB = 1024 * 1024


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# ----- window_at ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "kind", "tz", "start", "end"),
    [
        # Summer (CEST, UTC+2): 23:30 local is 21:30 UTC, still the local day that began
        # at 22:00 UTC the evening before; a UTC day would be the wrong window.
        pytest.param(berlin(2026, 6, 15, 23, 30), "day", "Europe/Berlin",
                     utc(2026, 6, 14, 22), utc(2026, 6, 15, 22), id="berlin-summer-23:30"),
        pytest.param(berlin(2026, 6, 16, 0, 30), "day", "Europe/Berlin",
                     utc(2026, 6, 15, 22), utc(2026, 6, 16, 22), id="berlin-summer-00:30"),
        # Same instants given in UTC must land in the same windows.
        pytest.param(utc(2026, 6, 15, 21, 30), "day", "Europe/Berlin",
                     utc(2026, 6, 14, 22), utc(2026, 6, 15, 22), id="berlin-summer-23:30-as-utc"),
        pytest.param(utc(2026, 6, 15, 22, 30), "day", "Europe/Berlin",
                     utc(2026, 6, 15, 22), utc(2026, 6, 16, 22), id="berlin-summer-00:30-as-utc"),
        # Winter (CET, UTC+1).
        pytest.param(berlin(2026, 1, 15, 23, 30), "day", "Europe/Berlin",
                     utc(2026, 1, 14, 23), utc(2026, 1, 15, 23), id="berlin-winter-23:30"),
        pytest.param(berlin(2026, 1, 16, 0, 30), "day", "Europe/Berlin",
                     utc(2026, 1, 15, 23), utc(2026, 1, 16, 23), id="berlin-winter-00:30"),
        pytest.param(utc(2026, 6, 15, 14), "day", "UTC",
                     utc(2026, 6, 15), utc(2026, 6, 16), id="utc-day"),
        pytest.param(utc(2026, 6, 15, 0, 0), "day", "UTC",
                     utc(2026, 6, 15), utc(2026, 6, 16), id="utc-day-at-midnight"),
        pytest.param(utc(2026, 11, 20, 14), "month", "UTC",
                     utc(2026, 11, 1), utc(2026, 12, 1), id="utc-november"),
        pytest.param(utc(2026, 12, 31, 23, 30), "month", "UTC",
                     utc(2026, 12, 1), utc(2027, 1, 1), id="utc-december-to-january"),
        pytest.param(utc(2027, 1, 1, 0, 0), "month", "UTC",
                     utc(2027, 1, 1), utc(2027, 2, 1), id="utc-january-first-instant"),
        # 23:30 UTC on Dec 31 is already 00:30 on Jan 1 in Berlin.
        pytest.param(utc(2026, 12, 31, 23, 30), "month", "Europe/Berlin",
                     utc(2026, 12, 31, 23), utc(2027, 1, 31, 23), id="berlin-new-year"),
        pytest.param(utc(2026, 12, 31, 22, 30), "month", "Europe/Berlin",
                     utc(2026, 11, 30, 23), utc(2026, 12, 31, 23), id="berlin-december"),
        # A month containing the spring-forward switch starts in CET and ends in CEST.
        pytest.param(utc(2026, 3, 15, 12), "month", "Europe/Berlin",
                     utc(2026, 2, 28, 23), utc(2026, 3, 31, 22), id="berlin-march-dst"),
        pytest.param(utc(2026, 6, 15, 3), "month", "America/New_York",
                     utc(2026, 6, 1, 4), utc(2026, 7, 1, 4), id="new-york-june"),
    ],
)
def test_window_at_bounds(now, kind, tz, start, end):
    window = window_at(now, kind, tz)
    assert (window.kind, window.timezone) == (kind, tz)
    assert window.start == start
    assert window.end == end
    assert window.start.utcoffset() == timedelta(0)
    assert window.end.utcoffset() == timedelta(0)
    assert window.start <= now < window.end


def test_window_at_23_30_and_00_30_local_are_different_days():
    late = window_at(berlin(2026, 6, 15, 23, 30), "day", "Europe/Berlin")
    early = window_at(berlin(2026, 6, 16, 0, 30), "day", "Europe/Berlin")
    assert late != early
    assert late.end == early.start
    assert early.local(early.start) == berlin(2026, 6, 16)
    assert early.local(early.start).hour == 0


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        pytest.param(berlin(2026, 3, 29, 12), 23, id="spring-forward-23h"),
        pytest.param(berlin(2026, 10, 25, 12), 25, id="fall-back-25h"),
        pytest.param(berlin(2026, 3, 29, 0, 30), 23, id="spring-forward-before-switch"),
        pytest.param(berlin(2026, 10, 25, 23, 30), 25, id="fall-back-late-evening"),
        pytest.param(berlin(2026, 3, 28, 12), 24, id="day-before-spring-forward"),
        pytest.param(berlin(2026, 10, 26, 12), 24, id="day-after-fall-back"),
    ],
)
def test_window_at_dst_day_lengths(now, hours):
    window = window_at(now, "day", "Europe/Berlin")
    assert window.end - window.start == timedelta(hours=hours)
    assert window.local(window.start).time().hour == 0
    assert window.local(window.end).time().hour == 0


@pytest.mark.parametrize(
    ("kind", "tz", "label"),
    [
        pytest.param("day", "UTC", "today (UTC)", id="day-utc"),
        pytest.param("month", "Europe/Berlin", "this month (Europe/Berlin)", id="month-berlin"),
        pytest.param("day", "Europe/Berlin", "today (Europe/Berlin)", id="day-berlin"),
        pytest.param("month", "UTC", "this month (UTC)", id="month-utc"),
    ],
)
def test_window_label(kind, tz, label):
    assert window_at(utc(2026, 6, 15, 12), kind, tz).label() == label


# ----- corrected_increment ------------------------------------------------------------


T0 = utc(2026, 6, 15, 10)
T1 = T0 + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 1600, "a", 1400),
                     (600, False), id="plain-growth"),
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 1000, "a", 1400),
                     (0, False), id="no-growth-is-not-a-reset"),
        pytest.param(CounterSample(T0, 1000), CounterSample(T1, 1250),
                     (250, False), id="growth-without-identity"),
        pytest.param(CounterSample(T0, 5000, "a", 100), CounterSample(T1, 30, "a", 1000),
                     (30, True), id="resetstat-decrease-same-server-rising-uptime"),
        pytest.param(CounterSample(T0, 5000), CounterSample(T1, 30),
                     (30, True), id="decrease-without-identity"),
        pytest.param(CounterSample(T0, 1000, "run-a", 9000), CounterSample(T1, 4000, "run-b", 20),
                     (4000, True), id="run-id-change-with-higher-value"),
        pytest.param(CounterSample(T0, 1000, "run-a"), CounterSample(T1, 1200, "run-b"),
                     (1200, True), id="run-id-change-no-uptime"),
        pytest.param(CounterSample(T0, 1000, "", 5000), CounterSample(T1, 1200, "", 100),
                     (1200, True), id="uptime-went-back-higher-value"),
        pytest.param(CounterSample(T0, 1000, "a", 5000), CounterSample(T1, 1200, "a", 100),
                     (1200, True), id="uptime-went-back-same-server"),
        pytest.param(CounterSample(T0, 1000, "a", 5000), CounterSample(T1, 1200, "a", None),
                     (200, False), id="uptime-missing-now"),
    ],
)
def test_corrected_increment(prev, cur, expected):
    assert corrected_increment(prev, cur) == expected


# ----- advance ------------------------------------------------------------------------


DAY = window_at(utc(2026, 6, 15, 12), "day", "UTC")  # 2026-06-15 00:00 .. 06-16 00:00 UTC


@pytest.mark.parametrize(
    ("sample", "used", "partial"),
    [
        pytest.param(CounterSample(utc(2026, 6, 15, 10), 4200, "a", 3600), 4200, False,
                     id="server-started-inside-window"),
        pytest.param(CounterSample(utc(2026, 6, 15, 10), 4200, "a", 10 * 3600), 4200, False,
                     id="server-started-exactly-at-window-start"),
        pytest.param(CounterSample(utc(2026, 6, 15, 10), 4200, "a", 10 * 3600 + 1), 0, True,
                     id="server-started-one-second-before-window"),
        pytest.param(CounterSample(utc(2026, 6, 15, 10), 4200, "a", 86400 * 3), 0, True,
                     id="server-started-days-before"),
        pytest.param(CounterSample(utc(2026, 6, 15, 10), 4200), 0, True,
                     id="uptime-unknown"),
    ],
)
def test_advance_first_sample(sample, used, partial):
    step = advance(None, sample, DAY)
    assert step.counted is True
    assert step.reset is False
    assert step.increment == used
    assert step.usage.used == used
    assert step.usage.partial is partial
    assert step.usage.window_start == DAY.start
    assert step.usage.last == sample
    assert step.usage.resets == 0


def _fold(samples: list[CounterSample], window: QuotaWindow = DAY) -> list:
    steps, state = [], None
    for sample in samples:
        step = advance(state, sample, window)
        steps.append(step)
        state = step.usage
    return steps


def _at(minutes: int) -> datetime:
    return utc(2026, 6, 15, 8) + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("samples", "used", "increments", "resets"),
    [
        pytest.param(
            [CounterSample(_at(0), 1000, "a", 3600), CounterSample(_at(15), 1300, "a", 4500),
             CounterSample(_at(30), 1700, "a", 5400)],
            [1000, 1300, 1700], [1000, 300, 400], [0, 0, 0], id="accumulates-from-boot"),
        pytest.param(
            [CounterSample(_at(0), 100, "a", 86400), CounterSample(_at(15), 600, "a", 87300),
             CounterSample(_at(30), 50, "a", 88200), CounterSample(_at(45), 250, "a", 89100)],
            [0, 500, 550, 750], [0, 500, 50, 200], [0, 0, 1, 1],
            id="resetstat-mid-window"),
        pytest.param(
            [CounterSample(_at(0), 100, "a", 86400), CounterSample(_at(15), 600, "a", 87300),
             CounterSample(_at(30), 700, "b", 60), CounterSample(_at(45), 900, "b", 960)],
            [0, 500, 1200, 1400], [0, 500, 700, 200], [0, 0, 1, 1],
            id="restart-with-higher-value"),
        pytest.param(
            [CounterSample(_at(0), 100, "a", 86400), CounterSample(_at(15), 600, "a", 87300),
             CounterSample(_at(30), 0, "a", 88200), CounterSample(_at(45), 0, "b", 10),
             CounterSample(_at(60), 40, "b", 910)],
            [0, 500, 500, 500, 540], [0, 500, 0, 0, 40], [0, 0, 1, 2, 2],
            id="two-resets-to-zero"),
    ],
)
def test_advance_accumulates_across_resets(samples, used, increments, resets):
    steps = _fold(samples)
    assert [s.usage.used for s in steps] == used
    assert [s.increment for s in steps] == increments
    assert [s.usage.resets for s in steps] == resets
    assert all(s.counted for s in steps)
    assert all(s.usage.used >= 0 for s in steps)
    assert all(b.usage.used >= a.usage.used for a, b in itertools.pairwise(steps))
    assert all(s.usage.window_start == DAY.start for s in steps)
    assert steps[-1].usage.last == samples[-1]


def test_advance_reset_sequence_from_the_brief():
    """100 → 600 → (reset) 50 → 250: used grows by 500 + 50 + 200 and never shrinks."""
    steps = _fold([CounterSample(_at(0), 100, "a", 86400), CounterSample(_at(15), 600, "a", 87300),
                   CounterSample(_at(30), 50, "a", 88200), CounterSample(_at(45), 250, "a", 89100)])
    assert steps[-1].usage.used - steps[0].usage.used == 500 + 50 + 200
    assert [s.reset for s in steps] == [False, False, True, False]
    assert steps[0].usage.partial is True
    assert steps[-1].usage.partial is True


# ----- restarts: when, and what they hid ----------------------------------------------


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 300, "b", 120),
                     T1 - timedelta(seconds=120), id="new-run-id-started-uptime-ago"),
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 1600, "a", 1400),
                     None, id="same-run-id-no-restart"),
        # Same run_id, counter down, uptime rising: CONFIG RESETSTAT at an unknown time.
        pytest.param(CounterSample(T0, 5000, "a", 100), CounterSample(T1, 30, "a", 1000),
                     None, id="resetstat-is-not-a-restart"),
        # No run ids: an uptime shorter than the time since the last sample is a restart.
        pytest.param(CounterSample(T0, 1000, "", 5000), CounterSample(T1, 40, "", 60),
                     T1 - timedelta(seconds=60), id="no-run-id-short-uptime"),
        pytest.param(CounterSample(T0, 1000, "", 5000), CounterSample(T1, 1400, "", 5900),
                     None, id="no-run-id-long-uptime"),
        # A new server that has been up longer than the gap (a failover): nothing unseen.
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 300, "b", 99_999),
                     T0, id="failover-clamped-to-the-last-sample"),
        pytest.param(CounterSample(T0, 1000, "a", 500), CounterSample(T1, 300, "b", None),
                     None, id="no-uptime-no-time"),
    ],
)
def test_restart_time(prev, cur, expected):
    assert restart_time(prev, cur) == expected


STEADY = [RatePoint(T0 - timedelta(minutes=30), 0), RatePoint(T0 - timedelta(minutes=15), 900),
          RatePoint(T0, 900)]  # 1 command/s over the 30 minutes before T0


@pytest.mark.parametrize(
    ("history", "restart_after", "min_span", "commands"),
    [
        pytest.param(STEADY, timedelta(minutes=10), timedelta(minutes=15), 600.0,
                     id="rate-times-unseen-gap"),
        pytest.param(STEADY, timedelta(0), timedelta(minutes=15), 0.0, id="restart-at-sample"),
        pytest.param(STEADY[-1:], timedelta(minutes=10), timedelta(minutes=15), None,
                     id="one-sample-no-rate"),
        # Two samples 4 s apart say nothing about the next 10 minutes ...
        pytest.param([RatePoint(T0 - timedelta(seconds=4), 0), RatePoint(T0, 400)],
                     timedelta(minutes=10), timedelta(minutes=15), None,
                     id="seconds-of-rate-for-minutes-of-gap"),
        # ... but enough about the next 3 seconds.
        pytest.param([RatePoint(T0 - timedelta(seconds=4), 0), RatePoint(T0, 400)],
                     timedelta(seconds=3), timedelta(minutes=15), 300.0,
                     id="seconds-of-rate-for-seconds-of-gap"),
    ],
)
def test_estimate_restart(history, restart_after, min_span, commands):
    prev = CounterSample(T0, 5000, "a", 7200)
    est = estimate_restart(history, prev, T0 + restart_after, rate_window=timedelta(hours=1),
                           min_span=min_span)
    assert est.commands == (pytest.approx(commands) if commands is not None else None)
    assert est.since == T0 and est.restart_at == T0 + restart_after


def test_advance_adds_the_estimate_and_keeps_the_counted_part_exact():
    """Last sample at 08:30, restart at 08:40 (uptime 300 s at 08:45): 10 unseen minutes at
    the 2 commands/s measured before, plus the 600 the new process counted."""
    history = [RatePoint(_at(0), 0), RatePoint(_at(15), 1800), RatePoint(_at(30), 1800)]
    state = _fold([CounterSample(_at(0), 1000, "a", 3600), CounterSample(_at(15), 2800, "a", 4500),
                   CounterSample(_at(30), 4600, "a", 5400)])[-1].usage
    step = advance(state, CounterSample(_at(45), 600, "b", 300), DAY, history=history)
    assert step.reset is True and step.estimate is not None
    assert step.estimate.restart_at == _at(40)
    assert step.estimated == pytest.approx(1200)
    assert step.increment == pytest.approx(600 + 1200)  # stored: counted + estimated
    assert step.usage.used == pytest.approx(4600 + 600 + 1200)
    assert step.usage.partial is False
    # The control: the same without a restart is counted exactly, no estimate.
    plain = advance(state, CounterSample(_at(45), 6400, "a", 6300), DAY, history=history)
    assert plain.estimate is None and plain.usage.used == 6400


def test_advance_restart_with_no_rate_is_a_lower_bound():
    state = advance(None, CounterSample(_at(0), 1000, "a", 3600), DAY).usage
    step = advance(state, CounterSample(_at(15), 50, "b", 20), DAY,
                   history=[RatePoint(_at(0), 1000)])
    assert step.estimate is not None and step.estimate.commands is None
    assert step.usage.used == 1050
    assert step.usage.partial is True


def test_advance_rollover_restart_after_midnight_keeps_counted_part_in_the_new_day():
    old = window_at(utc(2026, 6, 15, 23), "day", "UTC")
    new = window_at(utc(2026, 6, 16, 0, 30), "day", "UTC")
    history = [RatePoint(utc(2026, 6, 15, 23, 0), 0), RatePoint(utc(2026, 6, 15, 23, 50), 3000)]
    state = advance(None, CounterSample(utc(2026, 6, 15, 23, 50), 9000, "a", 10), old).usage
    # Restart at 00:10 (uptime 20 min at 00:30): 10 of the 20 unseen minutes are today's.
    step = advance(state, CounterSample(utc(2026, 6, 16, 0, 30), 1200, "b", 1200), new,
                   history=history)
    assert step.estimate is not None and step.estimated == pytest.approx(1200)
    assert step.usage.window_start == new.start
    assert step.usage.used == pytest.approx(1200 + 600)


# ----- project_reading ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "projects"),
    [pytest.param(timedelta(seconds=3), False, id="seconds"),
     pytest.param(timedelta(minutes=14, seconds=59), False, id="just-under"),
     pytest.param(timedelta(minutes=15), True, id="exactly-project-after"),
     pytest.param(timedelta(minutes=45), True, id="longer")],
)
def test_project_reading_needs_project_after_of_samples(span, projects):
    r = project_reading("cache", 1000, 10_000, DAY, NOW, RateMeasure(2.0, span, 3),
                        project_after=timedelta(minutes=15), samples=3)
    assert (r.projected is not None) is projects
    if projects:
        assert r.projected == pytest.approx(1000 + 2.0 * 10 * 3600)


def test_project_reading_first_sample_has_no_rate_and_no_projection():
    r = project_reading("cache", 1000, 10_000, DAY, NOW, None,
                        project_after=timedelta(minutes=15), samples=1)
    assert r.projected is None
    assert r.rate_basis == "rate not yet known: 1 sample in this window"


@pytest.mark.parametrize(
    "stale_at",
    [pytest.param(_at(15), id="same-instant"), pytest.param(_at(5), id="older")],
)
def test_advance_stale_sample_changes_nothing(stale_at):
    state = _fold([CounterSample(_at(0), 1000, "a", 3600),
                   CounterSample(_at(15), 1500, "a", 4500)])[-1].usage
    # A slower concurrent run's reading: lower total, which would otherwise look like a reset.
    step = advance(state, CounterSample(stale_at, 1100, "a", 3900), DAY)
    assert step.counted is False
    assert step.usage == state
    assert step.increment == 0
    assert step.reset is False


def test_advance_rollover_at_local_midnight_splits_linearly():
    tz = "Europe/Berlin"
    evening = [CounterSample(berlin(2026, 6, 15, 23, 0).astimezone(UTC), 900, "a", 86400),
               CounterSample(berlin(2026, 6, 15, 23, 50).astimezone(UTC), 1000, "a", 89400)]
    after = CounterSample(berlin(2026, 6, 16, 0, 10).astimezone(UTC), 1400, "a", 90600)
    old, new = window_at(evening[0].at, "day", tz), window_at(after.at, "day", tz)
    assert old.end == new.start == utc(2026, 6, 15, 22)

    state = None
    for sample in evening:
        state = advance(state, sample, old).usage
    assert state is not None and state.used == 100

    step = advance(state, after, new)
    assert step.counted is True
    assert step.reset is False
    assert step.increment == 400
    assert step.usage.window_start == new.start
    assert step.usage.used == pytest.approx(200)  # 10 of the 20 minutes are in the new day
    assert step.usage.partial is False
    assert step.usage.resets == 0
    assert step.usage.last == after


@pytest.mark.parametrize(
    ("last_at", "at", "share"),
    [
        pytest.param(utc(2026, 6, 15, 23, 50), utc(2026, 6, 16, 0, 30), 300,
                     id="three-quarters-after-midnight"),
        pytest.param(utc(2026, 6, 15, 23, 30), utc(2026, 6, 16, 0, 10), 100,
                     id="one-quarter-after-midnight"),
        pytest.param(utc(2026, 6, 15, 23, 59, 59), utc(2026, 6, 16, 0, 10), 400 * 600 / 601,
                     id="just-before-midnight"),
        pytest.param(utc(2026, 6, 16, 0, 0), utc(2026, 6, 16, 0, 10), 400,
                     id="last-sample-exactly-at-midnight"),
    ],
)
def test_advance_rollover_share(last_at, at, share):
    new = window_at(at, "day", "UTC")
    state = WindowUsage(DAY.start, 5000, False, CounterSample(last_at, 1000, "a", 1000))
    step = advance(state, CounterSample(at, 1400, "a", 5000), new)
    assert step.usage.used == pytest.approx(share)
    assert step.increment == 400
    assert step.usage.window_start == new.start


def test_advance_rollover_after_reset_counts_a_new_window():
    new = window_at(utc(2026, 6, 16, 0, 10), "day", "UTC")
    state = WindowUsage(DAY.start, 9000, True,
                        CounterSample(utc(2026, 6, 15, 23, 50), 50_000, "a", 1000), resets=3)
    # 1 command/s before 23:50; restart at 00:05: 5 unseen minutes are today's (300).
    history = [RatePoint(utc(2026, 6, 15, 23, 20), 0), RatePoint(utc(2026, 6, 15, 23, 50), 1800)]
    step = advance(state, CounterSample(utc(2026, 6, 16, 0, 10), 400, "b", 300), new,
                   history=history)
    assert step.reset is True
    assert step.increment == pytest.approx(400 + 900)  # counted + all 15 unseen minutes
    assert step.usage.resets == 1  # resets belong to the window they happened in
    assert step.usage.used == pytest.approx(400 + 300)
    assert step.usage.partial is False  # the previous window's partial flag does not carry


@pytest.mark.parametrize(
    ("last_at", "partial"),
    [
        pytest.param(utc(2026, 6, 12, 12), True, id="gap-of-days"),
        pytest.param(utc(2026, 6, 14, 23), True, id="gap-skips-a-whole-window"),
        pytest.param(utc(2026, 6, 15, 23, 50), False, id="twenty-minute-gap"),
        pytest.param(utc(2026, 6, 15, 6), False, id="gap-inside-previous-window"),
    ],
)
def test_advance_rollover_long_gap_is_partial(last_at, partial):
    new = window_at(utc(2026, 6, 16, 0, 10), "day", "UTC")
    state = WindowUsage(window_at(last_at, "day", "UTC").start, 100, False,
                        CounterSample(last_at, 1000, "a", 100_000))
    step = advance(state, CounterSample(utc(2026, 6, 16, 0, 10), 2000, "a", 400_000), new)
    assert step.counted is True
    assert step.usage.partial is partial
    assert step.usage.window_start == new.start
    assert 0 <= step.usage.used <= 1000


# ----- measure_rate and project -------------------------------------------------------


NOW = utc(2026, 6, 15, 14)


@pytest.mark.parametrize(
    ("points", "span", "rate"),
    [
        pytest.param([], timedelta(hours=1), None, id="no-points"),
        pytest.param([RatePoint(NOW, 100)], timedelta(hours=1), None, id="one-point"),
        # A short span is still a measured rate; whether it may be projected is the
        # reading's decision (project_after), so the span comes back with it.
        pytest.param([RatePoint(NOW - timedelta(seconds=4), 0), RatePoint(NOW, 100)],
                     timedelta(hours=1), 25.0, id="span-of-seconds"),
        pytest.param([RatePoint(NOW, 0), RatePoint(NOW, 100)],
                     timedelta(hours=1), None, id="zero-span"),
        pytest.param([RatePoint(NOW - timedelta(seconds=60), 0), RatePoint(NOW, 120)],
                     timedelta(hours=1), 2.0, id="exactly-a-minute"),
        # The first point's increment belongs to the interval before it: 9,000 is ignored.
        pytest.param([RatePoint(NOW - timedelta(minutes=30), 9000),
                      RatePoint(NOW - timedelta(minutes=15), 1800),
                      RatePoint(NOW, 2700)],
                     timedelta(hours=1), 2.5, id="excludes-first-increment"),
        # Points older than the span are ignored, so the 10:00 burst does not count.
        pytest.param([RatePoint(NOW - timedelta(hours=4), 0),
                      RatePoint(NOW - timedelta(hours=3), 1_000_000),
                      RatePoint(NOW - timedelta(minutes=20), 50),
                      RatePoint(NOW - timedelta(minutes=10), 600),
                      RatePoint(NOW, 600)],
                     timedelta(hours=1), 1.0, id="ignores-points-older-than-span"),
        pytest.param([RatePoint(NOW - timedelta(hours=2), 0),
                      RatePoint(NOW - timedelta(seconds=30), 10),
                      RatePoint(NOW, 10)],
                     timedelta(hours=1), 10 / 30, id="only-recent-points"),
    ],
)
def test_measure_rate(points, span, rate):
    result = measure_rate(points, NOW, span)
    if rate is None:
        assert result is None
    else:
        assert result is not None
        assert result.rate == pytest.approx(rate)
        in_span = [p for p in points if p.at >= NOW - span]
        assert result.samples == len(in_span)
        assert result.span == in_span[-1].at - in_span[0].at


def test_measure_rate_since_window_start_ignores_yesterday():
    """The first sample after midnight has no rate of its own window: yesterday's samples
    (however recent) do not count, and neither does used ÷ seconds since midnight."""
    window = window_at(NOW, "day", "UTC")
    points = [RatePoint(window.start - timedelta(minutes=10), 0),
              RatePoint(window.start + timedelta(minutes=5), 9000)]
    assert measure_rate(points, window.start + timedelta(minutes=5), timedelta(hours=1),
                        since=window.start) is None
    assert measure_rate(points, window.start + timedelta(minutes=5),
                        timedelta(hours=1)) is not None  # the control: without `since`


@pytest.mark.parametrize(
    ("used", "rate", "now", "expected"),
    [
        pytest.param(5210, 2.5, utc(2026, 6, 15, 14), 5210 + 2.5 * 36000, id="ten-hours-left"),
        pytest.param(5210, 0.0, utc(2026, 6, 15, 14), 5210, id="zero-rate"),
        pytest.param(100, 1.0, utc(2026, 6, 16, 1), 100, id="past-window-end"),
        pytest.param(5210, None, utc(2026, 6, 15, 14), None, id="no-rate"),
    ],
)
def test_project(used, rate, now, expected):
    assert project(used, rate, now, DAY) == expected


def test_project_uses_the_short_dst_day():
    window = window_at(berlin(2026, 3, 29, 12), "day", "Europe/Berlin")
    # 12:00 CEST is 10:00 UTC; the day ends at 22:00 UTC: 12 hours, not 13.
    assert project(0, 1.0, berlin(2026, 3, 29, 12), window) == 12 * 3600


# ----- judge_quota --------------------------------------------------------------------


GUIDE = ("Expected under 7,000 commands (70 % of 10,000/day) today (UTC); used 5,210 by 14:00 "
         "at 2.5 ops/s over the last 45 min, projected 12,400 by 24:00")


def reading(used: float, projected: float | None = None, *, rate: float | None = 2.5,
            limit: int = 10_000, partial: bool = False, span: timedelta = timedelta(minutes=45),
            project_after: timedelta = timedelta(minutes=15), samples: int = 4,
            window: QuotaWindow = DAY, now: datetime = NOW, estimated: float = 0.0,
            restarts: tuple[RestartNote, ...] = ()) -> QuotaReading:
    measure = RateMeasure(rate, span, samples) if rate is not None else None
    if measure is None or span < project_after:
        projected = None
    return QuotaReading("cache", used, limit, window, now, measure, projected, partial,
                        project_after, samples, estimated, restarts)


def judge(r: QuotaReading, **kwargs):
    return judge_quota(r, warn_percent=70, critical_percent=90, labels={"team": "web"}, **kwargs)


def test_judge_quota_guide_sentence():
    obs = judge(reading(5210, 12_400))
    assert obs.status == Status.ALERT
    assert obs.severity == Severity.WARNING  # the projection alone only warns
    assert obs.summary == GUIDE
    assert obs.expected == "under 7,000 commands (70 % of 10,000/day)"
    assert obs.seen == ("used 5,210 by 14:00 at 2.5 ops/s over the last 45 min, "
                        "projected 12,400 by 24:00")
    assert obs.window == "today (UTC)"
    assert obs.value == 5210.0
    assert obs.rule == "cache"
    assert obs.labels == {"team": "web", "check": "quota"}
    steps = obs.details["first_steps"]
    assert steps == FIRST_STEPS
    for needle in ("polling loops", "cache usage", "duplicate background workers"):
        assert needle in steps


@pytest.mark.parametrize(
    ("r", "kwargs", "status", "severity", "fragments"),
    [
        pytest.param(reading(5000, 6000), {}, Status.OK, None,
                     ["Expected under 7,000 commands (70 % of 10,000/day) today (UTC)",
                      "used 5,000 by 14:00", "projected 6,000 by 24:00"],
                     id="used-50-projected-60-ok"),
        pytest.param(reading(7500, 7600), {}, Status.ALERT, Severity.WARNING,
                     ["under 7,000 commands (70 % of 10,000/day)", "used 7,500"],
                     id="used-75-warning"),
        pytest.param(reading(7000, 7000), {}, Status.ALERT, Severity.WARNING,
                     ["(70 % of 10,000/day)"], id="used-exactly-70-warning"),
        pytest.param(reading(9500, 9800), {}, Status.ALERT, Severity.CRITICAL,
                     ["under 9,000 commands (90 % of 10,000/day)", "used 9,500"],
                     id="used-95-critical"),
        pytest.param(reading(9000, None, rate=None), {}, Status.ALERT, Severity.CRITICAL,
                     ["(90 % of 10,000/day)"], id="used-exactly-90-critical"),
        pytest.param(reading(1000, 9500), {}, Status.ALERT, Severity.WARNING,
                     ["(70 % of 10,000/day)", "projected 9,500 by 24:00"],
                     id="projected-95-warns-by-default"),
        pytest.param(reading(1000, 9500), {"page_on_projection": True}, Status.ALERT,
                     Severity.CRITICAL, ["(90 % of 10,000/day)", "projected 9,500 by 24:00"],
                     id="projected-95-pages-when-asked"),
        pytest.param(reading(1000, 7500), {"page_on_projection": True}, Status.ALERT,
                     Severity.WARNING, ["(70 % of 10,000/day)"],
                     id="projected-75-page-on-projection-still-warning"),
        # A burst measured over a few seconds (e.g. just after a restart) is no projection.
        pytest.param(reading(1000, 9500, rate=9000, span=timedelta(seconds=3), samples=2), {},
                     Status.OK, None,
                     ["used 1,000 by 14:00 at 9,000.0 ops/s over the last 3 s, too short to "
                      "project (project_after 15 min)"],
                     id="rate-over-seconds-not-projected"),
        pytest.param(reading(1000, 9500, rate=9000, span=timedelta(seconds=3), samples=2),
                     {"page_on_projection": True}, Status.OK, None, ["too short to project"],
                     id="rate-over-seconds-not-projected-even-when-paging"),
        pytest.param(reading(1000, None, rate=None, samples=1), {}, Status.OK, None,
                     ["used 1,000 by 14:00; rate not yet known: 1 sample in this window, "
                      "so no projection"],
                     id="first-sample-no-rate"),
        pytest.param(reading(1000, 3000, partial=True), {}, Status.OK, None,
                     ["used 1,000 (a lower bound: commands before the first sample, or before "
                      "a restart with no rate to estimate them, were not seen) by 14:00"],
                     id="partial"),
        pytest.param(reading(8000, None, rate=None, samples=1), {}, Status.ALERT,
                     Severity.WARNING, ["used 8,000", "rate not yet known"],
                     id="used-thresholds-fire-without-a-rate"),
        pytest.param(reading(5000, 6000, estimated=1234,
                             restarts=(RestartNote(utc(2026, 6, 15, 13, 5), 1234),)),
                     {}, Status.OK, None,
                     ["used 5,000 (includes ~1,234 commands estimated across a Redis restart "
                      "at 13:05) by 14:00"], id="estimated-across-a-restart"),
        pytest.param(reading(5000, 6000, estimated=3000,
                             restarts=(RestartNote(utc(2026, 6, 15, 9, 0), 1000),
                                       RestartNote(utc(2026, 6, 15, 13, 5), 2000))),
                     {}, Status.OK, None,
                     ["(includes ~3,000 commands estimated across 2 Redis restarts, the last "
                      "at 13:05)"], id="estimated-across-two-restarts"),
        pytest.param(reading(300, 600, rate=0.01), {}, Status.OK, None,
                     ["at 0.01 ops/s"], id="slow-rate"),
    ],
)
def test_judge_quota_statuses(r, kwargs, status, severity, fragments):
    obs = judge(r, **kwargs)
    assert obs.status == status
    assert obs.severity == severity
    assert obs.labels["check"] == "quota"
    assert obs.labels["team"] == "web"
    for fragment in fragments:
        assert fragment in obs.summary
    assert obs.summary == f"Expected {obs.expected} {obs.window}; {obs.seen}"
    if status == Status.ALERT:
        assert "first_steps" in obs.details
    else:
        assert obs.details == {}


@pytest.mark.parametrize(
    ("r", "fragments", "absent"),
    [
        pytest.param(reading(1000, None, rate=None), ["rate not yet known"],
                     ["projected", "ops/s"], id="no-rate-no-projection"),
        pytest.param(reading(1000, 3000, span=timedelta(minutes=15)), ["projected 3,000"],
                     ["too short", "not yet known"], id="projection-at-exactly-project-after"),
        pytest.param(reading(1000, 3000), [], ["lower bound", "estimated"],
                     id="not-partial-not-estimated"),
    ],
)
def test_judge_quota_text_absent(r, fragments, absent):
    obs = judge(r)
    for fragment in fragments:
        assert fragment in obs.summary
    for fragment in absent:
        assert fragment not in obs.summary


@pytest.mark.parametrize(
    ("now", "tz", "summary"),
    [
        pytest.param(
            utc(2026, 11, 20, 14), "UTC",
            "Expected under 350,000 commands (70 % of 500,000/month) this month (UTC); "
            "used 400,000 by Nov 20 14:00 at 0.5 ops/s over the last 45 min, "
            "projected 1,000,000 by Dec 1 00:00",
            id="november-utc"),
        pytest.param(
            utc(2026, 12, 20, 14), "Europe/Berlin",
            "Expected under 350,000 commands (70 % of 500,000/month) this month (Europe/Berlin); "
            "used 400,000 by Dec 20 15:00 at 0.5 ops/s over the last 45 min, "
            "projected 1,000,000 by Jan 1 00:00",
            id="december-berlin"),
    ],
)
def test_judge_quota_month_window(now, tz, summary):
    window = window_at(now, "month", tz)
    obs = judge(reading(400_000, 1_000_000, rate=0.5, limit=500_000, window=window, now=now))
    assert obs.summary == summary
    assert obs.window == f"this month ({tz})"
    assert obs.severity == Severity.WARNING


def test_judge_quota_day_clock_is_local():
    window = window_at(utc(2026, 6, 15, 12), "day", "Europe/Berlin")
    obs = judge(reading(100, 200, window=window, now=utc(2026, 6, 15, 12)))
    assert "by 14:00" in obs.seen
    assert "today (Europe/Berlin)" in obs.summary


def test_judge_quota_does_not_mutate_labels():
    labels = {"team": "web"}
    obs = judge_quota(reading(9500, 9800), warn_percent=70, critical_percent=90, labels=labels)
    assert labels == {"team": "web"}
    assert obs.labels == {"team": "web", "check": "quota"}


# ----- INFO judgements ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "maxmemory", "status", "fragments"),
    [
        pytest.param(512 * MB, 0, Status.OK, ["maxmemory is 0 (unlimited)", "512.0 MB"],
                     id="unlimited"),
        pytest.param(0.93 * 256 * MB, 256 * MB, Status.ALERT,
                     ["256.0 MB", "93.0 %", "under 90 % of maxmemory"], id="93-percent"),
        pytest.param(0.90 * 256 * MB, 256 * MB, Status.ALERT, ["90.0 %"], id="exactly-90"),
        pytest.param(0.5 * 256 * MB, 256 * MB, Status.OK, ["128.0 MB", "50.0 %"], id="half"),
    ],
)
def test_judge_memory(used, maxmemory, status, fragments):
    obs = judge_memory("cache", used, maxmemory, max_percent=90, labels={})
    assert obs.status == status
    assert obs.labels == {"check": "memory"}
    assert obs.severity == (None if status == Status.OK else Severity.WARNING)
    if maxmemory == 0:
        assert obs.value is None
    else:
        assert obs.value == pytest.approx(100 * used / maxmemory)
    for fragment in fragments:
        assert fragment in obs.summary


@pytest.mark.parametrize(
    ("increase", "allowed", "status", "summary"),
    [
        pytest.param(0, 0, Status.OK, "Expected no evicted keys in the last 15 minutes; got 0",
                     id="zero-allowed-zero"),
        pytest.param(3, 0, Status.ALERT, "Expected no evicted keys in the last 15 minutes; got 3",
                     id="zero-allowed-three"),
        pytest.param(5, 5, Status.OK,
                     "Expected at most 5 evicted keys in the last 15 minutes; got 5",
                     id="at-allowance"),
        pytest.param(1200, 1000, Status.ALERT,
                     "Expected at most 1,000 evicted keys in the last 15 minutes; got 1,200",
                     id="over-allowance"),
    ],
)
def test_judge_counter(increase, allowed, status, summary):
    obs = judge_counter("cache", "evictions", "evicted keys", increase, allowed,
                        timedelta(minutes=15), labels={"env": "prod"})
    assert obs.status == status
    assert obs.summary == summary
    assert obs.value == increase
    assert obs.labels == {"env": "prod", "check": "evictions"}
    assert obs.severity == (None if status == Status.OK else Severity.WARNING)


@pytest.mark.parametrize(
    ("clients", "maxclients", "status", "fragment"),
    [
        pytest.param(100, 10_000, Status.OK, "100 connected (1.0 %)", id="low"),
        pytest.param(8500, 10_000, Status.ALERT, "8,500 connected (85.0 %)", id="high"),
        pytest.param(8000, 10_000, Status.ALERT, "(80.0 %)", id="exactly-at-limit"),
        pytest.param(50, 0, Status.OK, "50 connected (0.0 %)", id="no-maxclients"),
    ],
)
def test_judge_clients(clients, maxclients, status, fragment):
    obs = judge_clients("cache", clients, maxclients, max_percent=80, labels={})
    assert obs.status == status
    assert obs.value == float(clients)
    assert obs.labels == {"check": "clients"}
    assert fragment in obs.summary
    assert obs.summary.startswith("Expected connected clients under 80 % of maxclients")


@pytest.mark.parametrize(
    ("keys", "keys_max", "status"),
    [
        pytest.param(999, 1000, Status.OK, id="under"),
        pytest.param(1000, 1000, Status.OK, id="at"),
        pytest.param(1001, 1000, Status.ALERT, id="over"),
    ],
)
def test_judge_keys(keys, keys_max, status):
    obs = judge_keys("cache", keys, keys_max, labels={}, severity=Severity.INFO)
    assert obs.status == status
    assert obs.severity == (None if status == Status.OK else Severity.INFO)
    assert obs.labels == {"check": "keys"}
    assert obs.summary == (f"Expected at most 1,000 keys; the server holds {keys:,}")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(1023, "1,023 B", id="just-under-kb"),
        pytest.param(1024, "1.0 KB", id="one-kb"),
        pytest.param(1536, "1.5 KB", id="kb-and-a-half"),
        pytest.param(256 * MB, "256.0 MB", id="256-mb"),
        pytest.param(3 * 1024**3, "3.0 GB", id="gb"),
        pytest.param(2 * 1024**4, "2.0 TB", id="tb"),
        pytest.param(5 * 1024**5, "5,120.0 TB", id="beyond-tb-stays-tb"),
        pytest.param(-2048, "-2.0 KB", id="negative"),
    ],
)
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


# ----- aware datetimes in a non-UTC zone ----------------------------------------------


def test_measure_rate_local_zone_across_dst():
    points = [RatePoint(berlin(2026, 3, 29, 1, 30), 0), RatePoint(berlin(2026, 3, 29, 3, 30), 3600)]
    # 01:30 CET is 00:30 UTC and 03:30 CEST is 01:30 UTC: one real hour, 3,600 commands.
    measured = measure_rate(points, berlin(2026, 3, 29, 3, 30), timedelta(hours=6))
    assert measured is not None and measured.rate == 1.0
    assert measured.span == timedelta(hours=1)


def test_advance_first_sample_local_zone_across_dst():
    window = window_at(berlin(2026, 3, 29, 10), "day", "Europe/Berlin")
    # 10:00 CEST is 08:00 UTC; minus 10 h is 22:00 UTC on Mar 28, before the 23:00 UTC start.
    step = advance(None, CounterSample(berlin(2026, 3, 29, 10), 500, "a", 10 * 3600), window)
    assert step.usage.partial is True
    assert step.usage.used == 0
