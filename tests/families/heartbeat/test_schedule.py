"""Heartbeat schedules and states as pure functions of injected time (deadlines, cron, DST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import Status
from alert_jobs.families.heartbeat.check import (
    HeartbeatState,
    HeartbeatStatus,
    Schedule,
    ScheduleError,
    Signal,
    apply_ping,
    evaluate,
    next_cron_fire,
    observations,
    pause,
    resume,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)


def simple(period: timedelta = timedelta(days=1), grace: timedelta = H,
           max_duration: timedelta | None = None) -> HeartbeatState:
    return HeartbeatState("backup", Schedule("simple", period=period, grace=grace,
                                             max_duration=max_duration))


def pinged(state: HeartbeatState, at: datetime, signal: Signal = Signal.SUCCESS,
           **kw: object) -> HeartbeatState:
    return apply_ping(state, signal, at, **kw).state  # type: ignore[arg-type]


def test_new_check_never_alerts_until_its_first_ping() -> None:
    state = simple()
    ev = evaluate(state, T0 + timedelta(days=30))
    assert ev.status == HeartbeatStatus.NEW and not ev.open_problems and ev.alert_after is None


def test_simple_deadline_up_late_down_exactly_at_the_deadline() -> None:
    state = pinged(simple(), T0)
    assert evaluate(state, T0 + timedelta(hours=23)).status == HeartbeatStatus.UP
    late = evaluate(state, T0 + timedelta(days=1, minutes=30))
    assert late.status == HeartbeatStatus.LATE and not late.open_problems
    deadline = T0 + timedelta(days=1, hours=1)
    before = evaluate(state, deadline - timedelta(microseconds=1))
    assert before.status == HeartbeatStatus.LATE and before.alert_after == deadline
    down = evaluate(state, deadline)
    assert down.status == HeartbeatStatus.DOWN and down.open_problems == {"missing"}
    assert down.alert_after is None  # only a ping changes a down check


def test_a_ping_after_down_recovers_and_resolves() -> None:
    state = pinged(simple(), T0)
    now = T0 + timedelta(days=2)
    down = evaluate(state, now)
    state = state.evolve(open_problems=down.open_problems)
    obs = observations(state, down, rule="backup", labels={"team": "ops"}, now=now)
    assert [(o.status, o.labels["problem"]) for o in obs] == [(Status.ALERT, "missing")]
    assert obs[0].labels == {"team": "ops", "heartbeat": "backup", "problem": "missing"}
    assert "no ping since 2026-06-01 12:00:00 UTC" in obs[0].summary
    back = pinged(state, now)
    ev = evaluate(back, now)
    assert ev.status == HeartbeatStatus.UP and ev.changes(back)
    (ok,) = observations(back, ev, rule="backup", labels={}, now=now)
    assert ok.status == Status.OK and ok.labels["problem"] == "missing"


def test_healthy_checks_send_the_engine_nothing() -> None:
    state = pinged(simple(), T0)
    assert observations(state, evaluate(state, T0 + H), rule="b", labels={}, now=T0 + H) == []


def test_fail_and_nonzero_exit_alert_at_once_and_resolve_on_success() -> None:
    state = pinged(simple(), T0, Signal.FAIL, exit_code=3)
    ev = evaluate(state, T0)
    assert ev.status == HeartbeatStatus.DOWN and ev.open_problems == {"failed"}
    assert "exit code 3" in ev.reasons["failed"]
    state = pinged(state.evolve(open_problems=ev.open_problems), T0 + H)
    ev = evaluate(state, T0 + H)
    assert ev.status == HeartbeatStatus.UP and not ev.open_problems and ev.changes(state)


def test_started_but_never_finished_alerts_after_max_duration() -> None:
    state = pinged(pinged(simple(max_duration=timedelta(minutes=30)), T0), T0 + H,
                   Signal.START, rid="r1")
    ev = evaluate(state, T0 + H + timedelta(minutes=29))
    assert ev.status == HeartbeatStatus.STARTED and ev.alert_after == T0 + H + timedelta(
        minutes=30)
    ev = evaluate(state, T0 + H + timedelta(minutes=30))
    assert ev.status == HeartbeatStatus.DOWN and ev.open_problems == {"duration"}
    assert "not finished after 30 minutes" in ev.reasons["duration"]


def test_start_without_max_duration_uses_grace_as_the_run_window() -> None:
    state = pinged(simple(grace=timedelta(minutes=10)), T0, Signal.START)
    assert evaluate(state, T0 + timedelta(minutes=10)).open_problems == {"duration"}


def test_ran_longer_than_expected_and_the_next_normal_run_resolves() -> None:
    state = pinged(simple(max_duration=timedelta(minutes=30)), T0, Signal.START, rid="a")
    out = apply_ping(state, Signal.SUCCESS, T0 + timedelta(minutes=45), rid="a")
    assert out.duration == timedelta(minutes=45)
    ev = evaluate(out.state, T0 + timedelta(minutes=45))
    assert ev.open_problems == {"duration"} and ev.status == HeartbeatStatus.UP
    assert "took 45 minutes" in ev.reasons["duration"]
    state = out.state.evolve(open_problems=ev.open_problems)
    state = pinged(state, T0 + timedelta(days=1), Signal.START, rid="b")
    state = pinged(state, T0 + timedelta(days=1, minutes=10), rid="b")
    assert state.last_duration == timedelta(minutes=10)
    assert not evaluate(state, T0 + timedelta(days=1, minutes=10)).open_problems


def test_rid_pairs_the_right_start_and_finish() -> None:
    state = pinged(simple(), T0, Signal.START, rid="one")
    out = apply_ping(state, Signal.SUCCESS, T0 + H, rid="other")
    assert out.duration is None and out.state.last_start == T0  # run "one" still open
    out = apply_ping(out.state, Signal.SUCCESS, T0 + 2 * H, rid="one")
    assert out.duration == 2 * H and out.state.last_start is None


def test_pause_silences_and_resolves_and_manual_resume_ignores_pings() -> None:
    state = pinged(simple(), T0)
    state = state.evolve(open_problems=frozenset({"missing"}))
    paused = pause(state)
    ev = evaluate(paused, T0 + timedelta(days=9))
    assert ev.status == HeartbeatStatus.PAUSED and ev.alert_after is None
    (ok,) = observations(paused, ev, rule="b", labels={}, now=T0)
    assert ok.status == Status.OK and "paused" in ok.summary
    # default: the next ping resumes
    assert apply_ping(paused, Signal.SUCCESS, T0 + H).state.status == HeartbeatStatus.UP
    sticky = paused.evolve(manual_resume=True)
    out = apply_ping(sticky, Signal.SUCCESS, T0 + H)
    assert out.kind == "ignored" and out.state == sticky
    assert resume(sticky).status == HeartbeatStatus.NEW


def test_cron_deadline_is_next_fire_after_last_ping_plus_grace() -> None:
    sched = Schedule("cron", cron="0 3 * * *", timezone="UTC", grace=timedelta(minutes=30),
                     period=None)
    state = pinged(HeartbeatState("nightly", sched), datetime(2026, 6, 1, 3, 1, tzinfo=UTC))
    ev = evaluate(state, datetime(2026, 6, 2, 3, 29, tzinfo=UTC))
    assert ev.status == HeartbeatStatus.LATE
    assert ev.deadline == datetime(2026, 6, 2, 3, 30, tzinfo=UTC)
    assert evaluate(state, ev.deadline).status == HeartbeatStatus.DOWN


def test_cron_in_a_timezone_uses_local_wall_clock() -> None:
    # 09:00 New York in winter is 14:00 UTC, in summer 13:00 UTC.
    assert next_cron_fire("0 9 * * *", "America/New_York",
                          datetime(2026, 1, 10, tzinfo=UTC)) == datetime(2026, 1, 10, 14,
                                                                         tzinfo=UTC)
    assert next_cron_fire("0 9 * * *", "America/New_York",
                          datetime(2026, 7, 10, tzinfo=UTC)) == datetime(2026, 7, 10, 13,
                                                                         tzinfo=UTC)


def test_dst_spring_forward_missing_local_time_is_not_expected_early() -> None:
    # 2026-03-29 Berlin: 02:00 → 03:00. A 02:30 job's time does not exist that day.
    last = datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN)
    fire = next_cron_fire("30 2 * * *", "Europe/Berlin", last)
    assert fire.astimezone(BERLIN) == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    assert fire - last == timedelta(hours=24)  # real elapsed time, never less
    following = next_cron_fire("30 2 * * *", "Europe/Berlin", fire)
    assert following.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 30, 2, 30)
    assert following - fire == timedelta(hours=23)


def test_dst_fall_back_repeated_hour_expects_one_run() -> None:
    # 2026-10-25 Berlin: 03:00 CEST → 02:00 CET, so 02:30 happens twice.
    before = datetime(2026, 10, 24, 2, 30, tzinfo=BERLIN)
    fire = next_cron_fire("30 2 * * *", "Europe/Berlin", before)
    assert fire == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the later 02:30 (CET)
    # a run in the first 02:30 (CEST) is that day's run: next is tomorrow, not in 1 h
    first_pass = datetime(2026, 10, 25, 0, 31, tzinfo=UTC)
    assert next_cron_fire("30 2 * * *", "Europe/Berlin", first_pass) == datetime(
        2026, 10, 26, 1, 30, tzinfo=UTC)


def test_dst_state_with_injected_clock_goes_down_one_tick_after_the_deadline() -> None:
    sched = Schedule("cron", cron="30 2 * * *", timezone="Europe/Berlin", period=None,
                     grace=timedelta(minutes=15))
    state = pinged(HeartbeatState("nightly", sched), datetime(2026, 3, 28, 1, 31, tzinfo=UTC))
    deadline = datetime(2026, 3, 29, 1, 45, tzinfo=UTC)  # 03:45 CEST
    assert evaluate(state, deadline - timedelta(seconds=1)).status == HeartbeatStatus.LATE
    assert evaluate(state, deadline).status == HeartbeatStatus.DOWN


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ScheduleError, match="bad cron"):
        Schedule("cron", cron="61 * * * *", period=None)
    with pytest.raises(ScheduleError, match="unknown timezone"):
        Schedule("cron", cron="0 * * * *", timezone="Mars/Olympus", period=None)
    with pytest.raises(ScheduleError, match="positive period"):
        Schedule("simple", period=timedelta(0))


def test_rules_file_heartbeats_validate_with_paths_and_lines() -> None:
    rules = parse_rules("""
