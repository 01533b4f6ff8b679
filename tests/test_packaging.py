"""What ``pip install alert-jobs`` puts into site-packages: ``alert_jobs`` and nothing else.

The top-level ``assets/`` and ``sensors/`` folders are the product card's layout; they
install as ``alert_jobs.assets`` and ``alert_jobs.sensors`` (``alert_jobs/assets`` and
``alert_jobs/sensors`` are links to them), so no generic top-level ``assets`` or
``sensors`` package can collide with another project's. The wheel also carries what the
code needs at run time beside the Python modules: the alembic revisions, the jinja2
templates, and the family entry points.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


#: Not part of the source a wheel is built from (and large, or written by other runs).
NOT_SOURCE = (".git", ".venv", ".dagster_home", "build", "*.egg-info", "__pycache__",
              ".mypy_cache", ".ruff_cache", ".pytest_cache", "results")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a private copy of the source: setuptools writes ``build/`` and
    ``*.egg-info`` into the tree it builds, and two test workers building the checkout
    at once trip over each other's files."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "alert-jobs"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(source)],
                          timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("alert_jobs-*.whl")
    return built


def test_the_wheel_installs_alert_jobs_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"alert_jobs", wheel.name.split("-py")[0]
                                                .replace("alert_jobs-", "alert_jobs-")
                                                + ".dist-info"}
    for needed in ("alert_jobs/assets/operator_jobs.py", "alert_jobs/sensors/outbox.py",
                   "alert_jobs/store/migrations/env.py",
                   "alert_jobs/store/migrations/versions/0006_alert_quality.py",
                   "alert_jobs/notify/templates/email.html"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[alert_jobs.families]" in text and "sql_metric = alert_jobs.families" in text


def test_the_installed_copy_imports_its_dagster_modules_without_the_repository(
        wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300, capture_output=True)
    code = ("import importlib.util, json, sys\n"
            f"sys.path.insert(0, {str(target)!r})\n"
            "import alert_jobs.assets.operator_jobs, alert_jobs.sensors.outbox\n"
            "print(json.dumps({'file': alert_jobs.__file__,\n"
            "  'assets': importlib.util.find_spec('assets') is not None,\n"
            "  'sensors': importlib.util.find_spec('sensors') is not None}))")
    # A developer's PYTHONPATH=<checkout> would put the repository back on the path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=True, env=env)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(target)), "imported the installed copy"
    assert found == {**found, "assets": False, "sensors": False}
