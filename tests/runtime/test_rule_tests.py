"""``alert-jobs rules test``: the harness, on the README's example family (``disk_space``).

Each family's own inputs are tested in ``tests/families/<family>/test_simulate.py``; the
demo's test file runs in ``tests/test_demo_rule_tests.py``. Here: the clock, actions,
routing timers, the diff and the exit codes, through the real CLI entry point.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_jobs.cli.main import main
from alert_jobs.config import added_family
from tests.runtime.example_family import FAMILY

RULES = """
receivers:
  - {name: oncall, type: webhook, url: "http://127.0.0.1:9/never-called"}
  - {name: manager, type: webhook, url: "http://127.0.0.1:9/never-called-either"}
defaults: {receivers: [oncall]}
route:
  receiver: oncall
  group_wait: 0s
  repeat_interval: 30m     # on the route, as in Alertmanager
  escalation: [{after: 10m, receiver: manager}]
inhibit_rules:
  - source_matchers: ["alertname=root_disk"]
    target_matchers: ["alertname=scratch_disk"]
checks:
  disk_space:
    - name: scratch_disk
      path: /scratch
      min_free_percent: 10
      severity: critical
      for: 3m
      labels: {team: data}
    - name: root_disk
      path: /
      min_free_percent: 10
      severity: critical
"""

PASSING = """
tests:
  - name: fills, pages after for, resolves once
    input:
      scratch_disk: {free_percent: "50 40 5x6 50x10"}
    expect:
      - at: 2m
        alerts: {scratch_disk: [{state: pending, labels: {team: data}}]}
      - at: 5m
        alerts:
          scratch_disk: [{state: firing, severity: critical, message: "got 5.0 %"}]
      - at: 12m
        alerts: {scratch_disk: []}
    notifications:
      - {at: 5m, receiver: oncall, kind: firing, rule: scratch_disk, message: "5.0 %"}
      - {at: 10m, receiver: oncall, kind: resolved, rule: scratch_disk}  # group_interval 5m
