"""The rules file loader: valid files load, invalid ones fail with every problem named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alert_jobs.config import (
    EnvRef,
    RuleFileProblem,
    RulesError,
    SecretMissingError,
    load_rules,
    parse_rules,
    resolve,
)
from alert_jobs.core.model import Severity
from alert_jobs.families.sql_metric.config import SqlMetricRule

REPO_RULES = Path(__file__).parents[2] / "alerts.yaml"

SECRET_URL = "https://hooks.slack.com/services/T000/B000/s3cr3t-VALUE-xyz"
SECRET_TOKEN = "Bearer tok3n-s3cr3t-abc"
SECRET_DB = "postgresql://reader:hunter2-db-pass@db.internal/prod"


def _problems(text: str, filename: str = "alerts.yaml") -> list[RuleFileProblem]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename)
    return info.value.problems


def _by_path(problems: list[RuleFileProblem]) -> dict[str, RuleFileProblem]:
    out: dict[str, RuleFileProblem] = {}
    for p in problems:
        assert p.path not in out, f"two problems for {p.path}: {problems}"
        out[p.path] = p
    return out


def _line_of(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


# ----- the repository's own rules file -------------------------------------------------


def test_repo_rules_file_loads():
    rules = load_rules(REPO_RULES)
    names = [r.name for r in rules.rules()]
    assert names[:2] == ["dead_letters", "orders_last_hour"] and "demo_cache" in names
    dead = rules.rule("dead_letters")
    assert isinstance(dead, SqlMetricRule)
    assert dead.severity == Severity.CRITICAL
    assert dead.window == timedelta(minutes=30)
    assert dead.keep_firing_for == timedelta(minutes=5)
    assert dead.expect.min == 0 and dead.expect.max == 0
    assert dead.labels == {"team": "payments", "service": "billing"}
    assert rules.schedule_for(dead) == "* * * * *"
    orders = rules.rule("orders_last_hour")
    assert orders.for_ == timedelta(minutes=10)
    assert rules.schedule_for(orders) == "*/5 * * * *"
    assert rules.repeat_interval_for(orders) == timedelta(hours=4)
    assert [r.name for r in rules.receivers] == ["console"]
    assert rules.direct_receivers(orders.name) == () and rules.defaults.receivers == ["console"]


def test_unknown_rule_lookup_names_the_known_rules():
    rules = load_rules(REPO_RULES)
    with pytest.raises(KeyError, match=r"dead_letters, demo_.*, orders_last_hour"):
        rules.rule("nope")


# ----- error format ----------------------------------------------------------------------

BAD_FOR = """\
version: 1
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT count(*) FROM dead_letters
      expect: {max: 0}
      for: 5 minutes
"""


def test_bad_duration_error_format_and_line():
    with pytest.raises(RulesError) as info:
        parse_rules(BAD_FOR, "alerts.yaml")
    err = info.value
    assert err.lines() == [
        "alerts.yaml: checks.sql_metric[0].for: expected a duration like 5m, "
        "got '5 minutes' (line 8)"
    ]
    assert str(err) == err.lines()[0]
    [problem] = err.problems
    assert problem.path == "checks.sql_metric[0].for"
    assert problem.line == 8 == _line_of(BAD_FOR, "for: 5 minutes")


def test_error_names_the_file_it_was_loaded_from(tmp_path):
    path = tmp_path / "team-rules.yaml"
    path.write_text(BAD_FOR, encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert info.value.lines()[0].startswith(
        f"{path}: checks.sql_metric[0].for: expected a duration like 5m, got '5 minutes'"
    )


# ----- every problem at once ---------------------------------------------------------------

MANY_SCHEMA_MISTAKES = """\
version: 1
defaults:
  timezone: Mars/Olympus
  schedule: "*/5 * * *"
receivers:
  - name: console
    type: console
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT 1
      expect: {min: 5, max: 1}
      for: 5 minutes
      colour: red
    - name: orders
      database: sqlite:///demo.db
      expect: {max: 1}
    - name: Dead-Letters
      database: sqlite:///demo.db
      query: SELECT 1
      expect: {max: 1}
