"""The production topology as separate processes, and a SIGKILL of its code server and
daemon in the middle of a run (issue #18).

Everything runs the way ``deploy/`` describes, on one machine: the shipped
``deploy/dagster.yaml`` as ``$DAGSTER_HOME/dagster.yaml`` (instance storage in a fresh
PostgreSQL database through ``DAGSTER_PG_URL``, which names the psycopg2 driver:
``postgresql+psycopg2://``; with SQLAlchemy 2.1 a plain ``postgresql://`` means psycopg 3,
and dagster-postgres then fails to store any event), a ``workspace.yaml`` naming the gRPC
code server on 127.0.0.1 (the shipped one names the compose host), and as separate
processes:

* the code server, ``dagster api grpc -m alert_jobs.definitions``;
* ``dagster-daemon run`` and ``dagster-webserver``;
* two ``alert-jobs serve`` replicas on the same timeline (a second fresh PostgreSQL
  database).

The rules file has one ``sql_metric`` rule on ``* * * * *`` whose value is bad from the
start (``for: 0m``: its first evaluation fires) and whose query sleeps
:data:`QUERY_SLEEP_S` seconds in PostgreSQL (a run is "mid-run" for that long), sending
to a local webhook receiver; and one heartbeat check, pinged once on each replica.

The test shows the normal path first: a schedule tick launches a run that fires the rule
and delivers one page; the run is visible through the webserver's GraphQL; both replicas
accept a ping and both pings are in the timeline. Then, while the next tick's run is in
its query (seen in ``pg_stat_activity``), it SIGKILLs the code server's and the daemon's
process groups (the run worker is the code server's child and dies with it), restarts
both, and waits for the restarted daemon to evaluate the batch's next tick through the
restarted code server. At the end: exactly one page for the rule over the whole test
(no duplicate), no undelivered outbox row (nothing lost), and what Dagster did with the
killed run.

With ``DefaultRunLauncher`` Dagster cannot see that a run's worker died (it has no run
worker health check, so run monitoring only fails runs past
``run_monitoring.max_runtime_seconds``): the killed run stays STARTED, and the batch's
schedule skips its ticks naming it (:mod:`alert_jobs.runtime.no_overlap`) until
something ends that run. The test asserts that this is exactly what it sees when the
instance's max runtime cannot end the run within the test (printed as a finding); when
it can, it waits for the run to be failed and for a later tick's run to succeed.
Measured figures are printed (``-s``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml

from alert_jobs.runtime.no_overlap import BATCH_TAG
from tests.conftest import ROOT, free_port
from tests.processes import (
    ArrivalReceiver,
    Processes,
    arrival_receiver,
    graphql,
    port_open,
    tool,
    webserver_up,
)

pytestmark = [pytest.mark.long_running, pytest.mark.timeout(480)]

RULE = "topo_lag"
SLUG = "topo_job"
BATCH = "sql_metric_every_minute"
SCHEDULE = f"{BATCH}_schedule"
#: Long enough to catch a run in its query; short enough that a run (worker start-up
#: included) ends well inside its minute, so the next tick is not skipped.
QUERY_SLEEP_S = 10
#: The longest the test waits for a killed run to be ended by run monitoring and a later
#: run to succeed, counted from the test's start (the rest of ~4 minutes is the normal
#: path and the restart).
RECOVERY_DEADLINE_S = 330
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

RUNS_QUERY = """
query ($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename
    ... on Runs { results { runId status jobName startTime endTime } }
    ... on PythonError { message }
  }
}
"""


# ----- databases --------------------------------------------------------------------


@contextlib.contextmanager
def fresh_databases(base_url: str, *names: str) -> Iterator[list[sa.URL]]:
    """One new database per name on the server of ``base_url``, dropped afterwards."""
    base = sa.make_url(base_url).set(drivername="postgresql+psycopg")
    suffix = uuid.uuid4().hex[:10]
    dbs = [f"topo_{name}_{suffix}" for name in names]
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for db in dbs:
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        yield [base.set(database=db) for db in dbs]
    finally:
        with admin.connect() as conn:
            for db in dbs:  # FORCE: a killed run's backend may still be sleeping
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def url_text(url: sa.URL, driver: str) -> str:
    return url.set(drivername=driver).render_as_string(hide_password=False)


# ----- the setup --------------------------------------------------------------------


@dataclass
class Topology:
    folder: Path
    dagster_url: sa.URL
    timeline_url: sa.URL
    source_url: sa.URL
    receiver_url: str
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    serve_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def workspace(self) -> str:
        return str(self.folder / "workspace.yaml")

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def serves(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.serve_ports]

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DAGSTER_HOME=str(self.home),
                   # psycopg2 named: SQLAlchemy 2.1 reads postgresql:// as psycopg 3, with
                   # which dagster-postgres's "NOTIFY run_events, :id" is a syntax error
                   DAGSTER_PG_URL=url_text(self.dagster_url, "postgresql+psycopg2"),
                   ALERT_JOBS_RULES=str(self.folder / "alerts.yaml"),
                   ALERT_JOBS_DATABASE_URL=url_text(self.timeline_url, "postgresql+psycopg"),
                   PYTHONUNBUFFERED="1")
        env.pop("ALERT_JOBS_LINK_SECRET", None)
        return env

    def rules(self) -> dict[str, Any]:
        query = f"SELECT max(lag) FROM topo_lag CROSS JOIN pg_sleep({QUERY_SLEEP_S})"
        return {
            "version": 1,
            "defaults": {"receivers": ["topo_hook"], "timezone": "UTC",
                         "schedule": "* * * * *", "dagster_url": self.web},
            "receivers": [{"name": "topo_hook", "type": "webhook", "url": self.receiver_url}],
            # alert quality starts today: no catch-up runs beside the batch's
            "quality": {"start_date": datetime.now(UTC).date().isoformat()},
            "self_monitoring": {"instance_watch": False},
            "checks": {
                "sql_metric": [{
                    "name": RULE, "description": "replication lag",
                    "database": url_text(self.source_url, "postgresql+psycopg"),
                    "query": query, "query_timeout": "60s", "expect": {"max": 0},
                    "for": "0m", "severity": "critical"}],
                "heartbeat": [{"name": SLUG, "period": "1h", "grace": "1h"}],
            },
        }

    def prepare(self) -> None:
        """The shipped instance, a workspace naming our code server, the rules, the
        source table (its value is bad), then both schemas migrated."""
        self.home.mkdir(parents=True)
        (self.home / "dagster.yaml").write_text(
            (ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        (self.folder / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [
            {"grpc_server": {"host": "127.0.0.1", "port": self.grpc_port,
                             "location_name": "alert_jobs"}}]}))
        (self.folder / "alerts.yaml").write_text(yaml.safe_dump(self.rules(), sort_keys=False))
        engine = sa.create_engine(self.source_url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE topo_lag (lag integer NOT NULL)"))
            conn.execute(sa.text("INSERT INTO topo_lag VALUES (5)"))
        engine.dispose()
        for argv in ([tool("dagster"), "instance", "migrate"],
                     [tool("alert-jobs"), "db", "upgrade"]):
            done = subprocess_run(argv, self)
            assert done.returncode == 0, f"{argv} failed:\n{done.stdout.decode()[-3000:]}"

    def code_server(self) -> list[str]:
        return [tool("dagster"), "api", "grpc", "-m", "alert_jobs.definitions",
                "-h", "127.0.0.1", "-p", str(self.grpc_port)]

    def daemon(self) -> list[str]:
        return [tool("dagster-daemon"), "run", "-w", self.workspace]

    def webserver(self) -> list[str]:
        return [tool("dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.web_port),
                "-w", self.workspace]

    def serve(self, port: int) -> list[str]:
        return [tool("alert-jobs"), "serve", "--host", "127.0.0.1", "--port", str(port)]

    @contextlib.contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The instance as every process sees it (needs ``DAGSTER_PG_URL`` set here)."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            yield instance

    def timeline(self, query: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.timeline_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(query), params).all())
        finally:
            engine.dispose()

    def outbox(self) -> str:
        """The outbox rows (who raised each, when queued and delivered) for failures."""
        try:
            rows = self.timeline("SELECT rule, receiver, kind, run_id, created_at, "
                                 "delivered_at, attempts, last_error FROM alert_outbox "
                                 "ORDER BY id")
        except sa.exc.SQLAlchemyError as exc:
            return f"(outbox unreadable: {exc})"
        return "\n".join(f"  {r.rule} {r.kind} → {r.receiver}: raised by run {r.run_id}, "
                         f"queued {r.created_at}, delivered {r.delivered_at} after "
                         f"{r.attempts} attempt(s) {r.last_error or ''}"
                         for r in rows) or "  (empty)"

    def sleeping_queries(self) -> int:
        """Queries of the rule now sleeping in the source database (a run mid-query)."""
        engine = sa.create_engine(self.source_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND state = 'active' AND query LIKE '%pg_sleep%' "
                    "AND pid <> pg_backend_pid()")).scalar_one())
        finally:
            engine.dispose()


def subprocess_run(argv: list[str], topo: Topology) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, env=topo.env, cwd=topo.folder, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=180, check=False)


# ----- reading the instance ---------------------------------------------------------


def batch_runs(instance: dg.DagsterInstance) -> list[Any]:
    """The batch's run records, oldest first."""
    records = instance.get_run_records(dg.RunsFilter(tags={BATCH_TAG: BATCH}))
    return sorted(records, key=lambda r: r.create_timestamp)


