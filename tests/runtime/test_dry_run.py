"""Dry run against the live source (``alert-jobs rules test --live RULE --set K=V``).

A real sql_metric rule over a real SQLite (and PostgreSQL) source database: what would
fire with changed thresholds, whom the routes pick and every receiver's full message,
while the user's timeline stays exactly as it was and nothing is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.dry_run import apply_overrides, dry_run, format_dry_run
from alert_jobs.runtime.family import family_of
from alert_jobs.store import Timeline

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cr3t-hook-token"

RULES = """
version: 1
defaults: {{receivers: [console]}}
receivers:
  - {{name: console, type: console}}
  - {{name: team_slack, type: slack, webhook_url: "https://hooks.slack.com/services/{secret}"}}
  - {{name: oncall_hook, type: webhook, url: "https://hooks.example.com/x?token={secret}"}}
  - {{name: unused, type: webhook, url: "https://hooks.example.com/unused"}}
route:
  receiver: console
  routes:
    - matchers: ["team=payments"]
      receiver: team_slack
      continue: true
    - matchers: ["team=payments"]
      receiver: oncall_hook
checks:
  sql_metric:
    - name: dead_letters
      description: dead letters
      database: {database}
      query: >
        SELECT count(*) FROM dead_letters
        WHERE created_at >= :window_start AND created_at < :window_end
      window: 30m
      expect: {{max: 5}}
      for: 5m
      severity: critical
      labels: {{team: payments}}
      annotations:
        why: Each dead letter is a payment that was not booked.
        runbook_url: https://runbooks.example.com/dead-letters
    - name: orders_last_hour
      database: {database}
      query: SELECT count(*) FROM dead_letters
      expect:
        min: 0
        baseline: {{season: hour_of_day, history: 7d}}
"""


def source_db(url: str, letters: int) -> str:
    """A source database with ``letters`` dead letters in the last 30 minutes before NOW."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, "
                             "created_at TIMESTAMP)"))
        for i in range(letters):
            conn.execute(sa.text("INSERT INTO dead_letters (id, created_at) VALUES (:i, :at)"),
                         {"i": i + 1, "at": NOW - timedelta(minutes=5 + i)})
    engine.dispose()
    return url


def rules_for(database: str) -> RulesFile:
    return parse_rules(RULES.format(database=database, secret=SECRET))


@pytest.fixture
def rules(tmp_path: Path) -> RulesFile:
    return rules_for(source_db(f"sqlite:///{tmp_path / 'source.db'}", 2))


