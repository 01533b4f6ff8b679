"""Scheduled checks that stop running (issue #20): the expectation on every check asset,
the verdict, the likely cause, and the instance watch's alert against a real instance.

The real daemon (a schedule stopped and started again) is ``tests/test_watch_daemon.py``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.assets.operator_jobs import deliver_outbox_job
from alert_jobs.config import load_rules
from alert_jobs.core.cron import longest_quiet
from alert_jobs.core.model import Status
from alert_jobs.definitions import build_definitions
from alert_jobs.families.heartbeat import instance_watch
from alert_jobs.families.heartbeat.instance_watch import build_instance_watch_sensor
from alert_jobs.families.heartbeat.watch_freshness import (
    ScheduleFacts,
    is_stale,
    likely_cause,
    own_expectations,
    stale_observations,
)
from alert_jobs.runtime.freshness_policy import SCHEDULE_KEY, WINDOW_KEY, freshness_fields
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow

ROOT = Path(__file__).resolve().parents[3]
MINUTE = timedelta(minutes=1)


# ----- the expectation on every scheduled check asset ---------------------------------


def test_every_scheduled_check_asset_expects_twice_its_schedules_interval() -> None:
    """The demo rules file's check assets (sql_metric, slo, redis_quota, score_drift)
    each carry Dagster's freshness policy and name the schedule that evaluates them."""
    repo = build_definitions(str(ROOT / "alerts.yaml")).get_repository_def()
    expectations = own_expectations(repo)
    families = {e.rule.split("/")[0] for e in expectations}
    assert {"sql_metric", "slo", "redis_quota", "model_scores"} <= families
    schedules = {s.name: s for s in repo.schedule_defs}
    for e in expectations:
        schedule = schedules[e.schedule]  # a schedule that exists …
        job = repo.get_job(schedule.job_name)
        assert e.asset in job.asset_layer.executable_asset_keys  # … and evaluates it
        gap = longest_quiet(str(schedule.cron_schedule), schedule.execution_timezone or "UTC")
        assert e.window == 2 * gap, e
        spec = next(s for s in repo.assets_defs_by_key[e.asset].specs if s.key == e.asset)
        policy: Any = spec.freshness_policy
        assert policy.fail_window.to_timedelta() == e.window


def test_freshness_windows_follow_the_rules_file(tmp_path: Path) -> None:
    text = (ROOT / "alerts.yaml").read_text()
    path = tmp_path / "alerts.yaml"
    path.write_text(text + "\nfreshness:\n  intervals: 3\n  stale_after: {slo: 45m}\n")
    rules = load_rules(path)
    fields = freshness_fields(rules, "sql_metric", "s", "*/5 * * * *", "UTC")
    assert fields["metadata"] == {SCHEDULE_KEY: "s", WINDOW_KEY: 900.0}
    assert freshness_fields(rules, "slo", "s", "* * * * *", "UTC")["metadata"][WINDOW_KEY] \
        == 2700.0
    # A schedule's own window comes before its family's.
    path.write_text(text + "\nfreshness:\n  stale_after: {slo: 45m, slo_fast_schedule: 5m}\n")
    by_schedule = freshness_fields(load_rules(path), "slo", "slo_fast_schedule", "* * * * *",
                                   "UTC")
    assert by_schedule["metadata"][WINDOW_KEY] == 300.0
    path.write_text(text + "\nfreshness: {enabled: false}\n")
    assert freshness_fields(load_rules(path), "sql_metric", "s", "* * * * *", "UTC") == {}


