"""``alert-jobs`` with SLOs: ``rules validate`` lists them, ``check <slo>`` evaluates one
like its scheduled run, ``slo status`` shows what the stored counts say (without reading
the source), ``slo reset`` makes the next run read the history again; bad names exit 2.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_jobs.cli.main import main
from alert_jobs.families.slo.store import SloBucketStore
from alert_jobs.store import Timeline
from tests.families.slo.slo_env import MIN, Traffic, rules_file, slo_yaml, write


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if datetime.now(UTC).second > 45:  # the check runs in the same minute as this
        time.sleep(61 - datetime.now(UTC).second)
    now = datetime.now(UTC)
    traffic = Traffic(f"sqlite:///{tmp_path / 'app.db'}")
    traffic.add(now - timedelta(days=1, hours=1), now - 30 * MIN, ok=1000, failed=0)
    traffic.add(now - 30 * MIN, now + 5 * MIN, ok=900, failed=100)  # 100× burn
    rules = write(tmp_path / "alerts.yaml", rules_file(
        slo_yaml(traffic.url),
        slo_yaml(traffic.url, name="search", pairs=(
            "{long: 6h, short: 30m, factor: 6, severity: page}",))))
    return {"rules": str(rules), "db": f"sqlite:///{tmp_path / 'alerts.db'}"}


def run(env: dict[str, str], *args: str) -> int:
    return main(["--rules", env["rules"], "--database-url", env["db"], *args])


def test_rules_validate_lists_the_slos(env: dict[str, str], capsys: pytest.CaptureFixture
                                       ) -> None:
    assert run(env, "rules", "validate") == 0
    assert "ok (2 rules: checkout, search; 1 receivers)" in capsys.readouterr().out


def test_check_status_and_reset(env: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    assert run(env, "slo", "status", "checkout") == 0
    assert "nothing stored yet: the first run reads its history" in capsys.readouterr().out

    assert run(env, "check", "checkout") == 0
    out = capsys.readouterr().out
    assert "checkout: alert, firing: Checkout availability (SLO 99.9 % over 1 day) is " \
           "burning its error budget 50× too fast over the last 1 h" in out
    assert "delivery: sent 1" in out

    assert run(env, "slo", "status") == 0
    out = capsys.readouterr().out
    checkout, search = out.split("\n\n")
    assert checkout.splitlines()[0] == \
        "checkout: Checkout availability, SLO 99.9 % over 1d"
    assert "  burn: 5m 100×, 1h 50×\n" in checkout
    assert "  page 1h/5m above 14.4×: 50× / 100× → FIRING" in checkout
    assert "  firing: page (1h/5m)" in checkout
    assert "  error budget left: -108.3 %" in checkout
    assert search.splitlines()[1] == "  nothing stored yet: the first run reads its history"

    stored = len(SloBucketStore(Timeline(env["db"])).series(
        "checkout", datetime.now(UTC) - timedelta(days=2), datetime.now(UTC)))
    assert stored > 0
    assert run(env, "slo", "reset", "checkout") == 0
    assert f"checkout: {stored:,} stored bucket(s) deleted" in capsys.readouterr().out
    assert SloBucketStore(Timeline(env["db"])).last_end("checkout") is None


def test_unknown_names_exit_2(env: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    assert run(env, "slo", "status", "nope") == 2
    assert "unknown SLO(s) nope (known: checkout, search)" in capsys.readouterr().err


def test_the_slo_commands_start_without_dagster(env: dict[str, str]) -> None:
    probe = ("import sys, json; from alert_jobs.cli.main import main; rc = main(sys.argv[1:]);"
             " print(json.dumps({'rc': rc, 'dagster': 'dagster' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", probe, "--rules", env["rules"],
                           "--database-url", env["db"], "slo", "status"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == '{"rc": 0, "dagster": false}', done.stderr
