"""Heartbeat and instance-watch sensors against a real Dagster test instance.

Real runs (a job whose op raises, an asset whose check fails) in ``instance_for_test``;
the sensors evaluated with ``build_sensor_context``; the dead-man URL is a real local
HTTP receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.assets.operator_jobs import deliver_outbox_job
from alert_jobs.definitions import build_definitions
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.definitions import heartbeats
from alert_jobs.families.heartbeat.instance_watch import build_instance_watch_sensor
from alert_jobs.families.heartbeat.sensor import build_heartbeat_sensor
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow

RULES = """
defaults: {receivers: [console]}
checks:
  heartbeat:
    - name: nightly_backup
      period: 1d
      grace: 1h
      labels: {team: ops}
    - name: etl
      slug: etl-hourly
      period: 1h
      grace: 5m
self_monitoring:
  deadman_url: {env: HB_DEADMAN_URL}
  receivers: [console]
"""


@pytest.fixture
def setup(tmp_path: Path, http_receiver: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("HB_DEADMAN_URL", http_receiver.url)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    timeline = Timeline(db_url)
    with dg.instance_for_test() as instance:
        yield {"rules": rules, "resource": resource, "instance": instance,
               "timeline": timeline, "store": HeartbeatStore(timeline),
               "receiver": http_receiver}
    timeline.dispose()


def tick(setup: dict, sensor: dg.SensorDefinition, cursor: str | None = None) -> Any:
    ctx = dg.build_sensor_context(instance=setup["instance"], cursor=cursor,
                                  resources={"alert_jobs": setup["resource"]})
    return sensor(ctx)


def firing(setup: dict, rule: str | None = None) -> list[Any]:
    return [a for a in setup["timeline"].alerts.list() if rule is None or a.rule == rule]


def firing_events(setup: dict, rule: str) -> list[dict]:
    return setup["timeline"].events.list(rule=rule, kinds=["firing"])


# ----- heartbeats --------------------------------------------------------------------


def test_sensor_syncs_declared_checks_and_pings_the_deadman(setup: dict) -> None:
    sensor = build_heartbeat_sensor()
    result = tick(setup, sensor)
    assert isinstance(result, dg.SensorResult) and result.cursor
    assert {r.state.slug for r in setup["store"].rows()} == {"nightly_backup", "etl-hourly"}
    assert [r.method for r in setup["receiver"].requests] == ["POST"]
    tick(setup, sensor, result.cursor)
    assert len(setup["receiver"].requests) == 2  # every tick


def test_overdue_check_goes_down_on_first_tick_after_deadline_never_before(setup: dict
                                                                           ) -> None:
    sensor = build_heartbeat_sensor()
    cursor = tick(setup, sensor).cursor
    store: HeartbeatStore = setup["store"]
    now = utcnow()
    # nightly: deadline 1 min ahead; etl: deadline 1 s ago
    store.ping("nightly_backup", Signal.SUCCESS, now - timedelta(days=1, minutes=59))
    store.ping("etl-hourly", Signal.SUCCESS, now - timedelta(hours=1, minutes=5, seconds=1))
    result = tick(setup, sensor, cursor)
    alerts = firing(setup)
    assert [(a.rule, a.labels["heartbeat"], a.labels["problem"]) for a in alerts] == [
        ("etl", "etl-hourly", "missing")]
    assert len(result.run_requests) == 1  # a delivery run for the queued notification
    again = tick(setup, sensor, result.cursor)
    assert again.run_requests == [] and len(firing_events(setup, "etl")) == 1  # no repeat
    # the ping resolves it on the next tick (or at once through the server)
    store.ping("etl-hourly", Signal.SUCCESS, utcnow())
    tick(setup, sensor, result.cursor)
    assert firing(setup) == []
    assert setup["timeline"].events.list(rule="etl", kinds=["resolved"])


def test_removed_check_is_dropped_and_its_alert_resolved(setup: dict) -> None:
    sensor = build_heartbeat_sensor()
    cursor = tick(setup, sensor).cursor
    setup["store"].ping("etl-hourly", Signal.FAIL, utcnow())
    tick(setup, sensor, cursor)
    assert [a.labels["problem"] for a in firing(setup)] == ["failed"]
    setup["rules"].write_text(RULES.replace("    - name: etl\n      slug: etl-hourly\n"
                                            "      period: 1h\n      grace: 5m\n", ""))
    tick(setup, sensor, cursor)
    assert setup["store"].get("etl-hourly") is None and firing(setup) == []


def test_deadman_failure_never_fails_the_tick(setup: dict, capfd: pytest.CaptureFixture
                                             ) -> None:
    """A dead-man service that answers 500 or hangs: the ping was sent, the failure is in
    the tick's log, and the tick itself succeeds (its other work is done)."""
    setup["receiver"].default = 500
    assert isinstance(tick(setup, build_heartbeat_sensor()), dg.SensorResult)
    assert [r.method for r in setup["receiver"].requests] == ["POST"]  # attempted
    assert "dead-man ping refused: HTTP 500" in capfd.readouterr().err
    setup["receiver"].script = ["hang"]
    setup["receiver"].hang_seconds = 4.0  # past the 3 s timeout
    result = tick(setup, build_heartbeat_sensor())
    assert isinstance(result, dg.SensorResult)
    assert "dead-man ping failed: ReadTimeout" in capfd.readouterr().err
    assert [r.answered for r in setup["receiver"].requests] == [500, 0]  # sent, no answer
    assert {r.state.slug for r in setup["store"].rows()} == {"nightly_backup", "etl-hourly"}


