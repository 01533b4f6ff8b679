"""``alert-jobs`` CLI, run in-process against a per-test SQLite timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_jobs.cli.main import main
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import AlertRecord, AlertState, Matcher, Observation, Status
from alert_jobs.store import Timeline, utcnow
from tests.cli.cli_env import CliEnv

RULES = """\
version: 1
receivers:
  - name: console
    type: console
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///{src}
      query: SELECT count(*) FROM dead_letters
      expect: {{min: 0, max: 0}}
      severity: critical
      labels: {{team: payments}}
    - name: orders_last_hour
      database: sqlite:///{src}
      query: SELECT count(*) FROM orders
      expect: {{min: 1}}
"""

INVALID_RULES = """\
version: 1
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///x.db
      query: SELECT 1
      expect: {min: 0, max: 0}
      for: 5 minutes
      colour: red
    - name: orders
      database: sqlite:///x.db
      expect: {min: 1}
"""


class Env(CliEnv):

    def fire(self, rule: str = "dead_letters", labels: dict[str, str] | None = None,
             summary: str = "3 dead letters in the last 30m",
             now: datetime | None = None) -> AlertRecord:
        obs = Observation(rule=rule, status=Status.ALERT,
                          labels={"team": "payments"} if labels is None else labels,
                          summary=summary)
        result = self.timeline.alerts.process(obs, RulePolicy(rule=rule, receivers=("console",)),
                                              now=now)
        assert result.decision.record.state == AlertState.FIRING
        return result.decision.record

    def events(self, kind: str) -> list[dict]:
        return self.timeline.events.list(kinds=[kind])


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ALERT_JOBS_USER", "tester")
    monkeypatch.delenv("ALERT_JOBS_DATABASE_URL", raising=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(src=tmp_path / "src.db"), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/t.db"
    timeline = Timeline(url)
    yield Env(url, rules, timeline, capsys)
    timeline.dispose()


def _close(a: datetime, b: datetime, slack: timedelta = timedelta(seconds=60)) -> bool:
    return abs(a - b) <= slack


# ----- rules validate ------------------------------------------------------------------


def test_rules_validate_valid_file(env):
    r = env.run("rules", "validate", str(env.rules))
    assert r.rc == 0, r.err
    assert "ok (2 rules: dead_letters, orders_last_hour; 1 receivers)" in r.out
    assert r.err == ""


def test_rules_validate_defaults_to_rules_option(env):
    r = env.run("rules", "validate")
    assert r.rc == 0, r.err
    assert r.out.startswith(f"{env.rules}: ok")


def test_rules_validate_invalid_file_lists_every_problem(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(INVALID_RULES, encoding="utf-8")
    r = env.run("rules", "validate", str(bad))
    assert r.rc == 2
    assert r.out == ""
    lines = r.err.splitlines()
    assert f"{bad}: checks.sql_metric[0].for: expected a duration like 5m, got '5 minutes' " \
           "(line 8)" in lines
    assert f"{bad}: checks.sql_metric[0].colour: unknown key (line 9)" in lines
    assert f"{bad}: checks.sql_metric[1].query: required key is missing (line 10)" in lines
    assert lines[-1] == "3 problem(s) found"
    assert len(lines) == 4


def test_rules_validate_missing_file(env, tmp_path):
    r = env.run("rules", "validate", str(tmp_path / "nope.yaml"))
    assert r.rc == 2
    assert "file not found" in r.err


# ----- db upgrade ------------------------------------------------------------------------


def test_db_upgrade_is_idempotent(env):
    assert env.timeline.schema_version() == 0
    first = env.run("db", "upgrade")
    assert first.rc == 0, first.err
    assert "applied" in first.out
    version = env.timeline.schema_version()
    assert version >= 1
    second = env.run("db", "upgrade")
    assert second.rc == 0, second.err
    assert "up to date" in second.out
    assert f"schema version {version}" in second.out
    assert "applied" not in second.out
    assert env.timeline.schema_version() == version


# ----- status ------------------------------------------------------------------------------


def test_status_without_alerts(env):
    r = env.run("status")
    assert r.rc == 0
    assert "no active alerts" in r.out


def test_status_lists_firing_alert(env):
    rec = env.fire()
    ok = env.timeline.alerts.process(
        Observation(rule="orders_last_hour", status=Status.OK, labels={}, summary="all fine"),
        RulePolicy(rule="orders_last_hour"))
    r = env.run("status")
    assert r.rc == 0, r.err
    rows = [line for line in r.out.splitlines() if rec.fingerprint[:12] in line]
    assert len(rows) == 1
    assert "dead_letters" in rows[0]
    assert "firing" in rows[0]
    assert "3 dead letters in the last 30m" in rows[0]
    assert "orders_last_hour" not in r.out  # inactive alerts are not listed by default
    everything = env.run("status", "--all")
    assert ok.decision.record.fingerprint[:12] in everything.out


def test_status_json(env):
    rec = env.fire()
    r = env.run("status", "--json")
    assert r.rc == 0, r.err
    data = json.loads(r.out)
    assert isinstance(data, list) and len(data) == 1
    item = data[0]
    assert item["fingerprint"] == rec.fingerprint
    assert item["rule"] == "dead_letters"
    assert item["state"] == "firing"
    assert item["labels"] == {"team": "payments"}
    assert item["last_summary"] == "3 dead letters in the last 30m"


# ----- ack ----------------------------------------------------------------------------------


def test_ack_records_actor_note_and_outcome(env):
    rec = env.fire()
    r = env.run("ack", "dead_letters", "--by", "alice", "--note", "x",
                "--outcome", "false-positive")
    assert r.rc == 0, r.err
    assert f"acked dead_letters [{rec.fingerprint[:12]}]" in r.out
    acked = env.events("acked")
    assert len(acked) == 1
    assert acked[0]["actor"] == "alice"
    assert acked[0]["fingerprint"] == rec.fingerprint
    assert acked[0]["rule"] == "dead_letters"
    after = env.timeline.alerts.get(rec.fingerprint)
    assert after is not None
    assert after.ack_outcome == "false-positive"
    assert after.acked_by == "alice"
    assert after.ack_note == "x"
    assert after.acked_at is not None
    status = env.run("status")
    assert "acked by alice" in status.out


def test_ack_unknown_target(env):
    env.fire()
    r = env.run("ack", "no_such_rule", "--by", "alice")
    assert r.rc == 2
    assert r.err.startswith("alert-jobs: error:")
    assert "'no_such_rule'" in r.err
    assert env.events("acked") == []


def test_ack_known_rule_without_active_alert(env):
    env.fire()
    r = env.run("ack", "orders_last_hour", "--by", "alice")
    assert r.rc == 2
    assert "rule 'orders_last_hour' has no active alert" in r.err
    assert env.events("acked") == []


def test_ack_bogus_outcome_is_rejected_by_argparse(env):
    rec = env.fire()
    with pytest.raises(SystemExit) as info:
        env.run("ack", "dead_letters", "--outcome", "bogus")
    assert info.value.code == 2
    assert "invalid choice: 'bogus'" in env.capsys.readouterr().err
    assert env.timeline.alerts.get(rec.fingerprint).acked_at is None


# ----- snooze -------------------------------------------------------------------------------


def test_snooze_by_fingerprint_prefix(env):
    rec = env.fire()
    before = utcnow()
    r = env.run("snooze", rec.fingerprint[:8], "--for", "1h")
    after = utcnow()
    assert r.rc == 0, r.err
    assert f"snoozed dead_letters [{rec.fingerprint[:12]}]" in r.out
    until = env.timeline.alerts.get(rec.fingerprint).snoozed_until
    assert until is not None
    assert before + timedelta(hours=1) - timedelta(seconds=1) <= until
    assert until <= after + timedelta(hours=1) + timedelta(seconds=1)
    snoozed = env.events("snoozed")
    assert len(snoozed) == 1 and snoozed[0]["actor"] == "tester"


def test_snooze_bad_duration(env):
    rec = env.fire()
    r = env.run("snooze", "dead_letters", "--for", "5minutes")
    assert r.rc == 2
    assert "'5minutes'" in r.err
    assert env.timeline.alerts.get(rec.fingerprint).snoozed_until is None
    assert env.events("snoozed") == []


# ----- silences ---------------------------------------------------------------------------


def test_silence_list_and_unsilence(env):
    before = utcnow()
    r = env.run("silence", "alertname=dead_letters", "team=~pay.*", "--for", "2h",
                "--comment", "maint", "--by", "bob")
    assert r.rc == 0, r.err
    [silence] = env.timeline.silences.list()
    assert silence.matchers == (Matcher("alertname", "=", "dead_letters"),
                                Matcher("team", "=~", "pay.*"))
    assert silence.created_by == "bob"
    assert silence.comment == "maint"
    assert _close(silence.ends_at, before + timedelta(hours=2))
    assert silence.id in r.out

    listed = env.run("silences")
    assert listed.rc == 0
    row = next(line for line in listed.out.splitlines() if silence.id in line)
    assert "alertname=dead_letters, team=~pay.*" in row
    assert "bob" in row and "maint" in row

    gone = env.run("unsilence", silence.id[:8], "--by", "bob")
    assert gone.rc == 0, gone.err
    assert f"silence {silence.id} expired" in gone.out
    assert env.timeline.silences.list() == []
    [expired] = env.timeline.silences.list(include_expired=True)
    assert expired.ends_at <= utcnow()
    assert "no silences" in env.run("silences").out
    assert silence.id in env.run("silences", "--all").out
    unsilenced = env.events("unsilenced")
    assert len(unsilenced) == 1 and unsilenced[0]["actor"] == "bob"


def test_silence_mutes_matching_alert(env):
    assert env.run("silence", "alertname=dead_letters", "team=~pay.*", "--comment", "maint",
                   "--by", "bob").rc == 0
    env.timeline.alerts.process(
        Observation(rule="dead_letters", status=Status.ALERT, labels={"team": "payments"},
                    summary="x"),
        RulePolicy(rule="dead_letters", receivers=("console",)))
    assert env.timeline.outbox.rows() == []


@pytest.mark.parametrize("matcher", ["team~~x", "=x", "team=~(unclosed"])
def test_silence_bad_matcher(env, matcher):
    r = env.run("silence", matcher, "--comment", "maint")
    assert r.rc == 2
    assert r.err.startswith("alert-jobs: error:")
    assert env.timeline.silences.list(include_expired=True) == []


def test_unsilence_unknown_id(env):
    r = env.run("unsilence", "nope")
    assert r.rc == 2
    assert "no silence with id 'nope'" in r.err


def test_unsilence_id_is_not_a_like_pattern(env):
    assert env.run("silence", "team=x", "--comment", "maint").rc == 0
    r = env.run("unsilence", "%")
    assert r.rc == 2
    assert len(env.timeline.silences.list()) == 1


# ----- disable / enable ---------------------------------------------------------------------


def test_disable_and_enable_rule(env):
    r = env.run("disable", "dead_letters", "--by", "carol", "--note", "noisy")
    assert r.rc == 0, r.err
    assert env.timeline.rule_settings.disabled() == {"dead_letters"}
    [disabled] = env.events("disabled")
    assert disabled["rule"] == "dead_letters" and disabled["actor"] == "carol"
    assert "disabled rules: dead_letters" in env.run("status").out

    r = env.run("enable", "dead_letters", "--by", "carol")
    assert r.rc == 0, r.err
    assert env.timeline.rule_settings.disabled() == set()
    [enabled] = env.events("enabled")
    assert enabled["rule"] == "dead_letters" and enabled["actor"] == "carol"
    assert "disabled rules" not in env.run("status").out


def test_disable_unknown_rule(env):
    r = env.run("disable", "unknown_rule")
    assert r.rc == 2
    assert "unknown rule 'unknown_rule'" in r.err
    assert env.timeline.rule_settings.disabled() == set()
    assert env.events("disabled") == []


# ----- timeline ---------------------------------------------------------------------------


def test_timeline_filters_by_rule_kind_and_since(env):
    rec = env.fire(summary="fresh firing")
    env.fire(rule="orders_last_hour", labels={}, summary="orders firing")
    env.timeline.events.record("firing", "old firing", fingerprint=rec.fingerprint,
                               rule="dead_letters", now=utcnow() - timedelta(hours=2))
    env.timeline.events.record("notify", "another kind", fingerprint=rec.fingerprint,
                               rule="dead_letters")
    assert env.events("notify")  # the engine queued a notification too

    r = env.run("timeline", "--rule", "dead_letters", "--kind", "firing", "--since", "1h")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 1, r.out
    assert "firing" in lines[0] and "dead_letters" in lines[0]
    assert rec.fingerprint[:8] in lines[0]
    assert "fresh firing" in lines[0]
    assert "notify" not in r.out and "another kind" not in r.out
    assert "old firing" not in r.out
    assert "orders" not in r.out

    data = json.loads(env.run("timeline", "--rule", "dead_letters", "--kind", "firing",
                              "--json").out)
    assert [e["reason"] for e in data] == ["old firing", "fresh firing"]


def test_timeline_run_id_lists_every_evaluation_of_the_run(env):
    """A run that changed nothing left no event, yet its evaluations are listed."""
    policy = RulePolicy(rule="dead_letters", receivers=("console",))

    def observe(status: Status, queue: str, summary: str, run_id: str) -> None:
        env.timeline.alerts.process(
            Observation("dead_letters", status, {"team": "payments", "queue": queue},
                        0.0 if status == Status.OK else 3.0, summary=summary), policy,
            run_id=run_id)

    observe(Status.OK, "q1", "0 dead letters in q1", "run-quiet")
    observe(Status.OK, "q2", "0 dead letters in q2", "run-quiet")
    observe(Status.ALERT, "q3", "3 dead letters in q3", "run-loud")  # positive control

    quiet = env.run("timeline", "--run-id", "run-quiet")
    assert quiet.rc == 0, quiet.err
    lines = quiet.out.splitlines()
    assert lines[0] == "no events"
    assert "evaluations in run run-quiet: 2" in lines
    rows = [line for line in lines if "dead letters in" in line]
    assert len(rows) == 2 and all("ok" in r and "inactive" in r for r in rows), quiet.out
    assert "q3" not in quiet.out

    loud = env.run("timeline", "--run-id", "run-loud").out
    assert "firing" in loud.splitlines()[0] and "no events" not in loud
    assert "evaluations in run run-loud: 1" in loud
    assert "alert  → firing" in loud and "value=3" in loud

    data = json.loads(env.run("timeline", "--run-id", "run-quiet", "--json").out)
    assert data["events"] == []
    assert [(e["status"], e["state_after"], e["run_id"]) for e in data["evaluations"]] == [
        ("ok", "inactive", "run-quiet")] * 2


def test_timeline_unknown_rule(env):
    env.fire()
    r = env.run("timeline", "--rule", "nope")
    assert r.rc == 2
    assert "unknown rule 'nope'" in r.err


def test_timeline_bad_since(env):
    r = env.run("timeline", "--since", "yesterdayish")
    assert r.rc == 2
    assert "'yesterdayish'" in r.err


# ----- database down ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["ack", "dead_letters"], ["db", "upgrade"]])
def test_unreachable_postgres_fails_cleanly(tmp_path, capsys, command):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(src=tmp_path / "src.db"), encoding="utf-8")
    rc = main(["--database-url", "postgresql://postgres@127.0.0.1:1/test",
               "--rules", str(rules), *command])
    out, err = capsys.readouterr()
    assert rc == 1
    assert err.startswith("alert-jobs: timeline database error")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "Traceback" not in out


def test_rules_reset_baseline_forgets_one_rule_s_backfill_and_keeps_the_others(env):
    from alert_jobs.core.baseline import Shift
    from alert_jobs.store.baselines import BaselineState

    env.timeline.upgrade()
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for rule in ("orders_last_hour", "dead_letters"):
        fp = f"fp-{rule}"
        assert env.timeline.baselines.add_points(
            rule, fp, [(t0 + timedelta(minutes=5 * i), 10.0 + i) for i in range(3)]) == 3
        env.timeline.baselines.save(BaselineState(fp, rule, (Shift(t0, t0, factor=2.0),),
                                                  t0, 3, 3), t0)
    r = env.run("rules", "reset-baseline", "orders_last_hour")
    assert r.rc == 0, r.err
    assert r.out == ("orders_last_hour: 4 backfilled point(s) and state row(s) deleted; "
                     "the next run backfills its history again\n")
    ranges = [(t0 - timedelta(days=1), t0 + timedelta(days=1))]
    assert env.timeline.baselines.history("orders_last_hour", "fp-orders_last_hour",
                                          ranges) == []
    assert env.timeline.baselines.states(["fp-orders_last_hour"]) == {}
    # the other rule keeps everything (the positive control)
    assert len(env.timeline.baselines.history("dead_letters", "fp-dead_letters", ranges)) == 3
    assert "fp-dead_letters" in env.timeline.baselines.states(["fp-dead_letters"])


def test_rules_reset_baseline_refuses_an_unknown_rule(env):
    r = env.run("rules", "reset-baseline", "orders_lasthour")
    assert r.rc == 2 and "orders_lasthour" in r.err and r.out == ""
