"""A batch of sql_metric rules in a real Dagster instance: one run per tick materializes
every rule, Materialize on one rule runs only that rule, an erroring rule does not stop
the others, a tick starts no run while the batch's last run is in progress, and a manual
and a scheduled run at once still send one notification."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import load_rules_or_last_good, parse_rules
from alert_jobs.families.redis_quota.definitions import build_definitions as redis_definitions
from alert_jobs.families.score_drift.definitions import build_definitions as drift_definitions
from alert_jobs.families.sql_metric.definitions import CHECK_NAME, asset_key
from alert_jobs.families.sql_metric.definitions import build_definitions as sql_definitions
from alert_jobs.runtime.no_overlap import BATCH_TAG, MAX_RUNTIME_TAG
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import ROOT

BATCH = "sql_metric_every_minute"

RULES = """
version: 1
defaults: {{receivers: [hook], group_interval: 0s, schedule: "* * * * *"}}
receivers:
  - {{name: hook, type: webhook, url: {{env: TEST_HOOK_URL}}, timeout: 2s}}
checks:
  sql_metric:
    - {{name: letters, database: "sqlite:///{data}", query: "{slow}SELECT count(*) FROM t",
       expect: {{max: 0}}, query_timeout: 60s}}
    - {{name: broken, database: "sqlite:///{data}", query: "SELECT n FROM no_such_table",
       expect: {{max: 0}}}}
    - {{name: quiet, database: "sqlite:///{data}", query: "SELECT count(*) FROM t",
       expect: {{max: 100}}}}
    - {{name: nightly, database: "sqlite:///{data}", query: "SELECT 0", expect: {{max: 0}},
       schedule: "0 3 * * *"}}
