"""What one tick of the instance watch costs at 1,000 scheduled checks.

The ``instance_watch_sensor`` runs every ``self_monitoring.watch_interval`` (30 s) in
alert-jobs' code location. Besides the events it reads with a cursor (failed runs,
checks and ticks), it now looks at *states* afresh on every tick: stale scheduled
checks (``watch_freshness.stale_observations``: the latest materialization and
Dagster's freshness state of every scheduled check asset of the location), hung runs
(``watch_runs.hung_observations``: the runs in progress, the history of suspicious
jobs) and code-location load errors (``watch_locations.location_statuses``: one
GraphQL call to the webserver). This asks what that costs per tick, and what share of
a core it takes at 30 s.

The location: real ``dg.Definitions`` from ``build_definitions(rules_file)`` with N
``sql_metric`` rules on ``* * * * *`` (one batch, one SQLite source table, as
``daemon_bench`` generates them). The instance: a ``dagster.yaml`` home (the project's
settings; SQLite storage, or PostgreSQL storage in a private schema of
``$TEST_DATABASE_URL``), with

* the batch's job executed once in process, so each of the N assets has a
  materialization, and a freshness PASS record per asset (``report_runless_asset_event``
  of the ``FreshnessStateChange`` Dagster's freshness daemon writes, read back with the
  public ``deserialize_value``: the class is not exported);
* runs of 5 jobs of another location, each with 20 successful runs of 30 s: 2 of them
  with a run STARTED 2 hours ago (hung: the watch reads their history, 2 alerts stay
  open), 3 with a run STARTED 1 minute ago (under ``hung_min``, set to 30 minutes: no
  history read), and one QUEUED run;
* ``freshness.stale_after: {sql_metric: 1d}``: every check is fresh, the steady state
  (the stale path is timed on its own below, at now + 2 days);
* ``self_monitoring.graphql_url`` pointing at a tiny HTTP server on 127.0.0.1 that
  answers a valid workspace (3 locations loaded); its requests are counted.

Cases, each timed as the daemon's tick is (``build_sensor_context(instance=...,
definitions=..., resources=...)``, then the sensor), with the cursor of a primed tick
(nothing new in the event log: the steady state):

* ``watch_on``: the sensor with every state watch on (the defaults);
* ``watch_off`` — **the baseline**: the same sensor with ``stale_checks: false,
  hung_runs: false, location_errors: false``, i.e. what a tick cost before the state
  watches (failed runs, checks and ticks only);
* ``stale_checks``: ``stale_observations`` alone (nothing stale), and
  ``stale_checks_all_stale``: the same at now + 2 days (one alert naming N rules, with
  the schedule's facts and likely cause);
* ``hung_runs``: ``hung_observations`` alone; ``location_errors``: ``location_statuses``
  alone (one HTTP round trip on loopback).

**Warm**: one process, repetitions interleaved (the order reversed every other
repetition, one warm-up round), medians; the ratio is the median of the per-repetition
ratios to ``watch_off``. **Cold**: the first tick in a new process (``python -c``: import
Dagster and alert_jobs, build the definitions, open the instance, tick once), on and
off and ``stale_checks`` alone, interleaved, medians; ratio to the cold ``watch_off``.

**Share of a core**: the watch's CPU per tick divided by the interval (30 s) is the
share of one core the sensor's evaluation takes in the code server; the wall-time share
is the upper bound (with PostgreSQL, the server's own CPU is not in the process's CPU
time). The daemon's own work around each tick (gRPC, storing the tick) is not included.

Run alone: ``python -m benchmarks.watch_bench [--quick]`` (quick: N=20, 2 repetitions,
SQLite only); ``TEST_DATABASE_URL=postgresql://… python -m benchmarks.watch_bench``
adds PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg

import alert_jobs
from alert_jobs.config import load_rules
from alert_jobs.definitions import build_definitions
from alert_jobs.families.heartbeat.config import SelfMonitoring
from alert_jobs.families.heartbeat.watch_freshness import stale_observations
from alert_jobs.families.heartbeat.watch_locations import location_statuses
from alert_jobs.families.heartbeat.watch_runs import hung_observations
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, utcnow
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json
from benchmarks.timeline_bench import aligned_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "benchmarks" / "results" / "watch.json"
SENSOR = "instance_watch_sensor"
BATCH_JOB = "sql_metric_every_minute_job"
INTERVAL_S = SelfMonitoring().watch_interval.total_seconds()
DAGSTER_URL = "http://127.0.0.1:3000"
#: Jobs of another code location: the first HUNG of them have a run in progress for
#: 2 hours, the others for 1 minute; each has HISTORY successful runs of 30 s. Their
#: limit is ``hung_min`` (3 × 30 s is less): 30 minutes, so a slow run of the
#: benchmark does not turn the 1-minute runs into hung ones.
OTHER_JOBS, HUNG, HISTORY = 5, 2, 20
HUNG_MIN = "30m"
OTHER_LOCATION = "pipelines"
#: Where a run launched from a code location comes from, as Dagster stores it (no public
#: constructor; read back with the public ``deserialize_value``, as the tests do).
ORIGIN = ('{"__class__": "ExternalPipelineOrigin", "external_repository_origin": '
          '{"__class__": "ExternalRepositoryOrigin", "repository_location_origin": '
          '{"__class__": "RegisteredRepositoryLocationOrigin", "location_name": "%s"}, '
          '"repository_name": "__repository__"}, "pipeline_name": "%s"}')
#: What Dagster's freshness daemon writes when an asset's state changes (not exported).
FRESHNESS_PASS = ('{"__class__": "FreshnessStateChange", "key": {"__class__": "AssetKey", '
                  '"path": %s}, "new_state": {"__enum__": "FreshnessState.PASS"}, '
                  '"previous_state": {"__enum__": "FreshnessState.UNKNOWN"}, '
                  '"state_change_timestamp": %f}')
#: The webserver's answer to the location query: three locations, all loaded.
WORKSPACE = {"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": [
    {"name": name, "loadStatus": "LOADED",
     "locationOrLoadError": {"__typename": "RepositoryLocation"}}
    for name in ("alert_jobs", OTHER_LOCATION, "reports")]}}}
BASELINE = "watch_off"
WARM_CASES = ("watch_on", BASELINE, "stale_checks", "stale_checks_all_stale", "hung_runs",
              "location_errors")
COLD_CASES = ("watch_on", BASELINE, "stale_checks")
ALL_STALE_AFTER = timedelta(days=2)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Size:
    checks: int
    reps: int
    cold_reps: int
    cold_cases: tuple[str, ...] = COLD_CASES


SIZES = {"full": Size(1000, 7, 3), "quick": Size(20, 2, 1, ("watch_on", BASELINE))}


# ----- the webserver's GraphQL endpoint, stubbed ----------------------------------------

class GraphqlStub:
    """A tiny HTTP server on 127.0.0.1 answering every POST with :data:`WORKSPACE`;
    counts the requests (so the benchmark knows which ticks asked)."""

    def __init__(self) -> None:
        body = json.dumps(WORKSPACE).encode()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                stub.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GraphqlStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----- the location, the instance, the timeline -----------------------------------------

@dataclass
class Setup:
    """The folder one backend's run lives in: instance home, rules files, source."""

    folder: Path
    checks: int
    timeline_url: str
    graphql_url: str
    dagster_storage_url: str | None = None  # PostgreSQL instance storage, else SQLite

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def rules_file(self, state_watches: bool) -> Path:
        return self.folder / ("alerts_on.yaml" if state_watches else "alerts_off.yaml")

    def write(self) -> None:
        """The instance's ``dagster.yaml`` (the project's, plus PostgreSQL storage when
        given), a source table and the two rules files (same rules; state watches on
        and off)."""
        self.home.mkdir(parents=True, exist_ok=True)
        config = (ROOT / "dagster.yaml").read_text()
        if self.dagster_storage_url:
            config += ("\nstorage:\n  postgres:\n    postgres_url: "
                       f"{json.dumps(self.dagster_storage_url)}\n")
        (self.home / "dagster.yaml").write_text(config)
        source = self.folder / "source.db"
        with contextlib.closing(sqlite3.connect(source)) as db, db:
            db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue INTEGER)")
            db.executemany("INSERT INTO jobs (queue) VALUES (?)",
                           [(i % 50,) for i in range(5000)])
        for on in (True, False):
            self.rules_file(on).write_text(self.rules_text(source, state_watches=on))

    def rules_text(self, source: Path, *, state_watches: bool) -> str:
        flag = "true" if state_watches else "false"
        lines = ["version: 1",
                 "defaults: {receivers: [console], schedule: '* * * * *', timezone: UTC, "
                 f"dagster_url: '{DAGSTER_URL}'}}",
                 "receivers: [{name: console, type: console}]",
                 "freshness: {stale_after: {sql_metric: 1d}}",
                 f"self_monitoring: {{stale_checks: {flag}, hung_runs: {flag}, "
                 f"location_errors: {flag}, graphql_url: '{self.graphql_url}', "
                 f"hung_min: {HUNG_MIN}}}",
                 "checks:", "  sql_metric:"]
        lines += [f"    - {{name: queue_{i:04d}, database: 'sqlite:///{source}', "
                  f"query: 'SELECT count(*) FROM jobs WHERE queue = {i % 50}', "
                  "expect: {max: 1000}}" for i in range(self.checks)]
        return "\n".join(lines) + "\n"

    def resource(self, state_watches: bool) -> AlertJobsResource:
        return AlertJobsResource(rules_file=str(self.rules_file(state_watches)),
                                 database_url=self.timeline_url)


