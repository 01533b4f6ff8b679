"""Every ``alert-jobs`` command that evaluates delivers what it raised (issue #16, point 3).

A real webhook receiver on 127.0.0.1 (``http_receiver``), real Redis servers, real
closed ports, a real SQLite source: what the receiver got is what a person would get.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alert_jobs import demo
from alert_jobs.cli.main import main
from tests.conftest import HttpReceiver, free_port


def _alerts(receiver: HttpReceiver) -> list[dict[str, Any]]:
    """Every alert in every webhook body the receiver got (Alertmanager webhook v4)."""
    return [a for r in receiver.requests for a in r.json()["alerts"]]


def _firing_names(receiver: HttpReceiver) -> set[str]:
    return {a["labels"]["alertname"] for a in _alerts(receiver) if a["status"] == "firing"}


def _rules(tmp_path: Path, receiver: HttpReceiver, checks: str,
           defaults: str = "") -> list[str]:
    path = tmp_path / "alerts.yaml"
    path.write_text(f"""
receivers:
  - {{name: hook, type: webhook, url: '{receiver.url}', timeout: 5s}}
defaults: {{receivers: [hook]{defaults}}}
checks:
{checks}
""", encoding="utf-8")
    return ["--rules", str(path), "--database-url", f"sqlite:///{tmp_path / 'timeline.db'}"]


def _load(client: Any, n: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"k{i % 50}", i)
    pipe.execute()


def test_redis_check_delivers_unreachable_targets_errors(
        tmp_path: Path, http_receiver: HttpReceiver, redis_factory: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two closed ports: both ``error`` alerts reach the receiver. Beside them, a reachable
    target over its quota is delivered too (the positive control of the healthy path),
    and a reachable target under its quota sends nothing."""
    busy, calm = redis_factory(), redis_factory()
    _load(busy.client(), 50)
    down = [free_port(), free_port()]
    base = _rules(tmp_path, http_receiver, f"""
  redis_quota:
    - {{name: down_a, url: 'redis://127.0.0.1:{down[0]}/0', timeout: 1s,
       quota: {{window: day, limit: 1000}}}}
    - {{name: down_b, url: 'redis://127.0.0.1:{down[1]}/0', timeout: 1s,
       quota: {{window: day, limit: 1000}}}}
    - {{name: busy, url: '{busy.url}', quota: {{window: day, limit: 10}}}}
    - {{name: calm, url: '{calm.url}', quota: {{window: day, limit: 1000000}}}}
""")
    assert main([*base, "redis", "check"]) == 1  # some targets cannot be read
    out = capsys.readouterr().out
    assert "ERROR down_a: redis://127.0.0.1:" in out and "ERROR down_b:" in out
    assert "delivery: sent 3, retrying later 0, failed permanently 0" in out
    assert _firing_names(http_receiver) == {"down_a", "down_b", "busy"}
    errors = {a["labels"]["alertname"]: a["annotations"]["summary"]
              for a in _alerts(http_receiver) if a["labels"]["alertname"].startswith("down")}
    assert all("connection refused" in s.lower() or "connect" in s.lower()
               for s in errors.values()), errors

    # Checked again at once: nothing new to say, nothing sent twice.
    before = len(http_receiver.requests)
    assert main([*base, "redis", "check", "down_a", "down_b"]) == 1
    assert "delivery: sent 0," in capsys.readouterr().out
    assert len(http_receiver.requests) == before


def _sql_source(tmp_path: Path) -> str:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE dead_letters (id INTEGER)")
        conn.executemany("INSERT INTO dead_letters VALUES (?)", [(i,) for i in range(3)])
    return f"sqlite:///{src}"


SQL_RULE = """
  sql_metric:
    - name: dead_letters
      database: {url}
      query: SELECT count(*) FROM dead_letters
      expect: {{min: 0, max: 0}}
    - name: dead_letters_ok
      database: {url}
      query: SELECT count(*) FROM dead_letters
      expect: {{max: 100}}
"""

DRIFT_RULE = """
  score_drift:
    - name: model_scores
      database: '{url}'
      table: model_scores
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      min_samples: 100
      high_score: {{threshold: 0.9, min_samples: 100, max_rate: 0.2}}
"""


