"""``alert-jobs rules test --live RULE --set KEY=VALUE``: the dry run from the command
line, against a real SQLite source; the logic is tested in tests/runtime/test_dry_run.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alert_jobs.cli.main import main

RULES = """
receivers:
  - {{name: console, type: console}}
  - {{name: hook, type: webhook, url: {{env: LIVE_TEST_HOOK_URL}}}}
defaults: {{receivers: [console, hook]}}
checks:
  sql_metric:
    - name: backlog
      description: backlog
      database: sqlite:///{db}
      query: SELECT max(x) FROM t
      expect: {{max: 10}}
      for: 5m
      severity: critical
"""


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with sqlite3.connect(tmp_path / "source.db") as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (3)")
    path = tmp_path / "alerts.yaml"
    path.write_text(RULES.format(db=tmp_path / "source.db"), encoding="utf-8")
    monkeypatch.setenv("LIVE_TEST_HOOK_URL", "https://hooks.example.com/T0/SECRET-TOKEN")
    monkeypatch.setenv("ALERT_JOBS_DATABASE_URL", f"sqlite:///{tmp_path / 'timeline.db'}")
    return path


def live(rules: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--rules", str(rules), "rules", "test", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_lowered_threshold_shows_what_would_fire_and_each_receivers_message(
        rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = live(rules, capsys, "--live", "backlog", "--set", "max=0")
    assert code == 0, out
    assert "WOULD FIRE (critical)" in out and "would fire after for: 5 minutes" in out
    assert "--- message to console (console) ---" in out
    assert "--- message to hook (webhook) ---" in out and '"version": "4"' in out
    assert "got 3" in out
    assert "SECRET-TOKEN" not in out  # the webhook URL is a secret
    assert not (rules.parent / "timeline.db").exists()  # the user's timeline: untouched
    # positive/negative pair: with the rule's own threshold nothing would fire
    code, out = live(rules, capsys, "--live", "backlog")
    assert code == 0 and "Observation: ok" in out and "WOULD FIRE" not in out


@pytest.mark.parametrize(("args", "wanted"), [
    (("--live", "backlog", "--set", "maxx=0"), "--set cannot change 'maxx'"),
    (("--live", "backlog", "--set", "max=lots"), "max"),
    (("--live", "backlog", "--set", "max"), "--set expects KEY=VALUE"),
    (("--live", "backlg"), "backlog"),
    (("--live", "backlog", "x.test.yaml"), "leave out the test files"),
    (("--set", "max=0", "x.test.yaml"), "--set changes a rule only with --live"),
    ((), "give one or more test files"),
])
def test_bad_command_lines_exit_2_with_the_reason(
        rules: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
        wanted: str) -> None:
    code, out = live(rules, capsys, *args)
    assert code == 2, out
    assert wanted in out, out