def _event(instance: dg.DagsterInstance, run: dg.DagsterRun, kind: dg.DagsterEventType,
           at: datetime) -> None:
    instance.report_dagster_event(dg.DagsterEvent(event_type_value=kind.value,
                                                  job_name=run.job_name),
                                  run_id=run.run_id, timestamp=at.timestamp())


def _run(instance: dg.DagsterInstance, job: str,
         status: dg.DagsterRunStatus = dg.DagsterRunStatus.NOT_STARTED) -> dg.DagsterRun:
    origin: Any = dg.deserialize_value(ORIGIN % (OTHER_LOCATION, job))
    return instance.add_run(dg.DagsterRun(job_name=job, status=status,
                                          remote_job_origin=origin))


def seed_runs(instance: dg.DagsterInstance, now: datetime) -> None:
    """Runs of :data:`OTHER_JOBS` jobs of another location (see the module docstring)."""
    for j in range(OTHER_JOBS):
        job = f"pipeline_{j}"
        for k in range(HISTORY):
            run = _run(instance, job)
            start = now - timedelta(minutes=50) + k * timedelta(minutes=2)
            _event(instance, run, dg.DagsterEventType.RUN_START, start)
            _event(instance, run, dg.DagsterEventType.RUN_SUCCESS, start + timedelta(seconds=30))
        running = _run(instance, job)
        since = timedelta(hours=2) if j < HUNG else timedelta(minutes=1)
        _event(instance, running, dg.DagsterEventType.RUN_START, now - since)
    _run(instance, "pipeline_0", dg.DagsterRunStatus.QUEUED)


