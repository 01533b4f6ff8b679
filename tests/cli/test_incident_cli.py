"""``alert-jobs incident``: show, set, add, list and export, in-process against a real
timeline (SQLite and PostgreSQL); bad input exits 2 with a message and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status, fingerprint
from alert_jobs.store import Timeline, utcnow
from tests.cli.cli_env import CliEnv

RULES = """\
version: 1
receivers:
  - name: console
    type: console
incidents:
  verified_methods: [dashboard, logs]
  verified_free_text: {free_text}
"""


class Env(CliEnv):

    def observe(self, status: Status, *, labels: dict[str, str] | None = None,
                ago: timedelta = timedelta(hours=1)) -> str:
        obs = Observation("dead_letters", status, labels or {"team": "payments"}, 3.0,
                          summary="3 dead letters")
        return self.timeline.alerts.process(
            obs, RulePolicy(rule="dead_letters", receivers=("console",)),
            now=utcnow() - ago).decision.record.fingerprint

    def written(self) -> tuple[int, int]:
        """(incident records, incident events): what a refused command must not change."""
        return (len(self.timeline.incidents.list()),
                len(self.timeline.events.list(kinds=["incident"])))


def make_env(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
             free_text: bool = True) -> Iterator[Env]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(free_text=str(free_text).lower()), encoding="utf-8")
    timeline = Timeline(url)
    timeline.upgrade()
    yield Env(url, rules, timeline, capsys)
    timeline.dispose()


@pytest.fixture
def env(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ALERT_JOBS_USER", "tester")
    yield from make_env(db_url, tmp_path, capsys)


@pytest.fixture
def sqlite_env(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Where storage does not matter (the input is refused before any write)."""
    monkeypatch.setenv("ALERT_JOBS_USER", "tester")
    yield from make_env(sqlite_url, tmp_path, capsys)