@pytest.mark.parametrize("section, message", [
    ("freshness: {stale_after: {sql_metric: 30s}}", "at least 1m"),
    ("freshness: {intervals: 0.5}", "greater than or equal to 1"),
    ("freshness: {after: 2}", "after"),
])
def test_bad_freshness_settings_are_refused_with_their_reason(tmp_path: Path, section: str,
                                                              message: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text((ROOT / "alerts.yaml").read_text() + "\n" + section + "\n")
    with pytest.raises(Exception, match=message) as info:
        load_rules(path)
    assert "freshness" in str(info.value)


@pytest.mark.parametrize("cron, quiet", [
    ("* * * * *", timedelta(minutes=1)),
    ("*/5 * * * 1-5", timedelta(days=2, minutes=5)),  # Friday 23:55 → Monday 00:00
    ("* 9-17 * * *", timedelta(hours=15, minutes=1)),  # 17:59 → 09:00
    ("0 9 * * 1", timedelta(days=7)),
    ("0 9 1 * *", timedelta(days=31)),
])
def test_a_schedule_is_quiet_for_its_nights_and_weekends_too(cron: str,
                                                            quiet: timedelta) -> None:
    """The window is twice the longest silence, not twice the usual interval: a
    weekday schedule is not stale on Saturday (400 fire times of */5 never reach it)."""
    assert longest_quiet(cron, "Europe/Berlin") == quiet


# ----- the verdict and the cause (pure) -------------------------------------------------


def test_stale_after_the_window_or_when_dagster_failed_it_since() -> None:
    w = 2 * MINUTE
    assert not is_stale(w, 1000.0, None, None, now=1100.0, watching_since=0)
    assert is_stale(w, 1000.0, None, None, now=1121.0, watching_since=0)
    # Dagster's FAIL after the last evaluation counts; an older FAIL does not.
    assert is_stale(w, 1000.0, "FAIL", 1010.0, now=1020.0, watching_since=0)
    assert not is_stale(w, 1000.0, "FAIL", 990.0, now=1020.0, watching_since=0)
    # Never evaluated: stale once the watch has watched longer than the window.
    assert not is_stale(w, None, "UNKNOWN", 5.0, now=100.0, watching_since=0.0)
    assert is_stale(w, None, "UNKNOWN", 5.0, now=121.0, watching_since=0.0)


def _facts(**kw: Any) -> ScheduleFacts:
    base: dict[str, Any] = dict(name="sql_metric_every_minute_schedule", cron="* * * * *",
                                scheduler_seen_at=995.0, last_tick_at=990.0,
                                last_tick_status="SUCCESS", last_run_id="abcdef1234",
                                last_run_status="SUCCESS")
    return ScheduleFacts(**{**base, **kw})


@pytest.mark.parametrize("facts, cause", [
    (_facts(stopped=True), "is stopped: start it in the Dagster UI (Automation) or with "
                           "`dagster schedule start sql_metric_every_minute_schedule`"),
    (_facts(scheduler_seen_at=None), "scheduler has never reported"),
    (_facts(scheduler_seen_at=500.0), "daemon is not running: its scheduler last reported 8m"),
    (_facts(last_tick_at=None), "has not ticked the schedule"),
    (_facts(last_tick_at=700.0), "daemon is behind: the schedule sql_metric_every_minute_"
                                 "schedule last ticked 5 minutes ago"),
    (_facts(last_tick_status="FAILURE", last_tick_note="KeyError: 'x'"),
     "ticks fail: KeyError: 'x'"),
    (_facts(last_tick_status="SKIPPED", last_tick_note="run abc of batch b is still started"),
     "ticks are skipped: run abc of batch b is still started"),
    (_facts(last_run_status="FAILURE"), "last run abcdef12 ended FAILURE (http://d/runs/abc"),
    (_facts(last_run_status="QUEUED"), "waits in the run queue"),
    (_facts(), "did not evaluate these rules"),
])
def test_the_likely_cause_is_the_first_explanation_that_fits(facts: ScheduleFacts,
                                                            cause: str) -> None:
    assert cause in likely_cause(facts, now=1000.0, dagster_url="http://d")


# ----- against a real instance ----------------------------------------------------------


def _location(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A location with two scheduled check assets (one never materialized) on one
    schedule, expectations from a real rules file."""
    rules_path = tmp_path / "alerts.yaml"
    rules_path.write_text("defaults: {receivers: [console]}\n")
    fields = freshness_fields(load_rules(rules_path), "sql_metric", "probe_schedule",
                              "* * * * *", "UTC")

    @dg.asset(key="probe", **fields)
    def probe() -> None:
        return None

    @dg.asset(key="never_run", **fields)
    def never_run() -> None:
        return None

    schedule = dg.ScheduleDefinition(name="probe_schedule", cron_schedule="* * * * *",
                                     target=dg.AssetSelection.assets(probe, never_run),
                                     execution_timezone="UTC")
    defs = dg.Definitions(assets=[probe, never_run], schedules=[schedule])
    return defs, probe, rules_path


def test_a_stale_check_alerts_naming_rule_schedule_last_run_and_cause(tmp_path: Path
                                                                      ) -> None:
    defs, probe, _ = _location(tmp_path)
    repo = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        dg.materialize([probe], instance=instance)
        now = utcnow()
        kw: dict[str, Any] = dict(location="here", dagster_url="http://dagster")
        # Just materialized, and the watch just started: nothing is stale (the never
        # materialized one neither) …
        seen: dict[str, float] = {}
        assert stale_observations(instance, repo, [], now=now, first_seen=seen, **kw) == []
        assert seen == {"never_run": now.timestamp()}  # first seen now: not stale yet
        # … three minutes later both are (positive control of the line above).
        later = now + 3 * MINUTE
        (obs,) = stale_observations(instance, repo, [], now=later, first_seen=seen, **kw)
        assert obs.status == Status.ALERT and obs.rule == "dagster_check_stale"
        assert obs.labels == {"schedule": "probe_schedule", "location": "here"}
        assert obs.value == 2.0
        assert "2 check(s) of schedule probe_schedule not evaluated within 2 minutes (* * * * * " \
               "UTC): never_run, probe" in obs.summary
        assert "last evaluated" in obs.summary and "(3 minutes ago)" in obs.summary
        # No daemon ever ran on this instance: that is the cause it names.
        assert "Likely cause: the Dagster daemon's scheduler has never reported" in obs.summary
        # Evaluated again: the open alert resolves; a schedule that is gone resolves too.
        dg.materialize([probe], instance=instance)
        fresh = utcnow()
        opened = [{"schedule": "probe_schedule", "location": "here"},
                  {"schedule": "removed_schedule", "location": "here"},
                  {"schedule": "elsewhere", "location": "another"}]
        got = stale_observations(instance, repo, opened, now=fresh,
                                 first_seen={"never_run": fresh.timestamp() - 30}, **kw)
        assert [(o.status, o.labels["schedule"]) for o in got] == [
            (Status.OK, "probe_schedule"), (Status.OK, "removed_schedule")]
        assert "no longer defined" in got[1].summary


def test_the_sensor_alerts_once_the_watch_has_watched_longer_than_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the instance-watch sensor of a real location: a check never evaluated
    is stale only once the watch has seen it for longer than its window (kept per
    check in the cursor, so a rule deployed later is not stale on arrival), and the
    alert is delivered through the engine once."""
    defs, probe, rules_path = _location(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules_path), database_url=db_url)
    sensor = build_instance_watch_sensor()
    location = dg.Definitions.merge(defs, dg.Definitions(
        sensors=[sensor], jobs=[deliver_outbox_job], resources={"alert_jobs": resource}))
    timeline = Timeline(db_url)
    start = utcnow()
    try:
        with dg.instance_for_test() as instance:
            dg.materialize([probe], instance=instance)

            def tick(at: Any, cursor: str | None, where: Any = location) -> Any:
                monkeypatch.setattr(instance_watch, "utcnow", lambda: at)
                ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              definitions=where,
                                              resources={"alert_jobs": resource})
                return sensor(ctx)

            first = tick(start, None)
            assert [a.rule for a in timeline.alerts.list()] == []
            second = tick(start + 90 * timedelta(seconds=1), first.cursor)
            assert [a.rule for a in timeline.alerts.list()] == []  # within the window
            third = tick(start + 3 * MINUTE, second.cursor)
            (alert,) = timeline.alerts.list()
            assert alert.rule == "dagster_check_stale" and str(alert.state) == "firing"
            assert "never_run, probe" in alert.last_summary
            # A deploy adds a rule to the schedule: not stale on arrival …
            fields = freshness_fields(load_rules(rules_path), "sql_metric", "probe_schedule",
                                      "* * * * *", "UTC")

            @dg.asset(key="added_later", **fields)
            def added_later() -> None:
                return None

            deployed = dg.Definitions.merge(location, dg.Definitions(assets=[added_later]))
            fourth = tick(start + 4 * MINUTE, third.cursor, deployed)
            (alert,) = timeline.alerts.list()  # still stale: still one alert
            assert "added_later" not in alert.last_summary
            assert len(timeline.events.list(rule="dagster_check_stale",
                                            kinds=["firing"])) == 1
            # … but once it has gone unevaluated for its window, it is named too.
            fifth = tick(start + 7 * MINUTE, fourth.cursor, deployed)
            (alert,) = timeline.alerts.list()
            assert "added_later, never_run, probe" in alert.last_summary
            # Switching the watch off resolves what it had open (nothing else would).
            rules_path.write_text(rules_path.read_text()
                                  + "self_monitoring: {stale_checks: false}\n")
            tick(start + 8 * MINUTE, fifth.cursor, deployed)
            assert timeline.alerts.list() == []
            (resolved,) = timeline.events.list(rule="dagster_check_stale", kinds=["resolved"])
            assert "stale_checks" in resolved["reason"] or "No longer watched" in str(resolved)
    finally:
        timeline.dispose()