"""

# About two seconds of SQLite work: long enough for two runs started together to overlap.
SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2500000) "
        "SELECT count(*) + (SELECT count(*) FROM t) - count(*) FROM c")


def write_rules(tmp: Path, *, slow: bool = False) -> Path:
    import sqlite3

    data = tmp / "data.db"
    with sqlite3.connect(data) as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
        db.execute("DELETE FROM t")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(7)])
    path = tmp / "alerts.yaml"
    text = RULES.format(data=data, slow="")
    if slow:
        text = text.replace('"SELECT count(*) FROM t",\n       expect: {max: 0}',
                            f'"{SLOW}",\n       expect: {{max: 0}}', 1)
        assert SLOW in text
    path.write_text(text)
    return path


@pytest.fixture
def setup(tmp_path: Path, http_receiver, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[dict[str, Any]]:
    rules_file = write_rules(tmp_path)
    monkeypatch.setenv("TEST_HOOK_URL", http_receiver.url)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resource = AlertJobsResource(rules_file=str(rules_file), database_url=db_url)
    family = sql_definitions(parse_rules(rules_file.read_text()))
    defs = dg.Definitions(assets=family.assets, jobs=family.jobs, schedules=family.schedules,
                          resources={"alert_jobs": resource})
    with dg.instance_for_test() as instance:
        yield {"defs": defs, "instance": instance, "timeline": Timeline(db_url),
               "resources": {"alert_jobs": resource}, "receiver": http_receiver}


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {m.asset_key.path[-1]: {k: v.value for k, v in m.materialization.metadata.items()}
            for m in result.get_asset_materialization_events()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {c.asset_key.path[-1]: c.passed for c in result.get_asset_check_evaluations()
            if c.check_name == CHECK_NAME}


def test_one_tick_is_one_run_that_materializes_every_rule_of_the_batch(setup: dict) -> None:
    defs = setup["defs"]
    schedule = defs.resolve_schedule_def(f"{BATCH}_schedule")
    assert schedule.execution_timezone == "UTC" and schedule.cron_schedule == "* * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_schedule_def("sql_metric_daily_0300_schedule")  # its own batch
    request = schedule.evaluate_tick(dg.build_schedule_context(instance=setup["instance"]))
    (run_request,) = request.run_requests or []
    job = defs.resolve_job_def(schedule.job_name)
    assert job.tags[BATCH_TAG] == BATCH
    result = job.execute_in_process(instance=setup["instance"], tags=run_request.tags)
    assert result.success
    run = setup["instance"].get_run_by_id(result.run_id)
    assert run.tags[BATCH_TAG] == BATCH  # the tag a tag concurrency limit counts
    # Run monitoring fails a run past three of its intervals (at least 3 minutes), which
    # frees the batch after a run whose process died (tests/test_topology.py).
    assert run.tags[MAX_RUNTIME_TAG] == "180"
    nightly = defs.resolve_job_def(defs.resolve_schedule_def(
        "sql_metric_daily_0300_schedule").job_name)
    assert nightly.tags[MAX_RUNTIME_TAG] == str(3 * 24 * 3600)

    # Every rule of the batch: its own materialization and check, in one run; the
    # erroring rule is its own error alert and the others are decided as usual.
    meta = materialized(result)
    assert set(meta) == {"letters", "broken", "quiet"}
    assert meta["letters"]["value"] == 7.0 and meta["letters"]["status"] == "alert"
    assert meta["quiet"]["value"] == 7.0 and meta["quiet"]["status"] == "ok"
    assert meta["broken"]["status"] == "error" and "no such table" in meta["broken"]["summary"]
    assert checks(result) == {"letters": False, "broken": False, "quiet": True}
    timeline = setup["timeline"]
    for name in ("letters", "broken", "quiet"):
        assert [e["run_id"] for e in timeline.alerts.evaluations(name)] == [result.run_id]
    assert timeline.alerts.evaluations("nightly") == []
    sent = sorted(a["labels"]["alertname"] for r in setup["receiver"].requests
                  for a in r.json()["alerts"])
    assert sent == ["broken", "letters"]


def test_materialize_on_one_rule_runs_only_that_rule(setup: dict) -> None:
    assets = list(setup["defs"].assets or [])
    result = dg.materialize(assets, selection=[asset_key("quiet")],
                            instance=setup["instance"], resources=setup["resources"])
    assert result.success
    assert set(materialized(result)) == {"quiet"}
    assert checks(result) == {"quiet": True}
    timeline = setup["timeline"]
    assert len(timeline.alerts.evaluations("quiet")) == 1
    assert timeline.alerts.evaluations("letters") == [] == timeline.alerts.evaluations("broken")
    assert setup["receiver"].requests == []

    # Its check alone (the UI's "Execute" on the check) evaluates the rule, no asset.
    only_check = dg.materialize(
        assets, selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset_key("letters"),
                                                                     CHECK_NAME)),
        instance=setup["instance"], resources=setup["resources"])
    assert only_check.success
    assert materialized(only_check) == {} and checks(only_check) == {"letters": False}


def test_a_batch_in_parts_is_still_one_run_and_one_rule_runs_one_step(
        tmp_path: Path, http_receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch larger than a part (two rules per part here, 100 in production) is one
    job whose run evaluates every part's rules once; Materialize on a rule of the last
    part runs that step alone."""
    import alert_jobs.runtime.batching as batching
    import alert_jobs.runtime.resources as resources_module

    monkeypatch.setattr(batching, "PART_SIZE", 2)
    reads: list[str] = []  # the rules file is read once per run, not once per part

    def counted(path: Any) -> Any:
        reads.append(str(path))
        return load_rules_or_last_good(path)

    monkeypatch.setattr(resources_module, "load_rules_or_last_good", counted)
    rules_file = write_rules(tmp_path)
    data = tmp_path / "data.db"
    more = "".join(f'    - {{name: {name}, database: "sqlite:///{data}", query: "SELECT 1", '
                   "expect: {max: 5}}\n" for name in ("more_a", "more_b"))
    text = rules_file.read_text().replace("    - {name: nightly", more + "    - {name: nightly")
    rules_file.write_text(text)
    monkeypatch.setenv("TEST_HOOK_URL", http_receiver.url)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(rules_file),
                                                 database_url=db_url)}
    family = sql_definitions(parse_rules(text))
    steps = sorted(a.op.name for a in family.assets or [] if a.op.name.startswith(BATCH))
    assert steps == [f"{BATCH}_part_{i}" for i in (1, 2, 3)]
    defs = dg.Definitions(assets=family.assets, jobs=family.jobs,
                          schedules=family.schedules, resources=resources)
    job = defs.resolve_job_def(defs.resolve_schedule_def(f"{BATCH}_schedule").job_name)
    rule_names = ("letters", "broken", "quiet", "more_a", "more_b")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.success
        assert set(materialized(result)) == set(rule_names)
        assert checks(result) == {"letters": False, "broken": False, "quiet": True,
                                  "more_a": True, "more_b": True}
        timeline = Timeline(db_url)
        for name in rule_names:  # once each, all in the one run
            assert [e["run_id"] for e in timeline.alerts.evaluations(name)] == [result.run_id]
        step_keys = {e.step_key for e in result.all_events if e.step_key}
        assert step_keys == {f"{BATCH}_part_{i}" for i in (1, 2, 3)}
        assert reads == [str(rules_file)]

        one = dg.materialize(list(defs.assets or []), selection=[asset_key("more_b")],
                             instance=instance, resources=resources)
        assert one.success and set(materialized(one)) == {"more_b"}
        assert {e.step_key for e in one.all_events if e.step_key} == {f"{BATCH}_part_3"}
        assert len(timeline.alerts.evaluations("more_b")) == 2
        assert len(timeline.alerts.evaluations("letters")) == 1
        assert len(reads) == 2  # the next run reads the file afresh
    sent = sorted(a["labels"]["alertname"] for r in http_receiver.requests
                  for a in r.json()["alerts"])
    assert sent == ["broken", "letters"]