def seed_freshness(instance: dg.DagsterInstance, keys: list[dg.AssetKey], at: float) -> None:
    """A PASS freshness state per asset, as Dagster's freshness daemon records it."""
    for key in keys:
        change: Any = dg.deserialize_value(FRESHNESS_PASS % (json.dumps(list(key.path)), at))
        instance.report_runless_asset_event(change)


def scheduled_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    repository = defs.get_repository_def()
    return [key for key in repository.get_job(BATCH_JOB).asset_layer.executable_asset_keys
            if key.path[0] == "sql_metric"]


# ----- one tick -------------------------------------------------------------------------

@dataclass
class Watch:
    """Everything a tick needs, in one process."""

    setup: Setup
    defs: dg.Definitions
    instance: dg.DagsterInstance
    stub: GraphqlStub | None = None
    cursor: str | None = None
    #: what the last call of each case saw (observations; GraphQL requests)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    settings: SelfMonitoring | None = None

    def tick(self, state_watches: bool) -> dg.SensorResult:
        sensor = self.defs.get_sensor_def(SENSOR)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs,
            resources={"alert_jobs": self.setup.resource(state_watches)})
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def stale(self, later: timedelta = timedelta(0)) -> list[Any]:
        now = utcnow() + later
        return stale_observations(self.instance, self.defs.get_repository_def(), [], now=now,
                                  first_seen={}, location="alert_jobs",
                                  dagster_url=DAGSTER_URL)

    def hung(self) -> list[Any]:
        if self.settings is None:  # read once, untimed: the sensor reads the rules anyway
            self.settings = load_rules(self.setup.rules_file(True)).section(SelfMonitoring)
        return hung_observations(self.instance, self.settings, {}, now=utcnow(),
                                 dagster_url=DAGSTER_URL)

    def case(self, name: str) -> Callable[[], int]:
        """The callable timed for case ``name``; it returns how many observations the
        watch made (a sensor tick: 0, its result carries no count)."""
        calls: dict[str, Callable[[], Any]] = {
            "watch_on": lambda: self.tick(True),
            BASELINE: lambda: self.tick(False),
            "stale_checks": self.stale,
            "stale_checks_all_stale": lambda: self.stale(ALL_STALE_AFTER),
            "hung_runs": self.hung,
            "location_errors": lambda: location_statuses(self.setup.graphql_url, 5.0),
        }
        call = calls[name]

        def timed() -> int:
            got = call()
            return len(got) if isinstance(got, list) else 0
        return timed


