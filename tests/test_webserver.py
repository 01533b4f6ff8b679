"""Start dagster-webserver on the repo's workspace.yaml and ask its GraphQL API what loaded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              assetNodes { assetKey { path } }
              jobs { name }
              schedules { name executionTimezone cronSchedule scheduleState { status } }
              sensors { name sensorState { status } }
            }
          }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def webserver(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "ALERT_JOBS_DATABASE_URL": f"sqlite:///{tmp_path / 'alerts.db'}",
           "ALERT_JOBS_RULES": str(ROOT / "alerts.yaml")}
    binary = Path(sys.executable).with_name("dagster-webserver")
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen([str(binary), "-h", "127.0.0.1", "-p", str(port),
                             "-w", str(ROOT / "workspace.yaml")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"webserver exited: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("webserver did not answer within 180 s")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_code_location_loads_with_assets_schedules_sensors(webserver: str) -> None:
    response = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60)
    assert response.status_code == 200
    data = response.json()
    assert "errors" not in data, data.get("errors")
    (entry,) = data["data"]["workspaceOrError"]["locationEntries"]
    assert entry["name"] == "alert_jobs"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    (repo,) = location["repositories"]
    assets = {"/".join(node["assetKey"]["path"]) for node in repo["assetNodes"]}
    assert {"sql_metric/dead_letters", "sql_metric/orders_last_hour"} <= assets
    jobs = {job["name"] for job in repo["jobs"]}
    assert {"ack_alert_job", "snooze_alert_job", "silence_alerts_job",
            "deliver_outbox_job"} <= jobs
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert schedules["sql_metric_every_minute_schedule"]["executionTimezone"] == "UTC"
    assert schedules["sql_metric_every_minute_schedule"]["scheduleState"]["status"] == "RUNNING"
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["outbox_retry_sensor"] == "RUNNING"
