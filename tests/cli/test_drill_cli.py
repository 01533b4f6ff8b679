"""``alert-jobs drill RULE`` and ``fire_drill_job`` (+ its schedule): a real webhook
receiver on 127.0.0.1, a real Dagster instance for the job."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from alert_jobs.assets.operator_jobs import definitions, drill_schedule, fire_drill_job
from alert_jobs.cli.main import main
from alert_jobs.config import parse_rules
from alert_jobs.config.drills import DrillsConfig
from alert_jobs.runtime.drill import DRILL_FINISHED, FAILED_RULE
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import HttpReceiver, in_memory_instance

RULES = """
receivers:
  - {{name: console, type: console}}
  - {{name: hook, type: webhook, url: '{url}', timeout: 5s}}
defaults: {{receivers: [hook], fallback_receiver: console}}
checks:
  sql_metric:
    - {{name: dead_letters, database: 'sqlite:///unused.db', query: SELECT 1,
        expect: {{min: 0, max: 0}}}}
{drills}
"""


@pytest.fixture
def setup(tmp_path: Path, http_receiver: HttpReceiver) -> dict:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(RULES.format(url=http_receiver.url, drills=""), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 't.db'}"
    return {"rules": rules, "db": db, "base": ["--rules", str(rules), "--database-url", db],
            "receiver": http_receiver}


def test_cli_drill_passes_and_reports_each_receiver(setup: dict, capsys) -> None:
    assert main([*setup["base"], "drill", "dead_letters", "--by", "alice"]) == 0
    out = capsys.readouterr().out
    assert "of dead_letters: PASSED" in out
    assert "  hook: delivered in " in out and "resolve sent" in out
    firing, resolved = (r.json() for r in setup["receiver"].requests)
    assert firing["alerts"][0]["annotations"]["summary"].startswith("[DRILL]")
    assert resolved["status"] == "resolved"
    (event,) = Timeline(setup["db"]).events.list(kinds=[DRILL_FINISHED])
    assert event["actor"] == "alice" and event["source"] == "cli"


def test_cli_drill_json(setup: dict, capsys) -> None:
    assert main([*setup["base"], "drill", "dead_letters", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] is True and data["rule"] == "dead_letters"
    (hook,) = data["receivers"]
    assert hook["receiver"] == "hook" and hook["seconds"] >= 0 and hook["resolved"]


def test_cli_drill_with_a_failing_receiver_exits_1(setup: dict, capsys) -> None:
    setup["receiver"].default = 500
    assert main([*setup["base"], "drill", "dead_letters", "--alert-on-failure"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "hook: FAILED:" in out and "500" in out
    alerts = Timeline(setup["db"]).alerts.list()
    assert [a.rule for a in alerts if a.rule == FAILED_RULE] == [FAILED_RULE]


def test_cli_unknown_rule_exits_2(setup: dict, capsys) -> None:
    assert main([*setup["base"], "drill", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown rule 'nope'" in err and "dead_letters" in err
    assert setup["receiver"].requests == []
    # Positive control: the same setup drills a known rule.
    assert main([*setup["base"], "drill", "dead_letters"]) == 0
    assert len(setup["receiver"].requests) == 2


# ----- Dagster ------------------------------------------------------------------------


def _run(setup: dict, instance: dg.DagsterInstance, rule: str) -> dg.ExecuteInProcessResult:
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(setup["rules"]),
                                                 database_url=setup["db"])}
    return fire_drill_job.execute_in_process(
        run_config={"ops": {"fire_drill": {"config": {"rule": rule, "by": "carol"}}}},
        resources=resources, instance=instance, raise_on_error=False)


def test_dagster_fire_drill_job(setup: dict) -> None:
    with in_memory_instance() as instance:
        ok = _run(setup, instance, "dead_letters")
        assert ok.success and len(setup["receiver"].requests) == 2
        setup["receiver"].default = 500
        bad = _run(setup, instance, "dead_letters")
        assert not bad.success
        unknown = _run(setup, instance, "nope")
        assert not unknown.success
    events = Timeline(setup["db"]).events.list(kinds=[DRILL_FINISHED])
    assert [e["payload"]["passed"] for e in events] == [True, False]
    assert [e["run_id"] for e in events] == [ok.run_id, bad.run_id]
    assert all(e["actor"] == "carol" and e["source"] == "dagster" for e in events)


def test_drill_schedule_is_off_by_default_and_follows_the_drills_section(
        setup: dict) -> None:
    rules = parse_rules(setup["rules"].read_text())
    assert drill_schedule(rules.section(DrillsConfig)) is None
    assert not definitions(rules).schedules
    assert fire_drill_job in list(definitions(rules).jobs or [])

    listed = parse_rules(RULES.format(url=setup["receiver"].url, drills="""
drills: {rules: [dead_letters], timezone: Europe/Berlin}"""))
    stopped = drill_schedule(listed.section(DrillsConfig))
    assert stopped is not None
    assert stopped.default_status == dg.DefaultScheduleStatus.STOPPED

    enabled = parse_rules(RULES.format(url=setup["receiver"].url, drills="""
drills: {enabled: true, schedule: "0 10 1 * *", timezone: Europe/Berlin,
         rules: [dead_letters]}"""))
    schedule = drill_schedule(enabled.section(DrillsConfig))
    assert schedule is not None
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 10 1 * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    tick = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    # `with` the context too: it enters an instance of its own, and left open that
    # instance's state storage stays the process's current one after it is gone (the
    # next Definitions built in this worker then fails with "undefined DagsterInstance
    # weakref").
    with in_memory_instance() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick) as context:
        (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.run_key == f"dead_letters:{tick.isoformat()}"
    config = request.run_config["ops"]["fire_drill"]["config"]
    assert config == {"rule": "dead_letters", "by": "fire-drill-schedule",
                      "alert_on_failure": True}