@pytest.fixture
def real_timeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Timeline:
    """The user's timeline (where every other command writes), with an alert in it."""
    url = f"sqlite:///{tmp_path / 'real-alerts.db'}"
    monkeypatch.setenv("ALERT_JOBS_DATABASE_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    return Timeline(url)


def row_counts(timeline: Timeline) -> dict[str, int]:
    with timeline.engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {n: int(conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar() or 0)
                for n in names}


def test_set_max_zero_fires_for_each_routed_receiver_and_leaves_the_timeline_alone(
        rules: RulesFile, real_timeline: Timeline) -> None:
    # The user's timeline has history: the rule really evaluated once (max 5: ok) and an
    # other alert is firing with a message waiting in the outbox.
    rule = rules.rule("dead_letters")
    family_of(rule).evaluate(rules, rule, real_timeline, now=NOW - timedelta(minutes=1),
                             run_id=None)
    lowered = apply_overrides(rule, family_of(rule), {"max": "0", "for": "0m"})
    family_of(rule).evaluate(rules, lowered, real_timeline, now=NOW - timedelta(minutes=1),
                             run_id=None)
    real_timeline.outbox.flush_due(router=rules.router(), now=NOW)
    before = row_counts(real_timeline)
    assert before["alert_outbox"] >= 1 and before["alert_events"] >= 1

    ok = dry_run(rules, "dead_letters", {}, now=NOW)
    fired = dry_run(rules, "dead_letters", {"max": "0"}, now=NOW)

    assert row_counts(real_timeline) == before  # nothing written, nothing delivered
    assert not any(r["delivered_at"] for r in real_timeline.outbox.rows())

    # without overrides: ok, no message (the negative control)
    assert not ok.would_fire and ok.messages == []
    assert [i.status for i in ok.instances] == ["ok"]
    text = format_dry_run(ok)
    assert "would not fire" in text and "No message would be sent." in text

    # --set max=0: 2 dead letters fire, to both receivers the routes pick
    (inst,) = fired.instances
    assert fired.would_fire and inst.status == "alert" and inst.value == 2
    assert inst.receivers == ("team_slack", "oncall_hook")
    assert [m.receiver for m in fired.messages] == ["oncall_hook", "team_slack"]
    text = fired.render()
    assert "with --set max=0" in text
    assert "WOULD FIRE (critical) — would fire after for: 5 minutes" in text
    assert "expected to be at most 0" in text
    assert "Nothing was written to the timeline and nothing was sent." in text
    # the full rendered message of each receiver, as it would post it
    assert '"version": "4"' in text  # Alertmanager webhook v4 body
    assert '"blocks"' in text  # Slack blocks
    assert text.count("Expected dead letters to be at most 0 in the last 30 minutes, got 2") >= 4
    assert "Each dead letter is a payment that was not booked." in text
    assert "https://runbooks.example.com/dead-letters" in text
    assert SECRET not in text and "hooks.slack.com" not in text  # addresses never shown
    assert "unused" not in text


def test_a_for_override_is_reported_and_a_rule_without_for_says_nothing_of_it(
        rules: RulesFile, real_timeline: Timeline) -> None:
    longer = dry_run(rules, "dead_letters", {"max": "1", "for": "10m"}, now=NOW).render()
    assert "would fire after for: 10 minutes" in longer
    none = dry_run(rules, "dead_letters", {"max": "1", "for": "0s"}, now=NOW).render()
    assert "WOULD FIRE (critical)\n" in none and "after for" not in none


def test_threshold_aliases_and_baseline_keys_land_on_the_rule_model(rules: RulesFile) -> None:
    rule = rules.rule("dead_letters")
    family = family_of(rule)
    assert isinstance(rule, SqlMetricRule)
    changed = apply_overrides(rule, family, {"threshold": "3", "keep_firing_for": "10m"})
    assert isinstance(changed, SqlMetricRule)
    assert changed.expect.max == 3 and changed.keep_firing_for == timedelta(minutes=10)
    critical = apply_overrides(rule, family, {"critical": "7"})
    assert isinstance(critical, SqlMetricRule) and critical.expect.max == 7
    learned = rules.rule("orders_last_hour")
    widened = apply_overrides(learned, family, {"width": "6", "min": "1",
                                                "adopt_after": "never"})
    assert isinstance(widened, SqlMetricRule) and widened.expect.baseline is not None
    assert widened.expect.baseline.width == 6 and widened.expect.min == 1
    assert widened.expect.baseline.adopt_after is None
    assert rule.expect.max == 5  # the loaded rule itself is unchanged


@pytest.mark.parametrize(("rule", "sets", "says"), [
    ("dead_letters", {"maxx": "0"}, "--set cannot change 'maxx' of sql_metric rule "
                                   "'dead_letters' (use min, max, resolve_min"),
    ("dead_letters", {"database": "sqlite://"}, "--set cannot change 'database'"),
    ("dead_letters", {"max": "lots"}, "--set max: expected a number, got 'lots'"),
    ("dead_letters", {"min": "9"}, "min (9.0) is greater than max (5.0)"),
    ("dead_letters", {"warning": "3"}, "is a critical rule; its bound is critical="),
    ("dead_letters", {"width": "5"}, "has no expect.baseline"),
    ("dead_letters", {"for": "soon"}, "--set: for:"),
    ("orders_last_hour", {"width": "-1"}, "--set: width:"),
])
def test_bad_overrides_are_clear_errors(rules: RulesFile, rule: str, sets: dict[str, str],
                                        says: str) -> None:
    with pytest.raises(ValueError) as caught:
        dry_run(rules, rule, sets, now=NOW)
    assert says in str(caught.value)


def test_an_unknown_rule_lists_close_names(rules: RulesFile) -> None:
    with pytest.raises(LookupError, match=r"unknown rule 'dead_leters'; did you mean "
                                          r"dead_letters\?"):
        dry_run(rules, "dead_leters", {}, now=NOW)
    with pytest.raises(LookupError, match=r"known rules: dead_letters, orders_last_hour"):
        dry_run(rules, "zzz", {}, now=NOW)


def test_an_unreachable_source_shows_the_error_alert_that_would_fire(
        tmp_path: Path, real_timeline: Timeline) -> None:
    rules = rules_for("postgresql+psycopg://probe:pw-hunter2@127.0.0.1:1/nowhere")
    result = dry_run(rules, "dead_letters", {"max": "0"}, now=NOW)
    (inst,) = result.instances
    assert inst.status == "error" and result.would_fire
    text = result.render()
    assert "check failed: dead letters:" in text and "WOULD FIRE" in text
    assert [m.receiver for m in result.messages] == ["oncall_hook", "team_slack"]
    assert "pw-hunter2" not in text and SECRET not in text
    assert not (tmp_path / "real-alerts.db").exists()  # the user's timeline never opened


def test_a_postgresql_source(pg_url: str, real_timeline: Timeline) -> None:
    rules = rules_for(source_db(pg_url, 3))
    assert not dry_run(rules, "dead_letters", {}, now=NOW).would_fire
    fired = dry_run(rules, "dead_letters", {"max": "2"}, now=NOW)
    assert fired.would_fire and fired.instances[0].value == 3
    assert "got 3" in fired.render()


def test_a_rule_its_sensor_evaluates_cannot_be_dry_run(tmp_path: Path) -> None:
    text = RULES.format(database=f"sqlite:///{tmp_path / 'source.db'}", secret=SECRET)
    rules = parse_rules(text + "  heartbeat:\n    - {name: nightly_backup, period: 1d, "
                        "grace: 1h}\n")
    with pytest.raises(ValueError, match=r"rule 'nightly_backup' \(heartbeat\) is evaluated "
                                         r"by its sensor, not on demand"):
        dry_run(rules, "nightly_backup", {}, now=NOW)