def _observed_stale(observations: list[Any]) -> int:
    """How many rules the stale alerts name (their values)."""
    return int(sum(o.value for o in observations))


def prepare(setup: Setup, instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, Any]:
    """The batch run, the freshness records, the other location's runs; then two primed
    ticks (the first reads the last hour's runs). What was made, for the record."""
    started = time.perf_counter()
    result = defs.get_job_def(BATCH_JOB).execute_in_process(instance=instance,
                                                            run_config=QUIET)
    if not result.success:
        raise RuntimeError(f"the batch run {result.run_id} failed")
    keys = scheduled_keys(defs)
    materialized = instance.get_latest_materialization_events(keys)
    if sum(1 for e in materialized.values() if e is not None) != setup.checks:
        raise RuntimeError(f"{len(materialized)} of {setup.checks} assets materialized")
    batch_s = time.perf_counter() - started
    seed_freshness(instance, keys, time.time())
    seed_runs(instance, utcnow())
    return {"assets": len(keys), "batch_run_s": round(batch_s, 2),
            "freshness_records": len(instance.get_freshness_state_records(keys))}


# ----- results --------------------------------------------------------------------------

@dataclass
class CaseResult:
    """A case's medians (warm: in one process; cold: first tick in a new process)."""

    backend: str
    case: str
    mode: str  # warm, cold
    checks: int
    wall_ms: float
    cpu_ms: float
    ratio: float  # median of per-repetition wall ratios to the baseline
    observations: int
    graphql_requests: float  # per call
    reps: int
    spread: float = 0.0  # (max - min) / median of the wall times
    #: cold only: seconds to import, build the definitions, open the instance
    startup: dict[str, float] = field(default_factory=dict)

    @property
    def per_check_us(self) -> float:
        return self.wall_ms * 1000 / self.checks

    @property
    def core_share(self) -> float:
        """Of one core, at one tick per interval (CPU of this process)."""
        return self.cpu_ms / 1000 / INTERVAL_S

    @property
    def wall_share(self) -> float:
        return self.wall_ms / 1000 / INTERVAL_S

    def as_json(self) -> dict[str, Any]:
        return {"name": f"watch_{self.mode}_{self.case}_{self.backend}", **asdict(self),
                "per_check_us": self.per_check_us, "core_share": self.core_share,
                "wall_share": self.wall_share, "interval_s": INTERVAL_S, "baseline": BASELINE}


def _spread(values: list[float]) -> float:
    median = statistics.median(values)
    return (max(values) - min(values)) / median if median else 0.0