checks:
  heartbeat:
    - name: nightly_backup
      cron: "30 2 * * *"
      timezone: Europe/Berlin
      grace: 30m
      max_duration: 2h
      token: {env: BACKUP_PING_TOKEN}
    - name: etl
      slug: etl-hourly
      period: 1h
heartbeats:
  auto_create: {enabled: true, period: 1d}
self_monitoring:
  deadman_url: {env: DEADMAN_URL}
""")
    backup, etl = rules.checks.heartbeat
    assert backup.kind == "cron" and backup.ping_slug == "nightly_backup"
    assert etl.ping_slug == "etl-hourly" and etl.kind == "simple"
    assert rules.rule("etl") is etl and rules.heartbeats.auto_create.enabled
    with pytest.raises(RulesError) as err:
        parse_rules("""
checks:
  heartbeat:
    - name: both
      period: 1h
      cron: "0 * * * *"
    - name: bad_slug
      slug: "Bad Slug!"
      period: 1h
    - name: etl_copy
      slug: etl-hourly
      period: 1h
    - name: etl_again
      slug: etl-hourly
      period: 1h
self_monitoring:
  deadman_url: ftp://x
""")
    text = str(err.value)
    assert "checks.heartbeat[0]: give exactly one of period" in text and "(line 4)" in text
    assert "checks.heartbeat[1].slug: expected a slug" in text
    assert "self_monitoring: deadman_url must be an http(s) URL" in text
    assert "checks.heartbeat[3].slug: heartbeat slug 'etl-hourly' is also used by " \
           "'etl_copy'" in text


def test_rule_names_the_system_alerts_under_are_reserved() -> None:
    """A file rule named ``heartbeat`` would share the auto-created checks' alerts (and
    their severity and receivers); likewise the instance-watch and rules-file rules."""
    with pytest.raises(RulesError) as err:
        parse_rules("""
