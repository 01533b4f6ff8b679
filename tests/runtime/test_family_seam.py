"""The family seam: a check family is one package (here one module) plus one registration.

``example_family.py`` (``disk_space``) is the README's "Adding a check family" example,
verbatim; installed with :func:`alert_jobs.config.added_family` instead of an entry point,
it must be validated by the loader, evaluated by ``alert-jobs check``, merged into the
code location and materialized like any built-in family.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from alert_jobs.cli.main import main
from alert_jobs.config import RulesError, added_family, parse_rules
from alert_jobs.definitions import build_definitions
from alert_jobs.runtime.family import family_of, installed_families
from alert_jobs.runtime.resources import TIMELINE_KEY, AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance, write_rules
from tests.runtime.example_family import FAMILY, DiskSpaceRule

ROOT = Path(__file__).resolve().parents[2]
RULES = """
defaults: {{receivers: [console]}}
checks:
  disk_space:
    - name: scratch_disk
      path: {path}
      min_free_percent: {percent}
      severity: critical
  sql_metric:
    - name: dead_letters
      database: sqlite://
      query: SELECT 0
      expect: {{max: 0}}
"""


@pytest.fixture
def family() -> Iterator[None]:
    with added_family(FAMILY):
        yield


def _rules(tmp_path: Path, percent: float, path: Path | None = None) -> Path:
    return write_rules(tmp_path / "alerts.yaml",
                       RULES.format(path=path or tmp_path, percent=percent))


def test_the_readme_shows_the_example_as_it_is_tested() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Adding a check family", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    example = (Path(__file__).parent / "example_family.py").read_text(encoding="utf-8")
    assert example in blocks, "README's example differs from tests/runtime/example_family.py"


def test_an_unregistered_family_is_an_unknown_key() -> None:
    """Positive control for the next test: without the registration, its section fails."""
    with pytest.raises(RulesError) as info:
        parse_rules(RULES.format(path="/", percent=5))
    assert "checks.disk_space: unknown key" in str(info.value)


def test_a_registered_family_is_validated_with_the_others(family: None, tmp_path: Path
                                                          ) -> None:
    rules = parse_rules(_rules(tmp_path, 5).read_text())
    (rule,) = rules.rules_of(DiskSpaceRule)
    assert rule.name == "scratch_disk" and family_of(rule) is FAMILY
    assert [r.name for r in rules.rules()] == ["dead_letters", "scratch_disk"]  # by order
    assert "disk_space" in [f.name for f in installed_families()]
    # Its errors are located like any family's, and cross-family checks include it.
    with pytest.raises(RulesError) as info:
        parse_rules(RULES.format(path="/", percent=150).replace("dead_letters",
                                                                "scratch_disk"))
    text = str(info.value)
    assert "checks.disk_space[0].min_free_percent" in text
    assert "rule name 'scratch_disk' is used twice" in text


def test_alert_jobs_check_evaluates_it_through_the_engine(family: None, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    base = ["--database-url", db, "--rules"]
    assert main([*base, str(_rules(tmp_path, 0.001)), "check", "scratch_disk"]) == 0
    assert "scratch_disk: ok, inactive" in capsys.readouterr().out
    # The same disk against a threshold it cannot meet: an alert, sent to the console.
    assert main([*base, str(_rules(tmp_path, 99.999)), "check", "scratch_disk"]) == 0
    out = capsys.readouterr().out
    assert "scratch_disk: alert, firing: Expected at least 99.999 % free" in out
    assert "delivery: sent 1" in out
    (alert,) = Timeline(db).alerts.list()
    assert alert.rule == "scratch_disk" and str(alert.severity) == "critical"
    # A path that cannot be read is an error alert naming it, and exit 1.
    missing = tmp_path / "gone"
    assert main([*base, str(_rules(tmp_path, 5, missing)), "check", "scratch_disk"]) == 1
    assert f"check failed: {missing}: No such file or directory" in capsys.readouterr().out


def test_its_definitions_join_the_code_location(family: None, tmp_path: Path) -> None:
    rules_file = _rules(tmp_path, 99.999)
    defs = build_definitions(str(rules_file))
    repo = defs.get_repository_def()
    key = dg.AssetKey(["disk_space", "scratch_disk"])
    assert key in repo.assets_defs_by_key
    assert "scratch_disk_schedule" in [s.name for s in repo.schedule_defs]
    timeline_deps = repo.asset_graph.get(TIMELINE_KEY).parent_keys
    assert key in timeline_deps, "the timeline is downstream of the family's asset"
    resource = AlertJobsResource(rules_file=str(rules_file),
                                 database_url=f"sqlite:///{tmp_path / 'alerts.db'}")
    (asset,) = FAMILY.definitions(parse_rules(rules_file.read_text())).assets or []
    with in_memory_instance() as instance:
        result = dg.materialize([asset], instance=instance,
                                resources={"alert_jobs": resource})
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert Timeline(resource.database_url).alerts.list()[0].rule == "scratch_disk"


def test_validating_rules_imports_no_sources_and_no_dagster() -> None:
    """The loader learns each family's rule model from its entry point alone: reading the
    repository's rules file loads no source, no Dagster, no family's run or definitions."""
    code = ("import json, sys\nfrom alert_jobs.config import load_rules\n"
            "rules = load_rules('alerts.yaml')\n"
            "heavy = [m for m in sys.modules if m in ('dagster', 'numpy', 'pandas', 'redis')"
            " or (m.startswith('alert_jobs.families.') and m.rsplit('.', 1)[1] in "
            "('run', 'source', 'definitions', 'store'))]\n"
            "print(json.dumps({'rules': len(rules.rules()), 'heavy': sorted(heavy)}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["rules"] >= 5 and result["heavy"] == []