"""


def test_all_schema_problems_are_reported_at_once():
    problems = _by_path(_problems(MANY_SCHEMA_MISTAKES))
    text = MANY_SCHEMA_MISTAKES
    expected = {
        "defaults.timezone": ("unknown timezone", _line_of(text, "Mars/Olympus")),
        "defaults.schedule": ("cron expression", _line_of(text, "schedule:")),
        "checks.sql_metric[0].expect": (
            "min (5.0) is greater than max (1.0)", _line_of(text, "{min: 5, max: 1}")),
        "checks.sql_metric[0].for": (
            "expected a duration like 5m, got '5 minutes'", _line_of(text, "for: 5 minutes")),
        "checks.sql_metric[0].colour": ("unknown key", _line_of(text, "colour: red")),
        "checks.sql_metric[1].query": ("required key is missing", _line_of(text, "name: orders")),
        "checks.sql_metric[2].name": ("expected a name of lowercase letters",
                                      _line_of(text, "Dead-Letters")),
    }
    assert set(problems) == set(expected)
    for path, (reason, line) in expected.items():
        assert reason in problems[path].reason, path
        assert problems[path].line == line, path


MANY_CROSS_MISTAKES = """\
version: 1
defaults:
  receivers: [console, pager]
receivers:
  - name: console
    type: console
  - name: console
    type: console
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT 1
      expect: {max: 0}
      receivers: [console, nobody]
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT 2
      expect: {max: 0}
"""


def test_all_cross_reference_problems_are_reported_at_once():
    problems = _by_path(_problems(MANY_CROSS_MISTAKES))
    text = MANY_CROSS_MISTAKES
    assert set(problems) == {
        "receivers[1].name",
        "defaults.receivers[1]",
        "checks.sql_metric[0].receivers[1]",
        "checks.sql_metric[1].name",
    }
    assert "'console' is used twice" in problems["receivers[1].name"].reason
    assert "unknown receiver 'pager'" in problems["defaults.receivers[1]"].reason
    assert problems["defaults.receivers[1]"].line == _line_of(text, "pager")
    nobody = problems["checks.sql_metric[0].receivers[1]"]
    assert "unknown receiver 'nobody'" in nobody.reason
    assert nobody.line == _line_of(text, "nobody")
    dup = problems["checks.sql_metric[1].name"]
    assert "rule name 'dead_letters' is used twice" in dup.reason
    assert dup.line == 16


EVERY_KIND_OF_MISTAKE = """\
version: 1
defaults:
  receivers: [console]
  timezone: Mars/Olympus
receivers:
  - name: console
    type: console
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT 1
      expect: {max: 0}
      for: 5 minutes
      receivers: [nobody]
    - name: dead_letters
      database: sqlite:///demo.db
      query: SELECT 2
      expect: {max: 0}
"""


def test_schema_and_cross_reference_problems_are_reported_together():
    paths = {p.path for p in _problems(EVERY_KIND_OF_MISTAKE)}
    assert paths == {
        "defaults.timezone",
        "checks.sql_metric[0].for",
        "checks.sql_metric[0].receivers[0]",
        "checks.sql_metric[1].name",
    }


@pytest.mark.parametrize(
    ("text", "path", "shown"),
    [
        ("defaults:\n  timezone: Mars/Olympus\n", "defaults.timezone", "'Mars/Olympus'"),
        ('defaults:\n  schedule: "*/5 * * *"\n', "defaults.schedule", "'*/5 * * *'"),
        (
            "checks:\n  sql_metric:\n    - name: Dead-Letters\n      database: x\n"
            "      query: SELECT 1\n      expect: {max: 0}\n",
            "checks.sql_metric[0].name",
            "'Dead-Letters'",
        ),
        (
            "checks:\n  sql_metric:\n    - name: x\n      database: x\n"
            "      query: SELECT 1\n      expect: {max: 0}\n      labels: {alertname: y}\n",
            "checks.sql_metric[0].labels",
            "'alertname'",
        ),
    ],
    ids=["timezone", "cron", "name", "label"],
)
def test_messages_show_the_offending_value(text, path, shown):
    [problem] = _problems(text)
    assert problem.path == path
    assert "!r}" not in problem.reason
    assert shown in problem.reason


# ----- file-level problems ---------------------------------------------------------------


def test_yaml_syntax_error_names_the_line():
    text = "version: 1\ndefaults:\n  receivers: [console\n  timezone: UTC\nreceivers: []\n"
    [problem] = _problems(text)
    assert problem.reason.startswith("not valid YAML")
    assert problem.line is not None and 3 <= problem.line <= 4
    text = "version: 1\ndefaults:\n\ttimezone: UTC\n"
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    [problem] = info.value.problems
    assert problem.line == 3
    assert info.value.lines()[0].startswith("alerts.yaml: not valid YAML")
    assert info.value.lines()[0].endswith("(line 3)")


@pytest.mark.parametrize("content", ["", "# only a comment\n", "\n\n"])
def test_empty_file_loads_as_defaults(tmp_path, content):
    path = tmp_path / "alerts.yaml"
    path.write_text(content, encoding="utf-8")
    rules = load_rules(path)
    assert rules.version == 1
    assert rules.rules() == []
    assert [(r.name, r.type) for r in rules.receivers] == [("console", "console")]
    assert rules.defaults.receivers == ["console"]
    assert rules.defaults.schedule == "*/5 * * * *"
    assert rules.defaults.timezone == "UTC"
    assert rules.defaults.repeat_interval == timedelta(hours=4)


@pytest.mark.parametrize("text", ["- name: dead_letters\n- name: orders\n", "just a string\n"])
def test_top_level_must_be_a_mapping(text):
    [problem] = _problems(text)
    assert problem.path == ""
    assert problem.reason == "expected a mapping at the top level"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert info.value.lines() == [f"{path}: file not found"]


def test_rules_file_env_variable_is_the_default(tmp_path, monkeypatch):
    path = tmp_path / "other.yaml"
    path.write_text(BAD_FOR.replace("5 minutes", "5m"), encoding="utf-8")
    monkeypatch.setenv("ALERT_JOBS_RULES", str(path))
    rules = load_rules()
    assert rules.rule("dead_letters").for_ == timedelta(minutes=5)


# ----- secrets as env references ------------------------------------------------------------

SECRET_RULES = """\
version: 1
receivers:
  - name: console
    type: console
  - name: slack
    type: webhook
    url: {env: SLACK_WEBHOOK_URL}
    headers:
      Authorization: {env: HOOK_TOKEN}
      X-Team: payments