def test_heartbeats_asset_summarizes_states(setup: dict) -> None:
    tick(setup, build_heartbeat_sensor())
    setup["store"].ping("etl-hourly", Signal.FAIL, utcnow())
    setup["store"].ping("nightly_backup", Signal.SUCCESS, utcnow())
    result = dg.materialize([heartbeats], instance=setup["instance"],
                            resources={"alert_jobs": setup["resource"]})
    (mat,) = result.asset_materializations_for_node("heartbeats")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["checks_total"] == 2 and meta["checks_down"] == 1 and meta["checks_up"] == 1
    assert "etl-hourly" in meta["attention"]
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR


def test_code_location_loads_with_heartbeat_definitions(setup: dict) -> None:
    defs = build_definitions(str(setup["rules"]))
    repo = defs.get_repository_def()
    names = {s.name for s in repo.sensor_defs}
    assert {"heartbeat_sensor", "instance_watch_sensor"} <= names
    assert repo.get_sensor_def("heartbeat_sensor").minimum_interval_seconds == 30
    schedule = defs.resolve_schedule_def("heartbeats_summary_schedule")
    assert schedule.execution_timezone == "UTC"


# ----- instance watch ----------------------------------------------------------------


@dg.op
def explode() -> None:
    raise RuntimeError("disk full while writing the export")


@dg.job
def nightly_export() -> None:
    explode()


@dg.op
def fine() -> None:
    return None


@dg.job(name="nightly_export")
def nightly_export_fixed() -> None:
    fine()


STATE = {"passed": False, "severity": dg.AssetCheckSeverity.WARN}


@dg.asset(check_specs=[dg.AssetCheckSpec("no_nulls", asset="orders")])
def orders() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="no_nulls", passed=STATE["passed"], severity=STATE["severity"],
        description="12 rows with a null customer_id")])


def test_a_real_failing_run_is_exactly_one_alert_and_success_resolves(setup: dict) -> None:
    sensor = build_instance_watch_sensor()
    result = nightly_export.execute_in_process(instance=setup["instance"],
                                               raise_on_error=False)
    assert not result.success
    first = tick(setup, sensor)
    (alert,) = firing(setup, "dagster_run_failed")
    assert alert.labels == {"job": "nightly_export", "location": ""}
    assert result.run_id[:8] in alert.last_summary
    assert len(first.run_requests) == 1
    second = tick(setup, sensor, first.cursor)
    assert second.run_requests == [] and len(firing_events(setup, "dagster_run_failed")) == 1
    notified = [r for r in setup["timeline"].outbox.rows() if r["rule"] == "dagster_run_failed"]
    assert len(notified) == 1
    assert nightly_export_fixed.execute_in_process(instance=setup["instance"]).success
    tick(setup, sensor, second.cursor)
    assert firing(setup, "dagster_run_failed") == []