def run_status(instance: dg.DagsterInstance, run_id: str) -> str:
    record = instance.get_run_record_by_id(run_id)
    return record.dagster_run.status.value if record else "MISSING"


def schedule_ticks(instance: dg.DagsterInstance, after: float,
                   statuses: tuple[str, ...] = ("SKIPPED", "SUCCESS")) -> list[Any]:
    """The batch schedule's ticks for cron times after ``after`` that ended in one of
    ``statuses`` (a run or a skip; a FAILURE is a tick the code server could not
    evaluate, say while it was still loading), oldest first."""
    states = [s for s in instance.all_instigator_state() if s.name == SCHEDULE]
    if not states:
        return []
    ticks = instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id,
                               limit=20)
    return sorted((t for t in ticks if t.timestamp > after
                   and t.status.value in statuses),
                  key=lambda t: t.timestamp)


def runs_via_graphql(web: str) -> dict[str, str]:
    """The batch's runs as the webserver's GraphQL API lists them: run id → status."""
    data = graphql(web, RUNS_QUERY, {"tags": [{"key": BATCH_TAG, "value": BATCH}]})
    runs = data["runsOrError"]
    assert runs["__typename"] == "Runs", runs
    return {r["runId"]: r["status"] for r in runs["results"]}


def firing_pages(receiver: ArrivalReceiver) -> int:
    return len(receiver.of(RULE, "firing"))