def measure_warm(watch: Watch, backend: str, reps: int) -> list[CaseResult]:
    wall: dict[str, list[float]] = {c: [] for c in WARM_CASES}
    cpu: dict[str, list[float]] = {c: [] for c in WARM_CASES}
    calls = {c: watch.case(c) for c in WARM_CASES}
    stub = watch.stub
    for rep in range(reps + 1):  # the first round is a warm-up
        for case in WARM_CASES if rep % 2 == 0 else tuple(reversed(WARM_CASES)):
            asked = stub.requests if stub else 0
            w, c = time.perf_counter(), time.process_time()
            found = calls[case]()
            dw, dc = time.perf_counter() - w, time.process_time() - c
            watch.seen[case] = (found, (stub.requests if stub else 0) - asked)
            if rep:
                wall[case].append(dw * 1000)
                cpu[case].append(dc * 1000)
    base = wall[BASELINE]
    return [CaseResult(backend, case, "warm", watch.setup.checks,
                       statistics.median(wall[case]), statistics.median(cpu[case]),
                       statistics.median(w / b for w, b in zip(wall[case], base, strict=True)),
                       watch.seen[case][0], float(watch.seen[case][1]), reps,
                       spread=_spread(wall[case])) for case in WARM_CASES]


#: The cold child: a new process, timed from before its first import.
CHILD = r"""
import json, sys, time
w0, c0 = time.perf_counter(), time.process_time()
spec = json.loads(sys.argv[1])
import dagster as dg
from alert_jobs.families.heartbeat.watch_freshness import stale_observations
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import utcnow
w1 = time.perf_counter()
from alert_jobs.definitions import defs  # the code location, as the code server loads it
repository = defs.get_repository_def()
sensor = defs.get_sensor_def(spec["sensor"])
w2 = time.perf_counter()
instance = dg.DagsterInstance.from_config(spec["home"])
w3 = time.perf_counter()
w, c = time.perf_counter(), time.process_time()
if spec["case"] == "stale_checks":
    now = utcnow()
    found = len(stale_observations(instance, repository, [], now=now, first_seen={},
                                   location="alert_jobs", dagster_url=spec["dagster_url"]))
else:
    context = dg.build_sensor_context(
        instance=instance, cursor=spec["cursor"], definitions=defs,
        resources={"alert_jobs": AlertJobsResource(rules_file=spec["rules"],
                                                   database_url=spec["timeline_url"])})
    sensor(context)
    found = 0
tick_w, tick_c = time.perf_counter() - w, time.process_time() - c
instance.dispose()
print(json.dumps({"import_s": w1 - w0, "definitions_s": w2 - w1, "instance_s": w3 - w2,
                  "tick_ms": tick_w * 1000, "tick_cpu_ms": tick_c * 1000, "found": found}))
"""


def _cold_once(setup: Setup, case: str, cursor: str | None) -> dict[str, float]:
    spec = {"case": case, "sensor": SENSOR, "home": str(setup.home), "cursor": cursor,
            "rules": str(setup.rules_file(case != BASELINE)),
            "timeline_url": setup.timeline_url, "dagster_url": DAGSTER_URL}
    code_tree = str(Path(alert_jobs.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=code_tree, DAGSTER_HOME=str(setup.home),
               ALERT_JOBS_RULES=str(setup.rules_file(True)),
               ALERT_JOBS_DATABASE_URL=setup.timeline_url, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          cwd=setup.folder, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"cold child ({case}) failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_cold(watch: Watch, backend: str, reps: int,
                 cases: tuple[str, ...] = COLD_CASES) -> list[CaseResult]:
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in cases}
    stub = watch.stub
    asked: dict[str, int] = dict.fromkeys(cases, 0)
    for rep in range(reps):
        for case in cases if rep % 2 == 0 else tuple(reversed(cases)):
            before = stub.requests if stub else 0
            runs[case].append(_cold_once(watch.setup, case, watch.cursor))
            asked[case] += (stub.requests if stub else 0) - before
    base = [r["tick_ms"] for r in runs[BASELINE]]
    out = []
    for case in cases:
        ticks = [r["tick_ms"] for r in runs[case]]
        out.append(CaseResult(
            backend, case, "cold", watch.setup.checks, statistics.median(ticks),
            statistics.median(r["tick_cpu_ms"] for r in runs[case]),
            statistics.median(t / b for t, b in zip(ticks, base, strict=True)),
            int(runs[case][-1]["found"]), asked[case] / reps, reps, spread=_spread(ticks),
            startup={k: statistics.median(r[k] for r in runs[case])
                     for k in ("import_s", "definitions_s", "instance_s")}))
    return out