def test_a_real_failing_asset_check_is_exactly_one_alert_with_its_severity(setup: dict
                                                                          ) -> None:
    sensor = build_instance_watch_sensor()
    STATE.update(passed=False, severity=dg.AssetCheckSeverity.WARN)
    dg.materialize([orders], instance=setup["instance"])
    first = tick(setup, sensor)
    (alert,) = firing(setup, "dagster_asset_check_failed")
    assert alert.labels == {"asset": "orders", "check": "no_nulls"}
    assert str(alert.severity) == "warning" and "null customer_id" in alert.last_summary
    second = tick(setup, sensor, first.cursor)
    assert len(firing_events(setup, "dagster_asset_check_failed")) == 1
    STATE.update(severity=dg.AssetCheckSeverity.ERROR)
    dg.materialize([orders], instance=setup["instance"])
    third = tick(setup, sensor, second.cursor)
    (alert,) = firing(setup, "dagster_asset_check_failed")
    assert str(alert.severity) == "critical"  # ERROR pages
    STATE.update(passed=True)
    dg.materialize([orders], instance=setup["instance"])
    tick(setup, sensor, third.cursor)
    assert firing(setup, "dagster_asset_check_failed") == []


def test_own_asset_checks_are_not_alerted_twice(setup: dict) -> None:
    STATE.update(passed=False, severity=dg.AssetCheckSeverity.ERROR)
    dg.materialize([orders], instance=setup["instance"])
    tick(setup, build_instance_watch_sensor(own_assets=["orders"]))
    assert firing(setup) == []
    # Positive control: the same failed check, seen by a sensor for whom "orders" is
    # another location's asset, is an alert.
    tick(setup, build_instance_watch_sensor(own_assets=["other"]))
    assert [a.labels for a in firing(setup)] == [{"asset": "orders", "check": "no_nulls"}]


def test_own_assets_are_read_from_the_code_location_the_sensor_runs_in(setup: dict
                                                                        ) -> None:
    """By default the sensor skips the checks of assets its own code location defines."""
    STATE.update(passed=False, severity=dg.AssetCheckSeverity.ERROR)
    dg.materialize([orders], instance=setup["instance"])
    sensor = build_instance_watch_sensor()

    def tick_in(assets: list[Any]) -> None:
        ctx = dg.build_sensor_context(
            instance=setup["instance"], resources={"alert_jobs": setup["resource"]},
            definitions=dg.Definitions(assets=assets, sensors=[sensor],
                                       jobs=[deliver_outbox_job],
                                       resources={"alert_jobs": setup["resource"]}))
        sensor(ctx)

    tick_in([orders])
    assert firing(setup) == []
    tick_in([])  # positive control: a location without "orders" alerts on its check
    assert [a.labels for a in firing(setup)] == [{"asset": "orders", "check": "no_nulls"}]


def test_first_tick_looks_back_only_the_configured_window(setup: dict) -> None:
    nightly_export.execute_in_process(instance=setup["instance"], raise_on_error=False)
    setup["rules"].write_text(RULES + "  lookback: 1ms\n")
    import time

    time.sleep(0.05)
    sensor = build_instance_watch_sensor()
    first = tick(setup, sensor)
    assert firing(setup) == []  # the failure before the window is history
    # Positive control: a failure inside the window (after the first look) is an alert.
    nightly_export.execute_in_process(instance=setup["instance"], raise_on_error=False)
    tick(setup, sensor, first.cursor)
    assert [a.labels["job"] for a in firing(setup)] == ["nightly_export"]


def test_instance_watch_can_be_turned_off(setup: dict) -> None:
    setup["rules"].write_text(RULES + "  instance_watch: false\n")
    nightly_export.execute_in_process(instance=setup["instance"], raise_on_error=False)
    tick(setup, build_instance_watch_sensor())
    assert firing(setup) == []
    # Positive control: the same failed run, with the watch turned on again, alerts.
    setup["rules"].write_text(RULES)
    tick(setup, build_instance_watch_sensor())
    assert [a.labels["job"] for a in firing(setup)] == ["nightly_export"]


ROOT = Path(__file__).resolve().parents[3]