checks:
  sql_metric:
    - name: dead_letters
      database: {env: DEAD_LETTERS_DB}
      query: SELECT 1
      expect: {max: 0}
      receivers: [slack]
"""


@pytest.fixture
def secrets_set(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", SECRET_URL)
    monkeypatch.setenv("HOOK_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("DEAD_LETTERS_DB", SECRET_DB)


def test_env_reference_parses_to_envref(secrets_set):
    rules = parse_rules(SECRET_RULES)
    slack = rules.receiver("slack")
    assert slack.url == EnvRef(env="SLACK_WEBHOOK_URL")
    assert slack.headers["Authorization"] == EnvRef(env="HOOK_TOKEN")
    assert slack.headers["X-Team"] == "payments"
    assert rules.checks.sql_metric[0].database == EnvRef(env="DEAD_LETTERS_DB")
    assert isinstance(slack.url, EnvRef)
    assert slack.url.resolve() == SECRET_URL
    assert resolve(slack.url) == SECRET_URL
    assert resolve("plain") == "plain"


def test_envref_str_and_repr_hide_the_value(secrets_set):
    rules = parse_rules(SECRET_RULES)
    url = rules.receiver("slack").url
    assert str(url) == "{env: SLACK_WEBHOOK_URL}"
    for shown in (str(url), repr(url), f"{url}", str(rules), repr(rules)):
        assert SECRET_URL not in shown
        assert SECRET_TOKEN not in shown
        assert SECRET_DB not in shown


def test_model_dump_json_has_no_secret_values(secrets_set):
    rules = parse_rules(SECRET_RULES)
    dumped = rules.model_dump_json()
    assert "SLACK_WEBHOOK_URL" in dumped  # the reference is kept ...
    for secret in (SECRET_URL, SECRET_TOKEN, SECRET_DB, "s3cr3t", "hunter2"):
        assert secret not in dumped  # ... the value never


@pytest.mark.parametrize("value", [None, ""])
def test_resolve_raises_when_variable_missing(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    else:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", value)
    rules = parse_rules(SECRET_RULES)  # parsing never needs the value
    url = rules.receiver("slack").url
    assert isinstance(url, EnvRef)
    with pytest.raises(SecretMissingError, match="SLACK_WEBHOOK_URL"):
        url.resolve()


def test_bad_env_reference_is_an_error():
    text = SECRET_RULES.replace("{env: SLACK_WEBHOOK_URL}", "{env: SLACK_WEBHOOK_URL, x: 1}")
    problems = _problems(text)
    assert any(p.path == "receivers[1].url.x" and p.reason == "unknown key" for p in problems)
    assert all(p.path.startswith("receivers[1].url") for p in problems)


def test_webhook_receiver_without_url_is_an_error():
    text = """\
receivers:
  - name: console
    type: console
  - name: hook
    type: webhook
    timeout: 5s
"""
    [problem] = _problems(text)
    assert problem.path.startswith("receivers[1]")
    assert "required key is missing" in problem.reason
    assert problem.line == _line_of(text, "name: hook")
