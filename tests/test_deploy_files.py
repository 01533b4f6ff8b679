"""The files in ``deploy/`` are what they claim to be, and agree with each other.

* ``deploy/dagster.yaml`` is a valid instance config: loaded by Dagster against a fresh
  PostgreSQL database (its storages are created there), it names the
  ``DefaultRunLauncher``, the ``QueuedRunCoordinator`` with one run per
  ``alert_jobs/batch`` value, and run monitoring. A doctored copy fails to load.
* ``deploy/workspace.yaml`` loads the code location from the gRPC server that the
  Dockerfile's command and the compose file's ``codeserver`` service start.
* The Dockerfile installs exactly from ``requirements.lock`` and copies only files that
  exist and that its ``.dockerignore`` lets through; no file names a package index host.
* ``docker-compose.yaml``: ``docker compose config`` accepts it when the binary exists;
  always, its services, commands, env files, health conditions and databases refer to
  each other consistently.
* The Helm values and the serve manifest use our image, module and Secret, and the same
  tag concurrency limit as ``dagster.yaml``.
* ``requirements.lock`` pins ``dagster-postgres`` in the same release set as the other
  Dagster packages (a doctored lock is caught).
* The scale benchmark's quick mode runs and reports rows per tick > 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks.deploy_scale import dagster_pg_url, fresh_database

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MODULE = "alert_jobs.definitions"
BATCH_LIMIT = {"key": "alert_jobs/batch", "value": {"applyLimitPerUniqueValue": True},
               "limit": 1}
#: What "names a package index host" means: an index option or a well-known index host.
INDEX_HOST = re.compile(r"--(extra-)?index-url|--find-links|\bindex-url\s*=|"
                        r"pypi\.org|pythonhosted\.org|\bPIP_(EXTRA_)?INDEX_URL\b",
                        re.IGNORECASE)


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


# ----- dagster.yaml and workspace.yaml -------------------------------------------------


@pytest.fixture
def fresh_pg(pg_base_url: str) -> Any:
    with fresh_database(pg_base_url) as url:
        yield url


def test_the_shipped_dagster_yaml_is_a_valid_postgres_instance(
        tmp_path: Path, fresh_pg: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url(fresh_pg))  # as alert-jobs.env has it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        storages = {type(instance.run_storage).__name__,
                    type(instance.event_log_storage).__name__,
                    type(instance.schedule_storage).__name__}
        assert storages == {"PostgresRunStorage", "PostgresEventLogStorage",
                            "PostgresScheduleStorage"}
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and BATCH_LIMIT in queue.tag_concurrency_limits
        assert instance.run_monitoring_enabled
        assert instance.get_runs() == []  # the storages answer on the fresh database

        # A run's events are written (a bare postgresql:// URL fails here: its NOTIFY).
        @dg.asset
        def probe() -> int:
            return 1

        assert dg.materialize([probe], instance=instance).success
        (run,) = instance.get_runs()
        assert instance.all_logs(run.run_id), "no event stored"

    # Positive control: the same loader rejects a doctored copy (a misspelt key).
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text().replace(
        "run_monitoring:", "run_monitorin:"))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.DagsterInstance.from_config(str(home))


def test_workspace_loads_the_grpc_code_server_that_compose_and_the_image_start() -> None:
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    services = compose()["services"]
    assert server["host"] in services, f"no compose service {server['host']!r}"
    command = services[server["host"]]["command"]
    assert command[:3] == ["dagster", "api", "grpc"] and MODULE in command
    assert command[command.index("-p") + 1] == str(server["port"])
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile(), re.M).group(1))  # type: ignore[union-attr]
    assert cmd == command, "the image's default command is the compose code server's"


# ----- Dockerfile, lock, index hosts ---------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_the_dockerfile_installs_from_the_lock_as_a_non_root_user() -> None:
    text = dockerfile()
    runs = [line.strip() for line in text.splitlines() if line.startswith(("RUN", "FROM",
                                                                           "USER", "ENV"))]
    assert runs[0] == "FROM python:3.11-slim"
    pips = [r for r in runs if "pip install" in r]
    assert pips[0] == "RUN pip install -r requirements.lock", pips
    assert pips[1].startswith("RUN pip install --no-deps ."), pips
    assert len(pips) == 2, "nothing is installed outside the lock"
    user = next(r for r in runs if r.startswith("USER"))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    assert "DAGSTER_HOME=/opt/dagster/home" in text
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in text
    assert "ALERT_JOBS_RULES=/opt/dagster/app/alerts.yaml" in text


def test_every_file_the_image_copies_exists_and_passes_its_dockerignore() -> None:
    patterns = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text()
                .splitlines() if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:  # Docker's rule: the last matching pattern wins
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch(path, pattern.lstrip("!")):
                keep = negated
        return keep

    sources = [source for line in dockerfile().splitlines() if line.startswith("COPY")
               for source in line.split()[1:-1]]
    assert "requirements.lock" in sources and "alert_jobs" in sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert sent(source), f"{source} is excluded by Dockerfile.dockerignore"
    assert not sent("tests") and not sent(".venv"), "the build context is only what it copies"


def index_host_problems(files: dict[str, str]) -> list[str]:
    return [f"{name}: {m.group(0)}" for name, text in files.items()
            for m in INDEX_HOST.finditer(text)]


def test_no_deploy_file_or_the_lock_names_a_package_index_host() -> None:
    files = {str(p.relative_to(ROOT)): p.read_text() for p in DEPLOY.rglob("*") if p.is_file()}
    files["requirements.lock"] = (ROOT / "requirements.lock").read_text()
    assert len(files) >= 8
    assert index_host_problems(files) == []
    # Positive control: the same check catches an index line in a doctored Dockerfile.
    doctored = {"deploy/Dockerfile": dockerfile().replace(
        "pip install -r requirements.lock",
        "pip install --index-url https://pypi.org/simple -r requirements.lock")}
    assert len(index_host_problems(doctored)) == 2


def dagster_set_problems(lock: str) -> list[str]:
    """Every ``dagster*`` pin is of one release: the core at 1.M.P, libraries at
    0.(M+16).P (Dagster's numbering: 1.13.27 pairs with 0.29.27)."""
    pins = dict(re.findall(r"^(dagster[a-z0-9-]*)==([0-9.]+)", lock, re.M))
    if "dagster" not in pins:
        return ["no dagster pin"]
    _, minor, patch = pins["dagster"].split(".")
    library = f"0.{int(minor) + 16}.{patch}"
    problems = [f"{name}=={version} (expected {pins['dagster']} or {library})"
                for name, version in sorted(pins.items())
                if version not in (pins["dagster"], library)]
    problems += [f"{name} is not in the lock" for name in ("dagster-postgres", "dagster-k8s")
                 if name not in pins]
    return problems


def test_the_lock_pins_dagster_postgres_with_the_dagster_set() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    assert "dagster-postgres==0.29.27" in lock.splitlines()
    assert "dagster==1.13.27" in lock.splitlines()
    assert dagster_set_problems(lock) == []
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["postgres"] == ["dagster-postgres==0.29.27"]
    assert extras["k8s"] == ["dagster-k8s==0.29.27"]  # the Helm chart's K8sRunLauncher
    # Positive controls: a doctored lock is caught, both ways.
    assert dagster_set_problems(lock.replace("dagster-postgres==0.29.27",
                                             "dagster-postgres==0.29.26"))
    assert dagster_set_problems(lock.replace("dagster-postgres==0.29.27\n", ""))
    assert dagster_set_problems(lock.replace("dagster-k8s==0.29.27\n", ""))


# ----- docker-compose.yaml -------------------------------------------------------------


def compose_binary() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_compose_file(tmp_path: Path) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("neither `docker compose` nor `docker-compose` on this machine (the "
                    "file's structure is checked by the next test)")
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    for example in copy.glob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))  # the filled-in copies
    (tmp_path / "alerts.yaml").write_text((ROOT / "alerts.yaml").read_text())
    done = subprocess.run([*binary, "-f", str(copy / "docker-compose.yaml"), "config",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_compose_services_commands_env_and_health_refer_to_each_other() -> None:
    spec = compose()
    services = spec["services"]
    assert {"postgres", "codeserver", "webserver", "daemon", "serve"} <= set(services)
    workspace = "/opt/dagster/app/workspace.yaml"
    assert services["webserver"]["command"] == ["dagster-webserver", "-h", "0.0.0.0", "-p",
                                                "3000", "-w", workspace]
    assert services["daemon"]["command"] == ["dagster-daemon", "run", "-w", workspace]
    assert services["serve"]["command"] == ["alert-jobs", "serve", "--host", "0.0.0.0",
                                            "--port", "8787"]
    assert "workspace.yaml ./workspace.yaml" in dockerfile()  # /opt/dagster/app is WORKDIR
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always", "no"), name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
            else:
                assert condition == "service_completed_successfully"
                assert services[dependency]["restart"] == "no", dependency
        # Env files exist as committed examples; no literal secret in the compose file.
        for path in service.get("env_file", []):
            assert (DEPLOY / f"{path}.example").exists(), f"{name}: {path}.example missing"
        for key, value in (service.get("environment") or {}).items():
            assert not re.search(r"PASSWORD|SECRET|TOKEN|_URL$", key), (name, key, value)
    app = ["codeserver", "webserver", "daemon", "serve"]
    assert all(services[s]["image"] == services["codeserver"]["image"] for s in app)
    assert services["codeserver"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert all("healthcheck" in services[s] for s in ["postgres", *app])

    # The env files: every process gets the instance and timeline URLs and the link
    # secret; the URLs name the compose postgres service and the databases it creates.
    app_env = env_file(DEPLOY / "alert-jobs.env.example")
    pg_env = env_file(DEPLOY / "postgres.env.example")
    for key in ("DAGSTER_PG_URL", "ALERT_JOBS_DATABASE_URL", "ALERT_JOBS_LINK_SECRET"):
        assert app_env.get(key), key
        assert all("./alert-jobs.env" in services[s]["env_file"] for s in app)
    assert "{env: DAGSTER_PG_URL}" in (DEPLOY / "dagster.yaml").read_text()
    assert app_env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    dagster_url = re.match(r"postgresql\+psycopg2://(\w+):[^@]+@(\w+):5432/(\w+)$",
                           app_env["DAGSTER_PG_URL"])
    timeline_url = re.match(r"postgresql://(\w+):[^@]+@(\w+):5432/(\w+)$",
                            app_env["ALERT_JOBS_DATABASE_URL"])
    assert dagster_url and timeline_url
    assert dagster_url.groups() == (pg_env["POSTGRES_USER"], "postgres", pg_env["POSTGRES_DB"])
    init = [v.split(":")[0] for v in services["postgres"]["volumes"] if "initdb" in v]
    script = (DEPLOY / init[0]).read_text()
    user, host, database = timeline_url.groups()
    assert host == "postgres" and f"CREATE ROLE {user} " in script
    assert f"CREATE DATABASE {database} OWNER {user}" in script
    assert "ALERTS_DB_PASSWORD" in script and "ALERTS_DB_PASSWORD" in pg_env
    # The filled-in copies are never committed.
    assert {"alert-jobs.env", "postgres.env"} <= set(
        (DEPLOY / ".gitignore").read_text().split())


# ----- Helm ----------------------------------------------------------------------------


def test_helm_values_and_the_serve_manifest_agree() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment.get("dagsterApiGrpcArgs") or deployment["codeServerArgs"]
    assert args == ["-m", MODULE]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    shipped = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]["runs"]
    assert limits == shipped["tag_concurrency_limits"] == [BATCH_LIMIT]
    assert isinstance(values["postgresql"]["enabled"], bool)
    secret = deployment["envSecrets"][0]["name"]
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": secret}]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]

    docs = list(yaml.safe_load_all((DEPLOY / "helm" / "serve.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service"}
    serve = kinds["Deployment"]["spec"]
    assert serve["replicas"] == 2
    (container,) = serve["template"]["spec"]["containers"]
    image = deployment["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert container["command"][:2] == ["alert-jobs", "serve"]
    assert {"secretRef": {"name": secret}} in container["envFrom"]
    rules_env = {e["name"]: e["value"] for e in container["env"]}["ALERT_JOBS_RULES"]
    assert rules_env == deployment["env"]["ALERT_JOBS_RULES"]
    labels = serve["template"]["metadata"]["labels"]
    selector = kinds["Service"]["spec"]["selector"]
    assert selector.items() <= labels.items() and serve["selector"]["matchLabels"] == selector
    port = container["ports"][0]
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]


# ----- the scale benchmark -------------------------------------------------------------


@pytest.mark.benchmark  # `make bench` checks it, `make test` leaves it out
def test_the_scale_benchmark_quick_mode_reports_rows_per_tick(
        tmp_path: Path, pg_base_url: str) -> None:
    out = tmp_path / "deploy_scale.json"
    env = dict(os.environ, TEST_DATABASE_URL=pg_base_url)
    done = subprocess.run([sys.executable, "-m", "benchmarks.deploy_scale", "--quick",
                           "--output", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    report = json.loads(out.read_text())
    pg, lite = report["results"]
    assert (pg["backend"], lite["backend"]) == ("postgresql", "sqlite")
    for result in (pg, lite):
        assert result["ticks_measured"] == 3 and result["rules"] == 100
        # Positive control: the workload writes; one evaluation per rule per tick.
        assert result["rows_per_tick"]["alert_evaluations"] == 100
        assert result["rows_per_tick_total"] > 0
        assert result["notifications_per_tick_median"] > 0
        assert result["rows_per_day"]["1min"] == 5 * result["rows_per_day"]["5min"]
    assert pg["growth_bytes_per_tick"] > 0
    assert pg["mb_per_month"]["1min"] == pytest.approx(5 * pg["mb_per_month"]["5min"])
    assert report["baseline"]["wall_ratio_median"] > 0
    assert report["dagster_overhead"]