@pytest.mark.parametrize(("family", "command"), [
    ("sql_metric", ["check", "dead_letters", "dead_letters_ok"]),  # the generic command
    ("score_drift", ["check", "model_scores"]),
    ("redis_quota", ["check", "cache"]),
    ("score_drift", ["drift", "check"]),  # the families' own commands
    ("redis_quota", ["redis", "check"]),
])
def test_every_evaluating_command_delivers(
        family: str, command: list[str], tmp_path: Path, http_receiver: HttpReceiver,
        redis_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    if family == "sql_metric":
        checks, expected = SQL_RULE.format(url=_sql_source(tmp_path)), {"dead_letters"}
    elif family == "score_drift":
        checks = DRIFT_RULE.format(url=f"sqlite:///{demo.seed(tmp_path / 'demo.db')}")
        expected = {"model_scores"}  # fraud-v3 drifts in the demo data, churn-v1 does not
    else:
        server = redis_factory()
        _load(server.client(), 50)
        checks = (f"  redis_quota:\n    - {{name: cache, url: '{server.url}', "
                  f"quota: {{window: day, limit: 10}}}}\n")
        expected = {"cache"}
    base = _rules(tmp_path, http_receiver, checks)
    assert main([*base, *command]) == 0
    out = capsys.readouterr().out
    assert "delivery: sent " in out and "delivery: sent 0," not in out
    assert _firing_names(http_receiver) == expected
    if family == "sql_metric":  # the rule within range is the "nothing sent" control
        assert "dead_letters_ok: ok" in out
    if family == "score_drift":  # the calm model is the "nothing sent" control
        assert {a["labels"].get("model") for a in _alerts(http_receiver)} == {"fraud-v3"}


def test_heartbeat_pause_delivers_the_resolve(
        tmp_path: Path, http_receiver: HttpReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Pausing a failing heartbeat resolves its alert, and the resolve reaches whoever
    was paged — at once, not at the next delivery-sensor tick."""
    from alert_jobs.config import load_rules
    from alert_jobs.families.heartbeat.run import evaluate_slug, sync
    from alert_jobs.families.heartbeat.store import HeartbeatStore
    from alert_jobs.runtime.deliver import deliver
    from alert_jobs.store import Timeline, utcnow

    # group_interval 0: the resolve is news for the group at once (by default it waits
    # up to 5 minutes after the firing message, as in Alertmanager; see the next test).
    base = _rules(tmp_path, http_receiver, """
  heartbeat:
    - {name: nightly, period: 1h, grace: 5m}
""", defaults=", group_interval: 0s")
    rules = load_rules(base[1])
    timeline = Timeline(base[3])
    try:
        now = utcnow()
        sync(rules, timeline, now=now)
        HeartbeatStore(timeline).ping("nightly", "fail", now)
        assert evaluate_slug(rules, timeline, "nightly", now=now).outcomes
        deliver(rules, timeline)
        assert [a["status"] for a in _alerts(http_receiver)] == ["firing"]

        assert main([*base, "heartbeat", "pause", "nightly"]) == 0
        out = capsys.readouterr().out
        assert "nightly: paused" in out and "delivery: sent 1," in out
        assert [a["status"] for a in _alerts(http_receiver)] == ["firing", "resolved"]

        assert main([*base, "heartbeat", "resume", "nightly"]) == 0  # nothing to resolve
        assert len(http_receiver.requests) == 2
    finally:
        timeline.dispose()


def test_a_group_still_waiting_is_named(tmp_path: Path, http_receiver: HttpReceiver,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """What a group's ``group_wait`` holds back is not sent now, and the command says so
    (and when), rather than a bare "sent 0"."""
    base = _rules(tmp_path, http_receiver, SQL_RULE.format(url=_sql_source(tmp_path)),
                  defaults=", group_wait: 1h")
    assert main([*base, "check", "dead_letters"]) == 0
    out = capsys.readouterr().out
    assert "dead_letters: alert, firing:" in out
    assert "delivery: sent 0," in out
    assert "1 notification group(s) wait for their group_wait/group_interval" in out
    assert http_receiver.requests == []
