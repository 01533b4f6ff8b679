"""The demo's rule tests (``alerts.test.yaml``) pass through the real command line, and
the same file with one expectation changed fails: the tests can tell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rules_test(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALERT_JOBS_DATABASE_URL": "sqlite:////nonexistent/never-opened.db"}
    return subprocess.run([sys.executable, "-m", "alert_jobs.cli.main", "rules", "test",
                           *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_demo_rules_pass_their_tests() -> None:
    done = rules_test("alerts.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    tests = (ROOT / "alerts.test.yaml").read_text(encoding="utf-8").count("\n  - name: ")
    assert tests >= 9  # every family of the demo: sql_metric, baseline, redis, heartbeat…
    assert f"alerts.test.yaml: {tests} tests, {tests} passed" in done.stdout


def test_the_same_file_with_a_wrong_expectation_fails(tmp_path: Path) -> None:
    text = (ROOT / "alerts.test.yaml").read_text(encoding="utf-8")
    wrong = text.replace("alerts: {dead_letters: [{state: recovering}]}",
                         "alerts: {dead_letters: [{state: firing}]}", 1)
    assert wrong != text
    (tmp_path / "alerts.test.yaml").write_text(wrong, encoding="utf-8")
    (tmp_path / "alerts.yaml").write_text((ROOT / "alerts.yaml").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    done = rules_test("alerts.test.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "alerts of dead_letters at 6m" in done.stdout
    assert "expected: firing" in done.stdout and "got:      recovering critical" in done.stdout
