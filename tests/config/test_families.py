"""The family registry: broken or clashing plugins are skipped and named, never fatal."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import pytest

from alert_jobs.cli.main import main
from alert_jobs.config import (
    ENTRY_POINT_GROUP,
    RulesError,
    added_family,
    family_problems,
    installed_families,
    parse_rules,
)
from alert_jobs.config import families as registry
from tests.runtime.example_family import FAMILY


@pytest.fixture
def broken_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed entry point whose module cannot be imported."""
    real = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint(name="broken_thing", group=ENTRY_POINT_GROUP,
                                           value="alert_jobs_no_such_module:FAMILY")

    def entry_points(**kwargs: str) -> importlib.metadata.EntryPoints:
        found = real(**kwargs)
        if kwargs.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([*found, broken])
        return found

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)
    registry._from_entry_points.cache_clear()
    try:
        yield
    finally:
        monkeypatch.undo()
        registry._from_entry_points.cache_clear()


def test_a_broken_plugin_is_skipped_and_named(broken_plugin: None, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    names = [f.name for f in installed_families()]
    assert "sql_metric" in names and "broken_thing" not in names
    (problem,) = family_problems()
    assert "'broken_thing'" in problem and "ModuleNotFoundError" in problem
    # The command line keeps working (an ack during an incident must), and says why.
    assert main(["--database-url", f"sqlite:///{tmp_path / 'a.db'}", "status"]) == 0
    assert "warning: check family 'broken_thing'" in capsys.readouterr().err
    # A rules file that uses the broken family is invalid, with the reason at its key.
    with pytest.raises(RulesError) as info:
        parse_rules("checks:\n  broken_thing: []\n")
    assert "checks.broken_thing: unknown key (check family 'broken_thing'" in str(info.value)
    # The others still validate.
    assert parse_rules("checks:\n  sql_metric: []\n").rules() == []


def test_without_a_broken_plugin_there_is_nothing_to_say() -> None:
    """Positive control of the test above: the installed families all load."""
    assert family_problems() == ()
    with pytest.raises(RulesError) as info:
        parse_rules("checks:\n  nothing_like_it: []\n")
    assert "unknown key (no installed check family has it)" in str(info.value)


def test_a_family_that_claims_another_familys_key_is_skipped() -> None:
    clash = dataclasses.replace(FAMILY, name="impostor", rules=dataclasses.replace(
        FAMILY.rules, family="sql_metric"))
    with added_family(clash):
        names = [f.name for f in installed_families()]
        assert "impostor" not in names and "sql_metric" in names
        assert any("'impostor' is skipped: 'sql_metric' already defines 'checks.sql_metric'"
                   in p for p in family_problems())
    assert family_problems() == ()


def test_problems_are_listed_in_file_order() -> None:
    """Cross-file problems (reserved names, unknown receivers) come in the order of the
    lines they are on, as schema errors do."""
    text = """
receivers: [{name: console, type: console}]
checks:
  sql_metric:
    - {name: heartbeat, database: "sqlite://", query: SELECT 1, expect: {max: 1}}
    - {name: b, database: "sqlite://", query: SELECT 1, expect: {max: 1}, receivers: [nope]}
quality: {review_receiver: pager}
"""
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    paths = [p.path for p in info.value.problems]
    assert paths == ["checks.sql_metric[0].name", "checks.sql_metric[1].receivers[0]",
                     "quality.review_receiver"]
    lines = [p.line for p in info.value.problems]
    assert lines == sorted(lines)
