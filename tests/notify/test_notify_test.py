"""`alert-jobs notify test RECEIVER` and `notify_test_job`: clearly marked, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_jobs.assets.operator_jobs import notify_test_job
from alert_jobs.cli.main import main
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance


@pytest.fixture
def setup(tmp_path: Path, http_receiver) -> dict:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(f"""
receivers:
  - {{name: console, type: console}}
  - {{name: hook, type: webhook, url: '{http_receiver.url}'}}
""")
    db = f"sqlite:///{tmp_path / 't.db'}"
    return {"rules": rules, "db": db, "base": ["--rules", str(rules), "--database-url", db],
            "receiver": http_receiver}


def test_cli_sends_a_marked_test_and_records_it(setup: dict, capsys) -> None:
    assert main([*setup["base"], "notify", "test", "hook", "--by", "alice"]) == 0
    assert "test message delivered to hook" in capsys.readouterr().out
    (request,) = setup["receiver"].requests
    body = request.json()
    assert body["test"] is True and body["notification_reason"] == "test"
    assert body["alerts"][0]["labels"]["alertname"] == "alert_jobs_test"
    assert "[TEST]" in body["text"] and "No action is needed" in body["text"]
    (event,) = Timeline(setup["db"]).events.list(kinds=["notification_test"])
    assert event["actor"] == "alice" and event["payload"] == {"receiver": "hook", "ok": True}


def test_cli_reports_a_failing_receiver(setup: dict, capsys) -> None:
    setup["receiver"].default = 403
    assert main([*setup["base"], "notify", "test", "hook"]) == 1
    assert "test message to hook failed: HTTP 403" in capsys.readouterr().err
    (event,) = Timeline(setup["db"]).events.list(kinds=["notification_test"])
    assert event["payload"]["ok"] is False and "HTTP 403" in event["reason"]


def test_cli_unknown_receiver_exits_2(setup: dict, capsys) -> None:
    assert main([*setup["base"], "notify", "test", "nope"]) == 2
    assert "unknown receiver 'nope' (known: console, hook)" in capsys.readouterr().err


def test_dagster_job(setup: dict) -> None:
    resources = {"alert_jobs": AlertJobsResource(rules_file=str(setup["rules"]),
                                                 database_url=setup["db"])}
    with in_memory_instance() as instance:
        ok = notify_test_job.execute_in_process(
            run_config={"ops": {"notify_test": {"config": {"receiver": "hook"}}}},
            resources=resources, instance=instance)
        assert ok.success and len(setup["receiver"].requests) == 1
        setup["receiver"].default = 500
        bad = notify_test_job.execute_in_process(
            run_config={"ops": {"notify_test": {"config": {"receiver": "hook"}}}},
            resources=resources, instance=instance, raise_on_error=False)
        assert not bad.success
    events = Timeline(setup["db"]).events.list(kinds=["notification_test"])
    assert [e["payload"]["ok"] for e in events] == [True, False]
    assert all(e["run_id"] and e["source"] == "dagster" for e in events)
