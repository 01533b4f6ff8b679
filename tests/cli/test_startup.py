"""The command line starts without Dagster: ``alert-jobs --help``, ``status`` and ``ping``
run in a fresh interpreter and must not import it (nor a family's sources or Dagster
definitions). ``benchmarks/cli_bench.py`` times them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alert_jobs.store import Timeline
from tests.conftest import free_port

PROBE = """
import json, sys
from alert_jobs.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ("dagster", "numpy", "pandas", "alembic", "uvicorn", "redis",
         "alert_jobs.runtime.resources", "alert_jobs.families.score_drift.run")
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules],
                  "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def _probe(tmp_path: Path, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, "--database-url",
                           f"sqlite:///{tmp_path / 'alerts.db'}", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("args", [["--help"], ["status"], ["ping", "nightly"]])
def test_these_commands_start_without_dagster(tmp_path: Path, args: list[str]) -> None:
    if args[0] == "ping":
        args = [*args, "--url", f"http://127.0.0.1:{free_port()}"]  # nobody listens
    Timeline(f"sqlite:///{tmp_path / 'alerts.db'}").upgrade()  # steady state: schema exists
    result = _probe(tmp_path, *args)
    assert result["loaded"] == [], f"alert-jobs {args[0]} imported {result['loaded']}"
    # They did run: --help exits 0, status reads the (new, empty) timeline, and a ping
    # to a server that is down fails with exit 1.
    assert result["code"] == {"--help": 0, "status": 0, "ping": 1}[args[0]]
    assert result["sqlalchemy"] == (args[0] == "status"), "only status opens the database"


def test_the_probe_sees_dagster_when_it_is_imported(tmp_path: Path) -> None:
    """Positive control: a command that does need Dagster is seen importing it."""
    done = subprocess.run([sys.executable, "-c", PROBE.replace(
        "from alert_jobs.cli.main import main",
        "import alert_jobs.definitions\nfrom alert_jobs.cli.main import main"), "--help"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert "dagster" in json.loads(done.stdout.strip().splitlines()[-1])["loaded"]
