"""Issue 21 point 4: "edit rule" opens the rule where it lives — a configured editor URL
with the rule's file and line, else the text "alerts.yaml line N: rule X"; bad
templates are errors naming the YAML path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesError, load_rules, parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.notify.links import SECRET_ENV, rule_links
from alert_jobs.notify.registry import build_receivers
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, utcnow

RULES = """\
defaults:
  receivers: [chat]
{defaults}
receivers:
  - {{name: chat, type: slack, webhook_url: https://hooks.example.com/1}}
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite:///unused.db
      query: SELECT 1
      window: 30m
      expect: {{max: 0}}
"""


def rule_line(text: str) -> int:
    """The line of ``- name: dead_letters`` in ``text``, counted by hand."""
    return text.splitlines().index("    - name: dead_letters") + 1


def queued(rules: Any, tmp_path: Path) -> dict[str, Any]:
    timeline = Timeline(f"sqlite:///{tmp_path}/t.db")
    obs = Observation("dead_letters", Status.ALERT, {}, 3.0, summary="Expected 0, got 3")
    process_observations(rules, rules.rule("dead_letters"), timeline, [(obs, "")],
                         now=utcnow() - timedelta(minutes=1), run_id=None)
    (row,) = timeline.outbox.rows()
    timeline.dispose()
    return dict(row["payload"])


def test_without_a_template_messages_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "team-alerts.yaml"
    text = RULES.format(defaults="")
    path.write_text(text, encoding="utf-8")
    rules = load_rules(path)
    line = rule_line(text)
    payload = queued(rules, tmp_path)
    edit = payload["alerts"][0]["actions"]["edit_rule"]
    # The base name: the deployment's absolute path is no repository path.
    assert edit == f"team-alerts.yaml line {line}: rule dead_letters"
    body = build_receivers(rules.receivers)["chat"].render(payload)
    assert f"Edit rule: `team-alerts.yaml line {line}: rule dead_letters`" in str(body)
    assert str(tmp_path) not in str(body)


def test_a_template_becomes_a_link_to_the_rules_line(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # No link secret (`make test` exports one): the page's disable link is then "".
    monkeypatch.delenv("ALERT_JOBS_LINK_SECRET", raising=False)
    template = ('  edit_url: "https://github.com/acme/alerts/edit/main/{file}#L{line}"\n'
                '  edit_path: deploy/alerts.yaml\n'
                '  action_base_url: https://alerts.example.com')
    text = RULES.format(defaults=template)
    rules = parse_rules(text)
    url = f"https://github.com/acme/alerts/edit/main/deploy/alerts.yaml#L{rule_line(text)}"
    payload = queued(rules, tmp_path)
    assert payload["alerts"][0]["actions"]["edit_rule"] == url
    body = build_receivers(rules.receivers)["chat"].render(payload)
    assert f"<{url}|Edit rule>" in str(body)
    # The alert's page gets the same edit link, and a signed disable link once a
    # secret is set (none: no link, rather than an unsigned one).
    links = rule_links(rules, "dead_letters", "ab" * 8, episode=1, fired_at=None,
                       now=utcnow())
    assert (links.edit, links.disable) == (url, "")
    monkeypatch.setenv(SECRET_ENV, "test-secret-0123456789abcdef")
    links = rule_links(rules, "dead_letters", "ab" * 8, episode=1, fired_at=None,
                       now=utcnow())
    assert links.disable.startswith("https://alerts.example.com/a/")


@pytest.mark.parametrize(("template", "reason"), [
    ("https://git.example.com/{file}#L{lines}",
     "edit_url has an unknown placeholder {lines} (known: {file}, {line}, {rule})"),
    ("https://git.example.com/{file!r}", "edit_url has an unknown placeholder {file!r}"),
    ("ftp://git.example.com/{file}", "edit_url must be an http(s) URL"),
    ("{file}#L{line}", "edit_url must be an http(s) URL"),
    ("https://git.example.com/{file", "edit_url is not a valid template"),
])
def test_bad_templates_are_errors_naming_the_yaml_path(template: str, reason: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(RULES.format(defaults=f'  edit_url: "{template}"'))
    (line,) = err.value.lines()
    assert line.startswith(f"alerts.yaml: defaults.edit_url: {reason}"), line
    assert line.endswith("(line 3)")