"""


@pytest.fixture(autouse=True)
def family() -> Iterator[None]:
    with added_family(FAMILY):
        yield


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Where the user's timeline would be: the test must never create or touch it.
    monkeypatch.setenv("ALERT_JOBS_DATABASE_URL", f"sqlite:///{tmp_path / 'users.db'}")
    (tmp_path / "alerts.yaml").write_text(RULES, encoding="utf-8")
    return tmp_path


def run(files: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str
        ) -> tuple[int, str]:
    path = files / "alerts.test.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    code = main(["rules", "test", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_passing_file_exits_0_and_touches_no_database_of_the_user(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(files, PASSING, capsys, "-v")
    assert code == 0, out
    assert "1 test, 1 passed" in out
    assert "firing to oncall at 5m for scratch_disk" in out
    assert not (files / "users.db").exists()


def test_a_wrong_expectation_exits_1_with_expected_got_time_and_line(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = PASSING.replace("at: 5m\n        alerts", "at: 4m\n        alerts")
    code, out = run(files, wrong, capsys)
    assert code == 1, out
    assert "alerts of scratch_disk at 4m (" in out and "alerts.test.yaml:9)" in out
    assert "expected: firing critical message ~ 'got 5.0 %'" in out
    assert "got:      pending critical" in out
    # the notifications still matched: only the wrong expectation is reported
    assert "notification #" not in out


def test_notifications_are_the_complete_list_in_order(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_resolve = PASSING.split("      - {at: 10m")[0]
    code, out = run(files, missing_resolve, capsys)
    assert code == 1
    assert "notification #2" in out and "expected: no more notifications" in out
    assert "got:      resolved to oncall at 10m for scratch_disk" in out
    # and `[]` means "sends nothing": the firing page breaks it
    code, out = run(files, PASSING.split("    notifications:")[0] + "    notifications: []\n",
                    capsys)
    assert code == 1 and "got:      firing to oncall at 5m" in out


def test_nodata_and_source_errors_follow_the_rules_policies(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(files, """
        tests:
          - name: a failing read is an error alert; no value is nodata
            input:
              root_disk: {free_percent: "50 error(disk unplugged)x3 50 _x2"}
            expect:
              - at: 2m
                alerts: {root_disk: [{state: firing, message: "disk unplugged"}]}
              - at: 4m
                alerts: {root_disk: []}
              - at: 6m
                alerts: {root_disk: [{state: firing, message: "no reading"}]}
        """, capsys)
    assert code == 0, out


def test_ack_stops_escalation_which_pages_the_manager_otherwise(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    test = """
        tests:
          - name: escalation
            input:
              root_disk: {free_percent: "5x20"}
            actions: ACTIONS
            notifications:
              - {at: 0m, receiver: oncall, kind: firing, rule: root_disk}
              NOTES
            duration: 20m
        """
    escalated = test.replace("ACTIONS", "[]").replace(
        "NOTES", "- {at: 10m, receiver: manager, kind: escalation, rule: root_disk}")
    code, out = run(files, escalated, capsys)
    assert code == 0, out
    acked = test.replace("ACTIONS", "[{at: 5m, ack: root_disk, by: alice}]").replace(
        "NOTES", "")
    code, out = run(files, acked, capsys)
    assert code == 0, out


def test_repeat_interval_repeats_a_firing_alert(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(files, """
        tests:
          - name: still firing after repeat_interval
            input:
              scratch_disk: {free_percent: "5x40"}
            actions: [{at: 4m, ack: scratch_disk}]
            duration: 40m
            notifications:
              - {at: 3m, receiver: oncall, kind: firing}
        """, capsys)
    assert code == 0, out  # acked: no repeat, no escalation
    code, out = run(files, """
        tests:
          - name: still firing after repeat_interval
            input:
              scratch_disk: {free_percent: "5x40"}
            actions: [{at: 4m, snooze: scratch_disk, for: 2m}]
            duration: 40m
            notifications:
              - {at: 3m, receiver: oncall, kind: firing}
              - {at: 13m, receiver: manager, kind: escalation}
              - {at: 33m, receiver: oncall, kind: repeat}
        """, capsys)
    assert code == 0, out


def test_silence_mutes_the_page_and_inhibition_mutes_the_target(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(files, """
        tests:
          - name: silenced for the whole episode
            input:
              scratch_disk: {free_percent: "5x5 50x3"}
            actions:
              - {at: 0m, silence: ['alertname="scratch_disk"'], for: 30m, comment: disk swap,
                 name: swap}
            expect:
              - at: 4m
                alerts: {scratch_disk: [{state: firing}]}
            notifications: []
          - name: the same without the silence pages (positive control)
            input:
              scratch_disk: {free_percent: "5x5 50x3"}
            duration: 8m
            notifications:
              - {at: 3m, receiver: oncall, kind: firing}
              - {at: 8m, receiver: oncall, kind: resolved}  # group_interval after 3m
          - name: an expired silence lets the page through
            input:
              scratch_disk: {free_percent: "5x10"}
            actions:
              - {at: 0m, silence: ['team="data"'], for: 1h, comment: maintenance, name: m}
              - {at: 6m, expire: m}
            duration: 8m
            notifications:
              - {at: 6m, receiver: oncall, kind: firing}
          - name: root_disk firing inhibits scratch_disk
            input:
              root_disk: {free_percent: "5x10"}
              scratch_disk: {free_percent: "5x10"}
            duration: 10m
            notifications:
              - {at: 0m, receiver: oncall, kind: firing, rule: root_disk}
              - {at: 10m, receiver: manager, kind: escalation, rule: root_disk}
        """, capsys)
    assert code == 0, out
    assert "4 tests, 4 passed" in out


@pytest.mark.parametrize(("body", "line", "wanted"), [
    ("tests: [{name: x, input: {scratch_disk: {free_percent: '5 5+x3'}}, duration: 5m}]", 1,
     "tests[0].input.scratch_disk.free_percent: '5+x3' is not a series term"),
    ("tests:\n  - name: x\n    input: {scratch_dsk: {free_percent: '5'}}\n    duration: 1m",
     3, "unknown rule 'scratch_dsk'; did you mean scratch_disk"),
    ("tests:\n  - name: x\n    input: {scratch_disk: {free: '5'}}\n    duration: 1m", 3,
     "a disk_space rule's input is free_percent"),
    ("tests:\n  - name: x\n    input: {root_disk: {free_percent: '5'}}\n"
     "    expect: [{at: soon, alerts: {root_disk: []}}]", 4,
     "tests[0].expect[0].at: expected a duration like 90s"),
    ("tests:\n  - name: x\n    input: {root_disk: {free_percent: '5'}}\n"
     "    notifications: [{receiver: pager, kind: firing, at: 1m}]", 4,
     "unknown receiver 'pager'"),
    ("tests:\n  - name: x\n    input: {root_disk: {free_percent: '5'}}\n    duration: 1m\n"
     "    actions: [{at: 0m, silence: ['team=~(']}]", 5, "bad regex"),
    ("tests:\n  - name: x\n    input: {root_disk: {free_percent: '5'}}\n    colour: red\n", 4,
     "tests[0].colour: unknown key"),
    ("tests: [name: x\n", 2, "not valid YAML"),
])
def test_a_broken_file_exits_2_naming_path_line_and_fix(
        files: Path, capsys: pytest.CaptureFixture[str], body: str, line: int,
        wanted: str) -> None:
    code, out = run(files, body, capsys)
    assert code == 2, out
    assert f"alerts.test.yaml:{line}: " in out, out
    assert wanted in out, out


def test_a_broken_rules_file_exits_2_naming_the_rules_file(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "alerts.yaml").write_text(RULES.replace("for: 3m", "for: three"), "utf-8")
    code, out = run(files, PASSING, capsys)
    assert code == 2
    assert "alerts.yaml:" in out and ".for:" in out


def test_an_action_that_cannot_be_done_is_a_failure_not_a_crash(
        files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(files, """
        tests:
          - name: ack before anything fired
            input:
              root_disk: {free_percent: "50x5"}
            actions: [{at: 1m, ack: root_disk}]
            duration: 3m
          - name: ack a pending alert
            input:
              scratch_disk: {free_percent: "5x5"}
            actions: [{at: 1m, ack: scratch_disk}]
            duration: 3m
        """, capsys)
    assert code == 1
    assert "action ack at 1m" in out and "no active alert of root_disk" in out
    assert "refused: alert" in out and "is pending; only firing alerts can be acked" in out