# ----- the test ---------------------------------------------------------------------


def test_topology_pages_once_across_a_sigkill_of_code_server_and_daemon(
        tmp_path: Path, pg_base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    t0, wall0 = time.monotonic(), time.time()

    def since_start() -> float:
        return time.monotonic() - t0

    figures: list[str] = []
    with fresh_databases(pg_base_url, "dagster", "timeline", "source") as (
            dagster_url, timeline_url, source_url), arrival_receiver() as receiver:
        topo = Topology(tmp_path, dagster_url, timeline_url, source_url, receiver.url)
        monkeypatch.setenv("DAGSTER_PG_URL", topo.env["DAGSTER_PG_URL"])
        procs = Processes(tmp_path, topo.env, context=lambda: (
            f"----- outbox -----\n{topo.outbox()}\n----- received -----\n{receiver.seen()}"))
        try:
            topo.prepare()
            figures.append(f"instance migrated in {since_start():.0f} s")
            procs.start("codeserver", topo.code_server())
            for i, port in enumerate(topo.serve_ports):
                procs.start(f"serve{i + 1}", topo.serve(port))
            procs.wait_for("the code server listening", lambda: port_open(topo.grpc_port),
                           120)
            procs.start("daemon", topo.daemon())
            procs.start("webserver", topo.webserver())

            # Both replicas accept a ping of the same check, on the same timeline.
            for base in topo.serves:
                procs.wait_for(f"{base}/healthz", lambda b=base: _healthy(b), 90)
                answer = httpx.get(f"{base}/ping/{SLUG}", timeout=30)
                assert answer.status_code == 200, (base, answer.status_code, answer.text,
                                                   procs.tails())
            pings = topo.timeline("SELECT count(*) AS n FROM alert_heartbeat_pings "
                                  "WHERE slug = :s", s=SLUG)[0].n
            (beat,) = topo.timeline("SELECT status, n_pings FROM alert_heartbeats "
                                    "WHERE slug = :s", s=SLUG)
            assert (pings, beat.n_pings) == (2, 2), (pings, beat, procs.tails())
            figures.append(f"pings: 200 from both replicas, {pings} in the ping log, "
                           f"heartbeat {beat.status} with n_pings={beat.n_pings}")

            # The normal path: a tick, a run, the rule fires, one page.
            procs.wait_for("the first page of the rule", lambda: firing_pages(receiver),
                           max(60.0, 240 - since_start()), every=1)
            first = receiver.of(RULE)[0]
            figures.append(f"first page {first.at - wall0:.0f} s after start")
            (raised,) = topo.timeline("SELECT run_id FROM alert_outbox WHERE rule = :r",
                                      r=RULE)
            first_run = raised.run_id
            with topo.instance() as instance:
                procs.wait_for(f"run {first_run} to end",
                               lambda: run_status(instance, first_run) in TERMINAL, 60)
                assert run_status(instance, first_run) == "SUCCESS", procs.tails()
            procs.wait_for("the webserver answering", lambda: webserver_up(topo.web), 60)
            seen = runs_via_graphql(topo.web)
            assert seen.get(first_run) == "SUCCESS", (first_run, seen, procs.tails())
            figures.append(f"run {first_run[:8]} visible via GraphQL ({seen[first_run]})")

            # The next tick's run, caught in its query; then the crash.
            with topo.instance() as instance:
                def next_run_mid_query() -> Any:
                    going = [r for r in batch_runs(instance) if r.dagster_run.run_id
                             != first_run and r.dagster_run.status.value == "STARTED"]
                    return going[0] if going and topo.sleeping_queries() else None

                killed = procs.wait_for("the next run of the batch in its query",
                                        next_run_mid_query, 150, every=0.25)
            killed_id = killed.dagster_run.run_id
            procs.kill("codeserver")
            procs.kill("daemon")
            killed_at = time.time()
            figures.append(f"SIGKILL of code server and daemon {since_start():.0f} s after "
                           f"start, run {killed_id[:8]} mid-query")
            procs.start("codeserver", topo.code_server())
            procs.wait_for("the restarted code server listening",
                           lambda: port_open(topo.grpc_port), 120)
            procs.start("daemon", topo.daemon())
            figures.append(f"code server listening again {time.time() - killed_at:.0f} s "
                           "after the kill")

            # The restarted daemon evaluates the batch's next tick in the restarted code
            # server: a run (the killed one is over) or a skip naming the killed run.
            with topo.instance() as instance:
                tick = procs.wait_for("a tick of the batch after the restart",
                                      lambda: next(iter(schedule_ticks(instance, killed_at)),
                                                   None),
                                      max(150.0, RECOVERY_DEADLINE_S - 60 - since_start()))
                figures.append(f"first tick after the restart: {tick.status.value}"
                               + (f" ({tick.skip_reason})" if tick.skip_reason else ""))
                # The batch job's own limit (three of its intervals) wins over the
                # instance-wide one.
                tagged = killed.dagster_run.tags.get("dagster/max_runtime_seconds")
                max_runtime = (float(tagged) if tagged
                               else instance.run_monitoring_max_runtime_seconds)
                poll = instance.run_monitoring_poll_interval_seconds
                start = killed.start_time or killed_at
                # When monitoring can end the run in time: its end, a tick, a run.
                can_recover = bool(max_runtime) and (
                    start + max_runtime + poll + 60 + 45 - wall0 < RECOVERY_DEADLINE_S)
                recovered = None
                if tick.status.value == "SUCCESS" or can_recover:
                    def later_run_done() -> Any:
                        later = [r for r in batch_runs(instance)
                                 if r.create_timestamp.timestamp() > killed_at]
                        return next((r for r in later
                                     if r.dagster_run.status.value == "SUCCESS"), None)

                    recovered = procs.wait_for(
                        "a run of the batch after the restart to succeed", later_run_done,
                        max(60.0, RECOVERY_DEADLINE_S - since_start()), every=1)
                killed_status = run_status(instance, killed_id)
                skips = [t.skip_reason or "" for t in schedule_ticks(instance, killed_at)
                         if t.status.value == "SKIPPED"]
                failed_ticks = len(schedule_ticks(instance, killed_at, ("FAILURE",)))
            seen = runs_via_graphql(topo.web)
            # The outbox retry sensor may still be sending: nothing due is left undelivered
            # once it has had a minute (it ticks every 60 s).
            procs.wait_for("no undelivered outbox row", lambda: not topo.timeline(
                "SELECT id FROM alert_outbox WHERE delivered_at IS NULL"), 90, every=1)
        finally:
            procs.stop_all()
        undelivered = topo.timeline("SELECT count(*) AS n FROM alert_outbox "
                                    "WHERE delivered_at IS NULL")[0].n
        pages = firing_pages(receiver)
        problem_context = (f"\noutbox:\n{topo.outbox()}\nreceived: {receiver.seen()}\n"
                           f"{procs.tails()}")
    assert pages == 1, f"{pages} firing pages for {RULE}, wanted exactly 1{problem_context}"
    assert undelivered == 0, f"{undelivered} undelivered outbox row(s){problem_context}"
    assert seen.get(killed_id) == killed_status, (killed_id, killed_status, seen,
                                                  problem_context)
    figures.append(f"restart: page delivered once, {undelivered} undelivered outbox rows; "
                   f"GraphQL lists {len(seen)} run(s) of the batch: "
                   f"{sorted(seen.values())}; failed ticks after the restart: {failed_ticks}")
    if recovered is not None:
        assert killed_status in TERMINAL, (killed_status, problem_context)
        figures.append(f"killed run {killed_id[:8]} ended {killed_status} by Dagster; run "
                       f"{recovered.dagster_run.run_id[:8]} after the restart succeeded")
    else:
        # DefaultRunLauncher has no run worker health check: the dead run stays STARTED
        # until run monitoring ends it at the batch job's max_runtime_seconds (three of
        # its intervals, at least 3 minutes: longer than this test waits), and the batch
        # skips its ticks naming it. Assert that this (and nothing else) holds the batch.
        assert killed_status == "STARTED", (killed_status, problem_context)
        assert skips and all(killed_id in s for s in skips), (skips, problem_context)
        figures.append(
            f"FINDING: killed run {killed_id[:8]} still STARTED "
            f"{time.time() - killed_at:.0f} s after the kill (run_monitoring "
            f"max_runtime_seconds={max_runtime or 'unset'}); {len(skips)} tick(s) of the "
            "batch skipped naming it: run monitoring ends it at its max_runtime_seconds")
    print("\n" + "\n".join(figures) + f"\ntotal {since_start():.0f} s")


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
