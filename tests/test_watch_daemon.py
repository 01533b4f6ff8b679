"""What users rely on, watched under a real ``dagster-daemon`` and ``dagster-webserver``
(issue #20): a check whose schedule is stopped, a run that hangs, a code location that
does not load.

One instance, one workspace with two code locations — alert-jobs, and a module whose
import fails (``broken_pipeline``) — and a rules file with:

* ``fresh_probe``, a cheap sql_metric rule on ``* * * * *`` whose schedule's freshness
  window is 60 s, Dagster's shortest (``freshness.stale_after``);
* ``slow_probe``, in its own batch on a yearly schedule, whose PostgreSQL query sleeps
  for minutes; the test launches its job through the webserver's GraphQL API, and
  ``self_monitoring.hung_after`` gives that job 15 s.

The instance watch looks every 5 s and reports to a local webhook receiver. The test
waits for: the broken location's alert (its first line names the missing module); the
hung run's alert (with the run link), resolved once the run is terminated; an
evaluation of ``fresh_probe`` (its batch's job launched at once, not waiting for a
tick); then it stops the schedule, sees the stale alert naming the rule, the schedule,
when it last ran and "the schedule … is stopped", starts the schedule again and sees the
next tick resolve it. About two and a half minutes, mostly waiting — all three watches
share one daemon so that ``make test`` pays for one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from alert_jobs.store import Timeline
from tests.processes import (
    ArrivalReceiver,
    Processes,
    arrival_receiver,
    graphql,
    tool,
    webserver_up,
)

pytestmark = [pytest.mark.timeout(480), pytest.mark.long_running]

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = "sql_metric_every_minute_schedule"
SLOW_JOB = "sql_metric_slow_job"
PROBE_JOB = "sql_metric_every_minute_job"
BROKEN = "broken_pipeline"
MISSING = "nonexistent_dep_for_watch_test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[ArrivalReceiver]:
    with arrival_receiver() as r:
        yield r


def _write(folder: Path, web: str, hook: str, pg: str) -> None:
    home = folder / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    (folder / "broken.py").write_text(f"import {MISSING}  # a dependency the deploy forgot\n")
    (folder / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": "alert_jobs.definitions",
                           "location_name": "alert_jobs", "working_directory": str(ROOT)}},
        {"python_file": {"relative_path": str(folder / "broken.py"),
                         "location_name": BROKEN}}]}))
    source = folder / "source.db"
    with sa.create_engine(f"sqlite:///{source}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x integer)"))
    rules = {
        "version": 1,
        "defaults": {"receivers": ["hook"], "timezone": "UTC", "schedule": "* * * * *",
                     "dagster_url": web},
        "receivers": [{"name": "hook", "type": "webhook", "url": hook,
                       "send_resolved": True}],
        "quality": {"start_date": datetime.now(UTC).date().isoformat()},
        "freshness": {"stale_after": {SCHEDULE: "60s"}},
        "self_monitoring": {"watch_interval": "5s", "receivers": ["hook"],
                            "hung_after": {SLOW_JOB: "15s"}},
        "checks": {"sql_metric": [
            {"name": "fresh_probe", "database": f"sqlite:///{source}",
             "query": "SELECT count(*) FROM t", "expect": {"max": 10}},
            {"name": "slow_probe", "batch": "slow", "schedule": "0 0 1 1 *",
             "database": pg, "query": "SELECT 1 FROM pg_sleep(240)",
             "query_timeout": "300s", "expect": {"max": 10}},
        ]},
    }
    (folder / "alerts.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))


def _alert(timeline: Timeline, rule: str, **labels: str) -> Any:
    """The open alert of ``rule`` with ``labels``, or None."""
    return next((a for a in timeline.alerts.list() if a.rule == rule
                 and all(a.labels.get(k) == v for k, v in labels.items())), None)


def _episode_resolved(timeline: Timeline, rule: str, since: float) -> bool:
    events = timeline.events.list(rule=rule, kinds=["resolved"],
                                  since=datetime.fromtimestamp(since, UTC))
    return bool(events)


def _schedule_state_id(web: str) -> str:
    data = graphql(web, """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
        __typename ... on Schedule { scheduleState { id } } ... on PythonError { message } } }""",
                   {"s": _selector(SCHEDULE, "scheduleName")})
    return str(data["scheduleOrError"]["scheduleState"]["id"])


def _selector(name: str, key: str) -> dict[str, str]:
    return {"repositoryLocationName": "alert_jobs", "repositoryName": "__repository__",
            key: name}


def _mutate(web: str, query: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
    result = graphql(web, query, variables)[field]
    assert result.get("__typename") != "PythonError", result
    return dict(result)


def _launch(web: str, job: str) -> str:
    result = _mutate(web, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } }
        ... on PythonError { message } ... on InvalidSubsetError { message }
        ... on RunConfigValidationInvalid { errors { message } } } }""",
        {"p": {"selector": _selector(job, "jobName"), "runConfigData": {}}}, "launchRun")
    assert result["__typename"] == "LaunchRunSuccess", result
    return str(result["run"]["runId"])


def _succeeded(web: str, run_id: str) -> bool:
    data = graphql(web, """query($r: ID!) { runOrError(runId: $r) {
        ... on Run { status } } }""", {"r": run_id})
    status = data["runOrError"].get("status")
    assert status not in ("FAILURE", "CANCELED"), f"run {run_id} ended {status}"
    return status == "SUCCESS"