@dataclass
class BackendRun:
    backend: str
    checks: int
    made: dict[str, Any]
    results: list[CaseResult]
    #: what the primed sensor ticks did: GraphQL requests per tick, hung alerts open
    on_tick: dict[str, int]
    off_tick: dict[str, int]
    all_stale_rules: int  # rules named by the stale alert at now + 2 days
    problems: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "checks": self.checks, "made": self.made,
                "on_tick": self.on_tick, "off_tick": self.off_tick,
                "all_stale_rules": self.all_stale_rules, "problems": self.problems,
                "results": [r.as_json() for r in self.results]}


def _hung_open(timeline: Timeline) -> int:
    return sum(1 for a in timeline.alerts.list() if a.rule == "dagster_run_hung")


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` for a while: the code location's resource finds the
    timeline (and keeps its last good rules) through them, as in a deployment."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure(backend: str, folder: Path, size: Size, timeline_url: str,
            dagster_storage_url: str | None = None, cold: bool = True) -> BackendRun:
    with GraphqlStub() as stub:
        setup = Setup(folder, size.checks, timeline_url, stub.url, dagster_storage_url)
        setup.write()
        with _environment(DAGSTER_HOME=str(setup.home), ALERT_JOBS_DATABASE_URL=timeline_url):
            return _measure(backend, setup, size, stub, cold)


def _progress(backend: str, what: str) -> None:
    print(f"watch_bench [{backend}] {what}", file=sys.stderr, flush=True)


def _measure(backend: str, setup: Setup, size: Size, stub: GraphqlStub,
             cold: bool) -> BackendRun:
    _progress(backend, f"{size.checks} checks: batch run, seeding")
    timeline = Timeline(setup.timeline_url)
    timeline.upgrade()
    defs = build_definitions(str(setup.rules_file(True)))
    try:
        with dg.DagsterInstance.from_config(str(setup.home)) as instance:
            made = prepare(setup, instance, defs)
            watch = Watch(setup, defs, instance, stub)
            first = watch.tick(True)  # reads the last hour's runs: not the steady state
            watch.cursor = first.cursor
            before = stub.requests
            watch.tick(True)
            on_tick = {"graphql_requests": stub.requests - before,
                       "hung_alerts_open": _hung_open(timeline)}
            before = stub.requests
            watch.tick(False)
            off_tick = {"graphql_requests": stub.requests - before}
            _progress(backend, f"made {made}; warm ticks")
            results = measure_warm(watch, backend, size.reps)
            all_stale = _observed_stale(watch.stale(ALL_STALE_AFTER))
            if cold:
                _progress(backend, "cold ticks")
                results += measure_cold(watch, backend, size.cold_reps, size.cold_cases)
    finally:
        timeline.dispose()
    problems = []
    if all_stale != size.checks:
        problems.append(f"at now + 2 days the stale alert names {all_stale} rules, not "
                        f"{size.checks}")
    if off_tick["graphql_requests"]:
        problems.append("the baseline tick asked the webserver")
    return BackendRun(backend, size.checks, made, results, on_tick, off_tick, all_stale,
                      problems)


def dagster_postgres_url(url: str) -> str:
    """The URL with psycopg2 named: dagster-postgres sends ``NOTIFY run_events, %s``,
    which psycopg 3 (SQLAlchemy 2.1's default PostgreSQL driver) binds server-side and
    PostgreSQL refuses."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg2://{rest}" if scheme in ("postgresql", "postgres") else url


def run(quick: bool = False) -> tuple[list[BackendRun], dict[str, str]]:
    size = SIZES["quick" if quick else "full"]
    runs: list[BackendRun] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="alert-jobs-watch-") as tmp:
        folder = Path(tmp) / "sqlite"
        runs.append(measure("sqlite", folder, size, f"sqlite:///{folder / 'timeline.db'}"))
    if quick:
        skipped["postgresql"] = "quick size: SQLite only"
        return runs, skipped
    pg_url, name = scratch_schema("watch")
    if pg_url is None:
        skipped["postgresql"] = name
        return runs, skipped
    try:
        with tempfile.TemporaryDirectory(prefix="alert-jobs-watch-") as tmp:
            runs.append(measure("postgresql", Path(tmp), size, pg_url,
                                dagster_storage_url=dagster_postgres_url(pg_url)))
    except Exception as exc:  # dagster-postgres cannot use it: say why, keep SQLite's
        skipped["postgresql"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        drop_schema(name)
    return runs, skipped


# ----- the table ------------------------------------------------------------------------

def _pct(share: float) -> str:
    return f"{share * 100:.2f} %"


def format_table(runs: list[BackendRun], skipped: dict[str, str]) -> str:
    header = ["backend", "mode", "case", "checks", "ms/tick", "CPU ms", "µs/check",
              f"ratio to {BASELINE}", "spread", "core share @30s (CPU)", "(wall)", "found",
              "GraphQL/call"]
    rows = [[r.backend, r.mode, r.case, f"{r.checks:,}", f"{r.wall_ms:.1f}",
             f"{r.cpu_ms:.1f}", f"{r.per_check_us:.1f}", f"{r.ratio:.2f}×",
             f"{r.spread * 100:.0f} %", _pct(r.core_share), _pct(r.wall_share),
             str(r.observations) if r.case not in ("watch_on", BASELINE) else "-",
             f"{r.graphql_requests:g}"] for run_ in runs for r in run_.results]
    out = [f"Instance watch: one tick at N scheduled checks (medians; baseline {BASELINE} = "
           "the same sensor with stale_checks, hung_runs and location_errors off; "
           f"interval {INTERVAL_S:.0f} s)",
           *aligned_table([header, *rows], set(range(3, len(header))))]
    for run_ in runs:
        on = {r.mode: r for r in run_.results if r.case == "watch_on"}
        off = {r.mode: r for r in run_.results if r.case == BASELINE}
        if "warm" in on:
            w, b = on["warm"], off["warm"]
            out.append(f"{run_.backend}: at {run_.checks:,} checks and one tick every "
                       f"{INTERVAL_S:.0f} s the watch takes {_pct(w.core_share)} of one core "
                       f"(CPU; {_pct(w.wall_share)} by wall time), the state watches "
                       f"{w.wall_ms - b.wall_ms:+.1f} ms a tick over the baseline "
                       f"({(w.wall_ms - b.wall_ms) * 1000 / run_.checks:.1f} µs per check)")
        cold = [r for r in run_.results if r.mode == "cold" and r.startup]
        if cold:
            s = cold[0].startup
            out.append(f"{run_.backend} cold start before the first tick: import "
                       f"{s['import_s']:.1f} s, definitions {s['definitions_s']:.1f} s, "
                       f"instance {s['instance_s']:.2f} s")
        out.append(f"{run_.backend} primed sensor tick with the state watches on: "
                   f"{run_.on_tick['graphql_requests']} GraphQL request(s), "
                   f"{run_.on_tick['hung_alerts_open']} hung-run alert(s) open "
                   f"(expected 1 and {HUNG} when the sensor runs every state watch); "
                   f"made: {run_.made}")
        out += [f"PROBLEM {run_.backend}: {p}" for p in run_.problems]
    out += [f"skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{SIZES['quick'].checks} checks, {SIZES['quick'].reps} "
                             "repetitions, SQLite only")
    args = parser.parse_args(argv)
    runs, skipped = run(quick=args.quick)
    print(format_table(runs, skipped))
    write_json(RESULTS_FILE, [r.as_json() for r in runs], skipped)
    return 1 if any(r.problems for r in runs) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