@pytest.fixture
def strict_env(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ALERT_JOBS_USER", "tester")
    yield from make_env(sqlite_url, tmp_path, capsys, free_text=False)


def test_set_then_show_and_export_an_episode(env: Env, tmp_path: Path) -> None:
    fp = env.observe(Status.ALERT)
    env.timeline.actions.ack(fp, by="bo")
    shown = env.run("incident", "show", fp[:8])
    assert shown.rc == 0 and "no incident record for dead_letters" in shown.out
    got = env.run("incident", "set", fp[:8], "--verified", "Dashboard",
                  "--false-positive", "no", "--mitigation", "restarted the consumer",
                  "--follow-up", "https://tickets.example.com/OPS-12", "--follow-up", "OPS-13",
                  "--runbook-sufficient", "no", "--runbook-missing", "which consumer")
    assert got.rc == 0, got.err
    assert "saved by tester" in got.out
    more = env.run("incident", "set", fp[:8], "--follow-up", "OPS-14", "--by", "cy")
    assert more.rc == 0, more.err
    record = env.timeline.incidents.for_episode(fp, 1)
    assert record is not None
    assert (record.verified, record.false_positive, record.runbook_sufficient) == (
        "dashboard", False, False)  # the configured spelling
    assert record.follow_ups == ["https://tickets.example.com/OPS-12", "OPS-13", "OPS-14"]
    assert record.actors == ["tester", "bo", "cy"]
    events = env.timeline.events.list(kinds=["incident"])
    # one event per changed answer: six, then the follow-ups again
    assert {e["source"] for e in events} == {"cli"} and len(events) == 7
    shown = env.run("incident", "show", fp[:8])
    assert "verified:           dashboard" in shown.out
    assert "people involved:    tester, bo, cy" in shown.out
    cleared = env.run("incident", "set", fp[:8], "--false-positive", "unknown")
    assert cleared.rc == 0
    assert env.timeline.incidents.for_episode(fp, 1).false_positive is None  # type: ignore[union-attr]
    out = tmp_path / "pm.md"
    exported = env.run("incident", "export", fp[:8], "-o", str(out))
    assert exported.rc == 0, exported.err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Postmortem: dead_letters firing")
    assert "- <https://tickets.example.com/OPS-12>" in text and "| bo | acked |" in text
    by_id = env.run("incident", "export", f"#{record.id}")
    assert by_id.rc == 0 and by_id.out == text


def test_the_default_episode_is_the_latest_and_older_ones_are_asked_for(env: Env) -> None:
    fp = env.observe(Status.ALERT, ago=timedelta(hours=3))
    env.observe(Status.OK, ago=timedelta(hours=2))
    env.observe(Status.ALERT, ago=timedelta(hours=1))
    assert env.run("incident", "set", fp, "--verified", "logs").rc == 0
    assert env.run("incident", "set", fp, "--episode", "1", "--verified", "dashboard").rc == 0
    assert env.timeline.incidents.for_episode(fp, 2).verified == "logs"  # type: ignore[union-attr]
    assert env.timeline.incidents.for_episode(fp, 1).verified == "dashboard"  # type: ignore[union-attr]
    bad = env.run("incident", "show", fp, "--episode", "3")
    assert bad.rc == 2 and "has episodes 1 to 2, not 3" in bad.err


def test_add_and_list_incidents_without_an_alert(env: Env) -> None:
    start = (utcnow() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    added = env.run("incident", "add", "--title", "Checkout 500s for EU users", "--start",
                    start, "--detected-by", "customer support tickets", "--label",
                    "service=checkout", "--label", "team=payments, env=prod", "--by", "dee")
    assert added.rc == 0, added.err
    assert "incident #1 recorded: Checkout 500s for EU users" in added.out
    got = env.timeline.incidents.get(1)
    assert got is not None and got.labels == {"service": "checkout", "team": "payments",
                                              "env": "prod"}
    assert got.detected_by == "customer support tickets" and got.actors == ["dee"]
    fp = env.observe(Status.ALERT)
    env.run("incident", "set", fp, "--verified", "logs")
    listed = env.run("incident", "list")
    assert listed.rc == 0 and "Checkout 500s" in listed.out and "dead_letters [" in listed.out
    without = env.run("incident", "list", "--without-alert")
    assert "Checkout 500s" in without.out and "dead_letters [" not in without.out
    assert "no incidents started in 2001-01" in env.run("incident", "list", "--month",
                                                        "2001-01").out
    assert env.run("incident", "set", "#1", "--mitigation", "rolled back").rc == 0
    assert env.timeline.incidents.get(1).mitigation == "rolled back"  # type: ignore[union-attr]


BAD_SET = [
    (("set", "zzzzzz", "--verified", "logs"), "no alert matches 'zzzzzz'"),
    (("set", "dead_letters", "--verified", "logs"), "names 2 alerts"),
    (("set", "{fp}", "--verified", "  "), "say how it was verified"),
    (("set", "{fp}"), "nothing to set"),
    (("set", "{fp}", "--follow-up", "two words"), "not one link or ticket id"),
    (("set", "#99", "--verified", "logs"), "no incident #99"),
    (("set", "{fp}", "--mitigation", ""), "--mitigation is empty"),
    (("show", "{fp}", "--episode", "0"), "not 0"),
    (("export", "{fp}"), "no incident record"),
    (("add", "--title", "x", "--start", "yesterday", "--detected-by", "me"),
     "--start 'yesterday' is not an ISO time"),
    (("add", "--title", "x", "--start", "2026-11-02T10:00", "--end", "2026-11-02T09:00",
      "--detected-by", "me"), "--end is before --start"),
    (("add", "--title", "x", "--start", "2999-01-01T00:00", "--detected-by", "me"),
     "in the future"),
    (("add", "--title", "x", "--start", "2026-11-02T10:00", "--detected-by", "me",
      "--label", "service"), "is not name=value"),
    (("add", "--title", " ", "--start", "2026-11-02T10:00", "--detected-by", "me"),
     "--title is empty"),
    (("list", "--month", "11/2026"), "is not a month"),
]


@pytest.mark.parametrize("args, message", BAD_SET)
def test_bad_input_is_a_clear_error_and_writes_nothing(sqlite_env: Env,
                                                       args: tuple[str, ...],
                                                       message: str) -> None:
    env = sqlite_env
    fp = env.observe(Status.ALERT, labels={"team": "payments"})
    env.observe(Status.ALERT, labels={"team": "search"})  # a rule with two alerts
    result = env.run("incident", *(a.format(fp=fp[:10]) for a in args))
    assert result.rc == 2, (result.out, result.err)
    assert message in result.err
    assert env.written() == (0, 0)
    ok = env.run("incident", "set", fp[:10], "--verified", "logs")  # positive control
    assert ok.rc == 0 and env.written() == (1, 1)


def test_an_ambiguous_prefix_is_refused(sqlite_env: Env) -> None:
    seen: dict[str, str] = {}
    for n in range(200_000):  # two label sets whose fingerprints share 6 characters
        fp = fingerprint("dead_letters", {"n": str(n)})
        if fp[:6] in seen:
            pair = [seen[fp[:6]], str(n)]
            break
        seen[fp[:6]] = str(n)
    fps = [sqlite_env.observe(Status.ALERT, labels={"n": n}) for n in pair]
    assert fps[0][:6] == fps[1][:6]
    result = sqlite_env.run("incident", "set", fps[0][:6], "--verified", "logs")
    assert result.rc == 2 and "matches 2 alerts; give more characters" in result.err
    assert sqlite_env.written() == (0, 0)
    n = next(i for i in range(6, 16) if fps[0][i] != fps[1][i])
    assert sqlite_env.run("incident", "set", fps[0][:n + 1], "--verified", "logs").rc == 0
    assert sqlite_env.timeline.incidents.for_episode(fps[0], 1) is not None


def test_verified_outside_the_list_is_refused_when_free_text_is_off(strict_env: Env) -> None:
    fp = strict_env.observe(Status.ALERT)
    bad = strict_env.run("incident", "set", fp, "--verified", "gut feeling")
    assert bad.rc == 2
    assert "verified must be one of: dashboard, logs" in bad.err
    assert strict_env.written() == (0, 0)
    assert strict_env.run("incident", "set", fp, "--verified", "LOGS").rc == 0
    assert strict_env.written() == (1, 1)


def test_a_bad_yes_no_is_refused_by_the_parser(env: Env) -> None:
    fp = env.observe(Status.ALERT)
    with pytest.raises(SystemExit) as exc:
        env.run("incident", "set", fp, "--false-positive", "maybe")
    assert exc.value.code == 2
    assert "invalid choice: 'maybe'" in env.capsys.readouterr().err
    assert env.written() == (0, 0)
    assert env.run("incident", "set", fp, "--false-positive", "yes").rc == 0
    assert env.written() == (1, 1)