def _blocking_run(instance: dg.DagsterInstance, batch: str) -> tuple[threading.Event,
                                                                      threading.Thread]:
    """A real run tagged as a run of ``batch``, in progress until the event is set."""
    release = threading.Event()

    @dg.op
    def hold() -> None:
        release.wait(60)

    @dg.job(tags={BATCH_TAG: batch})
    def held_job() -> None:
        hold()

    thread = threading.Thread(target=lambda: held_job.execute_in_process(instance=instance))
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not instance.get_runs(
            dg.RunsFilter(tags={BATCH_TAG: batch}, statuses=[dg.DagsterRunStatus.STARTED])):
        time.sleep(0.05)
    return release, thread


def _tick(schedule: Any, instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    if data.run_requests:
        (request,) = data.run_requests
        return request
    return dg.SkipReason(data.skip_message)


def test_a_tick_starts_no_run_while_the_batch_is_in_progress(setup: dict, tmp_path: Path,
                                                             redis_factory) -> None:
    instance = setup["instance"]
    sql = setup["defs"].resolve_schedule_def(f"{BATCH}_schedule")
    other = setup["defs"].resolve_schedule_def("sql_metric_daily_0300_schedule")
    redis_rules = parse_rules(f"""
checks:
  redis_quota:
    - {{name: alpha, url: '{redis_factory().url}', quota: {{window: day, limit: 1000}}}}
""")
    (redis,) = redis_definitions(redis_rules).schedules or []
    drift_rules = parse_rules(f"""
checks:
  score_drift:
    - {{name: fraud_scores, database: 'sqlite:///{tmp_path / "s.db"}', table: scores,
       time_column: scored_at, score_column: score}}
""")
    drift = next(s for s in drift_definitions(drift_rules).schedules or []
                 if s.name == "fraud_scores_drift_schedule")
    cases = [(sql, BATCH), (redis, "redis_quota"), (drift, "fraud_scores_drift")]
    for schedule, batch in cases:
        assert isinstance(_tick(schedule, instance), dg.RunRequest)  # positive control
        release, thread = _blocking_run(instance, batch)
        try:
            (running,) = instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: batch}))
            skip = _tick(schedule, instance)
            assert isinstance(skip, dg.SkipReason), schedule.name
            assert skip.skip_message is not None
            assert f"run {running.run_id} of batch {batch} is still started (started " \
                in skip.skip_message
            assert "UTC" in skip.skip_message and "s ago" in skip.skip_message
            # Another batch is not held up by it.
            assert isinstance(_tick(other, instance), dg.RunRequest)
        finally:
            release.set()
            thread.join(60)
        assert isinstance(_tick(schedule, instance), dg.RunRequest)  # done: runs again


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_manual_and_a_scheduled_run_at_once_send_one_notification(
        database: str, tmp_path: Path, http_receiver, request: pytest.FixtureRequest) -> None:
    """Two real run processes on one instance, started together: the batch's job (what
    the schedule launches) and `dagster asset materialize` of the one rule (the UI's
    Materialize). The rule's query takes about two seconds, so both evaluate it at once;
    the timeline's locks leave one notification."""
    rules_file = write_rules(tmp_path, slow=True)
    db_url = (f"sqlite:///{tmp_path / 'alerts.db'}" if database == "sqlite"
              else str(request.getfixturevalue("pg_url")))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ALERT_JOBS_RULES": str(rules_file),
           "TEST_HOOK_URL": http_receiver.url, "ALERT_JOBS_DATABASE_URL": db_url}
    dagster = str(Path(sys.executable).with_name("dagster"))
    subprocess.run([dagster, "instance", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    Timeline(db_url).upgrade()  # before the runs, as `alert-jobs db upgrade` in a deploy
    commands = [
        [dagster, "job", "execute", "-m", "alert_jobs.definitions", "-j", f"{BATCH}_job"],
        [dagster, "asset", "materialize", "-m", "alert_jobs.definitions", "--select",
         "sql_metric/letters"],
    ]
    procs = [subprocess.Popen(c, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for c in commands]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]

    timeline = Timeline(db_url)
    evaluated = {e["run_id"] for e in timeline.alerts.evaluations("letters")}
    assert len(evaluated) == 2  # positive control: both runs evaluated the firing rule
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert {r.dagster_run.run_id for r in records} == evaluated
        (first, second) = sorted((r.start_time, r.end_time) for r in records)
        assert second[0] < first[1], "the two runs did not overlap"
    rows = [r for r in timeline.outbox.rows() if r["rule"] == "letters"]
    assert len(rows) == 1, rows
    letters = [a for r in http_receiver.requests for a in r.json()["alerts"]
               if a["labels"]["alertname"] == "letters"]
    assert len(letters) == 1
