"""``alert-jobs drift …``, the demo rules, business messages and the benchmark smoke test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alert_jobs import demo
from alert_jobs.cli.main import main
from alert_jobs.config import load_rules, parse_rules
from alert_jobs.core.model import Status
from alert_jobs.families.score_drift.run import check_segments
from alert_jobs.store import Timeline
from tests.families.score_drift.drift_data import NOW, scenario, write_table

ROOT = Path(__file__).resolve().parents[3]


def write_rules(path: Path, data_url: str, extra: str = "") -> Path:
    path.write_text(f"""
receivers: [{{name: console, type: console}}]
checks:
  score_drift:
    - name: model_scores
      database: '{data_url}'
      table: model_scores
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      feature_columns: [amount]
      min_samples: 100
      high_score: {{threshold: 0.9, min_samples: 100, max_rate: 0.2}}
      {extra}
""")
    return path


@pytest.fixture
def demo_db(tmp_path: Path) -> str:
    return f"sqlite:///{demo.seed(tmp_path / 'demo.db')}"


def test_cli_reference_check_and_segments(tmp_path: Path, demo_db: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rules = write_rules(tmp_path / "alerts.yaml", demo_db)
    base = ["--rules", str(rules), "--database-url", f"sqlite:///{tmp_path / 'alerts.db'}"]
    assert main([*base, "drift", "segments"]) == 0
    out = capsys.readouterr().out
    assert "churn-v1: no reference yet" in out and "fraud-v3: no reference yet" in out

    assert main([*base, "drift", "reference", "--segment", "fraud-v3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fraud-v3: \d\d,\d{3} scores, mean 0\.\d+, PSI edges 0, ", out)

    assert main([*base, "drift", "check"]) == 0
    out = capsys.readouterr().out
    assert "churn-v1: PSI" in out and "(reference built now)" in out  # churn had none yet
    assert "distribution: critical, firing: PSI of fraud-v3 scores in the last 1 h is" in out
    assert "high_score_rate: alert, firing: 50 % of fraud-v3 scores" in out
    assert "delivery:" in out

    assert main([*base, "drift", "segments", "model_scores"]) == 0
    assert "reference built 0.0 h ago" in capsys.readouterr().out


def test_cli_errors(tmp_path: Path, demo_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write_rules(tmp_path / "alerts.yaml", demo_db)
    base = ["--rules", str(rules), "--database-url", f"sqlite:///{tmp_path / 'alerts.db'}"]
    assert main([*base, "drift", "check", "nope"]) == 2
    assert "unknown score_drift rule(s) nope (known: model_scores)" in capsys.readouterr().err
    assert main([*base, "drift", "check", "--segment", "fraud-v3|3"]) == 2
    assert "--segment 'fraud-v3|3' does not fit rule model_scores: give one value per " \
        "segment column (model)" in capsys.readouterr().err
    broken = write_rules(tmp_path / "broken.yaml", demo_db).read_text().replace(
        "table: model_scores", "table: gone_scores")
    (tmp_path / "broken.yaml").write_text(broken)
    assert main(["--rules", str(tmp_path / "broken.yaml"), "--database-url",
                 f"sqlite:///{tmp_path / 'alerts.db'}", "drift", "check"]) == 1
    assert "table gone_scores not found" in capsys.readouterr().out


def test_demo_rules_validate_and_fire(tmp_path: Path) -> None:
    rules = load_rules(ROOT / "alerts.yaml")
    (rule,) = rules.checks.score_drift
    data = demo.seed(tmp_path / "demo.db")
    rule.database = f"sqlite:///{data}"
    results = {r.segment: r for r in check_segments(rules, rule, Timeline(
        f"sqlite:///{tmp_path / 'alerts.db'}"), ["fraud-v3", "churn-v1"])}
    fraud = {o.labels["check"]: o.status for o in results["fraud-v3"].observations}
    churn = {o.labels["check"]: o.status for o in results["churn-v1"].observations}
    assert fraud["distribution"] == Status.ALERT and fraud["high_score_rate"] == Status.ALERT
    assert set(churn.values()) == {Status.OK}


def test_business_audience_gets_plain_sentences(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    write_table(url, scenario(current={"fraud-v3": {"high": 0.5}}), table="model_scores")
    rules = parse_rules(write_rules(tmp_path / "a.yaml", url, extra="annotations: {audience: "
                                    "business, audience_text: {business: Customers are "
                                    "blocked.}}").read_text())
    (rule,) = rules.checks.score_drift
    (result,) = check_segments(rules, rule, Timeline(f"sqlite:///{tmp_path / 't.db'}"),
                               ["fraud-v3"], now=NOW)
    by = {o.labels["check"]: o for o in result.observations}
    assert by["high_score_rate"].summary.startswith(
        "50 % of cases scored by fraud-v3 in the last 1 h got a high score (usually about")
    assert "PSI" not in by["distribution"].summary
    assert "look different from the previous 7 days" in by["distribution"].summary


@pytest.mark.benchmark  # `make bench` checks it, `make test` leaves it out
def test_benchmark_runs_at_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.drift_bench", "--quick",
                           "--output", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert any("[memory]" in n for n in names)
    if os.environ.get("TEST_DATABASE_URL"):
        (db,) = [r for r in report["results"] if "[postgresql]" in r["name"]]
        assert db["speed_up"] > 0 and db["peak_rss_mib"] > 0
        assert db["agreement"]["fraud-v3"]["high_score_rate"]["check"] == pytest.approx(
            db["agreement"]["fraud-v3"]["high_score_rate"]["baseline"])
    else:
        assert "drift_postgresql" in report["skipped"]