def test_stopped_schedule_hung_run_and_broken_location_each_alert_and_resolve(
        tmp_path: Path, receiver: ArrivalReceiver, pg_base_url: str) -> None:
    port = _free_port()
    web = f"http://127.0.0.1:{port}"
    _write(tmp_path, web, receiver.url, pg_base_url)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
           "ALERT_JOBS_RULES": str(tmp_path / "alerts.yaml"),
           "ALERT_JOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'timeline.db'}",
           "PYTHONUNBUFFERED": "1"}
    env.pop("ALERT_JOBS_LINK_SECRET", None)
    for argv in ([tool("dagster"), "instance", "migrate"], [tool("alert-jobs"), "db", "upgrade"]):
        subprocess.run(argv, env=env, cwd=tmp_path, check=True, capture_output=True,
                       timeout=180)
    timeline = Timeline(env["ALERT_JOBS_DATABASE_URL"])
    procs = Processes(tmp_path, env)
    procs.context = lambda: "pages: " + "; ".join(receiver.seen()) + "\nalerts: " + "; ".join(
        f"{a.rule} {a.labels} {a.state}: {a.last_summary}" for a in timeline.alerts.list())
    workspace = str(tmp_path / "workspace.yaml")
    try:
        procs.start("daemon", [tool("dagster-daemon"), "run", "-w", workspace])
        procs.start("webserver", [tool("dagster-webserver"), "-w", workspace,
                                  "-h", "127.0.0.1", "-p", str(port)])
        procs.wait_for("the webserver", lambda: webserver_up(web), 120)

        # A run that hangs: its query sleeps for minutes, its job may take 15 s.
        run_id = _launch(web, SLOW_JOB)
        probe_run = _launch(web, PROBE_JOB)  # an evaluation now, not at the next tick
        hung = procs.wait_for("the hung run's alert", lambda: _alert(
            timeline, "dagster_run_hung", job=SLOW_JOB), 120)
        assert f"{web}/runs/{run_id}" in hung.last_summary
        assert "15s" in hung.last_summary or "15 seconds" in hung.last_summary
        procs.wait_for("the hung run's page", lambda: receiver.first(
            "dagster_run_hung", labels={"job": SLOW_JOB}), 60)

        # The broken location, seen through the webserver's GraphQL API.
        broken = procs.wait_for("the broken location's alert", lambda: _alert(
            timeline, "dagster_location_failed", location=BROKEN), 60)
        assert MISSING in broken.last_summary
        assert receiver.first("dagster_location_failed", labels={"location": BROKEN})
        # Positive control of "only broken locations": alert-jobs' own location loads.
        assert _alert(timeline, "dagster_location_failed", location="alert_jobs") is None

        # Terminating the hung run resolves its alert.
        terminated = time.time()
        _mutate(web, """mutation($r: String!) { terminateRun(runId: $r) { __typename
            ... on PythonError { message } } }""", {"r": run_id}, "terminateRun")
        procs.wait_for("the hung run's resolve", lambda: _episode_resolved(
            timeline, "dagster_run_hung", terminated), 60)

        # fresh_probe evaluated, then its schedule stopped by hand.
        procs.wait_for("fresh_probe's run", lambda: _succeeded(web, probe_run), 120)
        assert _alert(timeline, "dagster_check_stale") is None  # fresh so far
        stopped = time.time()
        _mutate(web, """mutation($id: String) { stopRunningSchedule(id: $id) { __typename
            ... on PythonError { message } } }""", {"id": _schedule_state_id(web)},
                "stopRunningSchedule")
        stale = procs.wait_for("the stale check's alert", lambda: _alert(
            timeline, "dagster_check_stale", schedule=SCHEDULE), 150)
        # No false alarm: first seen stale 60 s or more after fresh_probe's last
        # evaluation (its materialization, which the watch reads, comes after it). Not
        # timed from the stop: the last tick may have been half a minute before it.
        last_evaluated = timeline.alerts.evaluations("fresh_probe", limit=1)[0]["at"]
        seen_stale = stale.active_since or stale.fired_at
        assert seen_stale is not None and (seen_stale - last_evaluated).total_seconds() >= 60, (
            f"stale at {seen_stale}, {last_evaluated} the last evaluation: before its 60 s "
            "window, a false alarm")
        for text in ("fresh_probe", SCHEDULE, "last evaluated", "not evaluated within",
                     f"the schedule {SCHEDULE} is stopped"):
            assert text in stale.last_summary, (text, stale.last_summary)
        page = procs.wait_for("the stale check's page", lambda: receiver.first(
            "dagster_check_stale", since=stopped), 30)
        assert page.labels["schedule"] == SCHEDULE

        # Started again: the next tick evaluates the rule and the alert resolves.
        started = time.time()
        _mutate(web, """mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) {
            __typename ... on PythonError { message } } }""",
                {"s": _selector(SCHEDULE, "scheduleName")}, "startSchedule")
        procs.wait_for("the stale check's resolve", lambda: _episode_resolved(
            timeline, "dagster_check_stale", started), 150)
        # One page while it was stale, though the watch saw it stale on many ticks.
        assert len(receiver.of("dagster_check_stale")) == 1, receiver.seen()
    finally:
        procs.stop_all()
        timeline.dispose()