def _daemon_until(instance: dg.DagsterInstance, tmp_path: Path, env: dict[str, str], *,
                  failed: bool, count: int = 1) -> None:
    """Run the real ``dagster-daemon`` on this instance, with a second code location
    (``partner_location``) whose sensor fails while ``$PARTNER_SENSOR_BROKEN_FLAG``
    exists, until that sensor has finished ``count`` more ticks that failed (or not)."""
    workspace = tmp_path / "partner_workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: tests.families.heartbeat.instance_watch_location\n"
        f"      location_name: partner_location\n      working_directory: {ROOT}\n")
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run",
                               "-w", str(workspace)], cwd=ROOT,
                              env={**os.environ, **env, "DAGSTER_HOME": instance.root_directory},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        seen: set[int] = {t.tick_id for t in _partner_ticks(instance)}
        while time.monotonic() < deadline:
            new = [t for t in _partner_ticks(instance) if t.tick_id not in seen
                   and str(t.status.value) != "STARTED"]
            if sum(t.is_failure == failed for t in new) >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"the daemon finished fewer than {count} "
                             f"{'failed' if failed else 'good'} tick(s) of partner_sensor "
                             "within 120 s")
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def _partner_ticks(instance: dg.DagsterInstance) -> list[Any]:
    states = [s for s in instance.all_instigator_state()
              if s.instigator_name == "partner_sensor"]
    return [tick for s in states
            for tick in instance.get_ticks(s.instigator_origin_id, s.selector_id)]