checks:
  heartbeat:
    - name: heartbeat
      period: 1h
  sql_metric:
    - name: dagster_run_failed
      query: select 1
""")
    text = str(err.value)
    assert "checks.heartbeat[0].name: rule name 'heartbeat' is reserved" in text
    assert "checks.sql_metric[0].name: rule name 'dagster_run_failed' is reserved" in text


def test_an_empty_token_is_refused_not_an_open_door() -> None:
    """``token: ""`` (say, a template whose variable was empty) compared equal to a
    missing header: every ping got through. It is a config error now."""
    with pytest.raises(RulesError) as err:
        parse_rules("""
checks:
  heartbeat:
    - {name: job, period: 1h, token: ""}
heartbeats:
  auto_create: {enabled: true, token: " "}
""")
    text = str(err.value)
    assert "checks.heartbeat[0].token: an empty token would let every ping through" in text
    assert "heartbeats.auto_create.token: an empty token" in text


def test_for_and_keep_firing_for_are_refused_on_heartbeats() -> None:
    """A heartbeat row is looked at again only when time can change its verdict: with
    ``for`` its alert stayed pending forever (never paged), with ``keep_firing_for`` it
    stayed recovering until the next deadline. ``grace`` is the heartbeat's ``for``."""
    with pytest.raises(RulesError) as err:
        parse_rules("""
checks:
  heartbeat:
    - {name: a, period: 1h, for: 10m}
    - {name: b, period: 1h, keep_firing_for: 10m}
""")
    text = str(err.value)
    assert "checks.heartbeat[0]: for does not apply to a heartbeat: its grace" in text
    assert "checks.heartbeat[1]: keep_firing_for does not apply to a heartbeat" in text