def test_a_real_failed_sensor_tick_alerts_once_and_a_good_tick_resolves(
        setup: dict, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    env = {"PARTNER_SENSOR_BROKEN_FLAG": str(flag)}
    _daemon_until(setup["instance"], tmp_path, env, failed=True)
    sensor = build_instance_watch_sensor()
    first = tick(setup, sensor)
    (alert,) = firing(setup, "dagster_tick_failed")
    assert alert.labels == {"instigator": "partner_sensor", "type": "sensor",
                            "location": "partner_location"}
    assert "cannot reach the partner API" in alert.last_summary
    second = tick(setup, sensor, first.cursor)
    assert len(firing_events(setup, "dagster_tick_failed")) == 1
    flag.unlink()
    _daemon_until(setup["instance"], tmp_path, env, failed=False)
    tick(setup, sensor, second.cursor)
    assert firing(setup, "dagster_tick_failed") == []


# ----- a broken rules file ------------------------------------------------------------


def test_broken_rules_file_falls_back_to_last_good_and_alerts(
        setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_jobs.config import RulesError, load_rules
    from alert_jobs.config.last_good import last_good_path, load_rules_or_last_good

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    rules_file = setup["rules"]
    with pytest.raises(RulesError):  # no good copy yet: the error is raised as before
        load_rules_or_last_good(tmp_path / "never-valid.yaml")
    build_definitions(str(rules_file))  # a good load saves the copy
    assert last_good_path(rules_file).read_text() == RULES
    rules_file.write_text(RULES.replace("period: 1h", "period: soon"))
    with pytest.raises(RulesError):
        load_rules(rules_file)
    repo = build_definitions(str(rules_file)).get_repository_def()  # still loads
    assert "heartbeat_sensor" in {s.name for s in repo.sensor_defs}
    assert setup["resource"].load_rules().checks.heartbeat[1].period == timedelta(hours=1)

    sensor = build_heartbeat_sensor()
    result = tick(setup, sensor)
    (alert,) = firing(setup, "rules_file_invalid")
    assert alert.labels == {"file": str(rules_file)} and str(alert.severity) == "critical"
    assert "checks.heartbeat[1].period: expected a duration" in alert.last_summary
    assert "(line 11)" in alert.last_summary
    assert len(result.run_requests) == 1
    tick(setup, sensor, result.cursor)
    assert len(firing_events(setup, "rules_file_invalid")) == 1
    rules_file.write_text(RULES)
    tick(setup, sensor, result.cursor)
    assert firing(setup, "rules_file_invalid") == []


# ----- instance watch: cursors across outages and full pages ---------------------------


def _watch(setup: dict, cursor: Any, page: int) -> None:
    """One instance-watch pass with a small page (what the sensor does with 500)."""
    from alert_jobs.families.heartbeat.instance_watch import watch_once
    from alert_jobs.families.heartbeat.watch import (
        ASSET_CHECK_FAILED,
        RUN_FAILED,
        TICK_FAILED,
        active_fingerprints,
        report,
    )

    rules, timeline = setup["resource"].load_rules(), setup["timeline"]
    active = active_fingerprints(timeline, (RUN_FAILED, ASSET_CHECK_FAILED, TICK_FAILED))
    observations = watch_once(setup["instance"], rules, cursor, now=utcnow(), active=active,
                              page=page)
    report(rules, timeline, observations, now=utcnow())


def test_a_failure_after_an_outage_longer_than_lookback_is_not_missed(setup: dict) -> None:
    """The lookback bounds the first tick only: a failure that happened while the daemon
    was down longer than ``lookback`` (nothing seen before) still alerts."""
    import time

    setup["rules"].write_text(RULES + "  lookback: 1s\n")
    sensor = build_instance_watch_sensor()
    first = tick(setup, sensor)  # nothing yet
    nightly_export.execute_in_process(instance=setup["instance"], raise_on_error=False)
    time.sleep(1.5)  # the daemon was "down" for longer than lookback
    second = tick(setup, sensor, first.cursor)
    assert [a.labels["job"] for a in firing(setup, "dagster_run_failed")] == ["nightly_export"]
    tick(setup, sensor, second.cursor)
    assert len(firing_events(setup, "dagster_run_failed")) == 1  # and not repeated


def test_full_pages_keep_failures_and_successes_in_order(setup: dict) -> None:
    """fail, fail, succeed, read one record per page: the job ends resolved (a success
    is never applied before an older failure that was not read yet)."""
    from alert_jobs.families.heartbeat.instance_watch import Cursor

    instance = setup["instance"]
    nightly_export.execute_in_process(instance=instance, raise_on_error=False)
    nightly_export.execute_in_process(instance=instance, raise_on_error=False)
    assert nightly_export_fixed.execute_in_process(instance=instance).success
    cursor = Cursor(None)
    for _ in range(4):
        _watch(setup, cursor, page=1)
    assert firing(setup, "dagster_run_failed") == []
    assert len(firing_events(setup, "dagster_run_failed")) == 1


def test_more_ticks_than_a_page_never_skip_a_failed_tick(setup: dict, tmp_path: Path) -> None:
    """A failed tick followed by more good ticks than a page still alerts (then
    resolves): Dagster returns the newest ticks first."""
    from alert_jobs.families.heartbeat.instance_watch import Cursor

    flag = tmp_path / "broken"
    env = {"PARTNER_SENSOR_BROKEN_FLAG": str(flag)}
    _daemon_until(setup["instance"], tmp_path, env, failed=False)  # the watch knows it
    cursor = Cursor(None)
    _watch(setup, cursor, page=2)
    flag.touch()
    _daemon_until(setup["instance"], tmp_path, env, failed=True)
    flag.unlink()
    _daemon_until(setup["instance"], tmp_path, env, failed=False, count=3)  # > a page
    _watch(setup, cursor, page=2)
    assert len(firing_events(setup, "dagster_tick_failed")) == 1
    assert firing(setup, "dagster_tick_failed") == []


def test_last_good_copy_is_no_more_readable_than_the_rules_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rules file may hold inline secrets (tokens, webhook URLs): its saved copy keeps
    the file's permissions instead of the umask's (often world-readable)."""
    from alert_jobs.config.last_good import last_good_path, load_rules_or_last_good

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    rules_file = tmp_path / "private.yaml"
    rules_file.write_text(RULES)
    rules_file.chmod(0o600)
    load_rules_or_last_good(rules_file)
    assert last_good_path(rules_file).stat().st_mode & 0o777 == 0o600


def test_an_unreadable_cursor_starts_over_instead_of_failing_every_tick(setup: dict
                                                                        ) -> None:
    """Nothing watches the instance-watch sensor itself: a cursor set by hand in the UI
    must not break it for good."""
    nightly_export.execute_in_process(instance=setup["instance"], raise_on_error=False)
    for junk in ("not json", "[1, 2]"):
        result = tick(setup, build_instance_watch_sensor(), junk)
        assert isinstance(result, dg.SensorResult) and json.loads(result.cursor)["since"]
    assert [a.labels["job"] for a in firing(setup, "dagster_run_failed")] == ["nightly_export"]
