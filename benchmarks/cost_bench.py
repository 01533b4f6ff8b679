"""What one schedule tick costs, per rule, against a single-rule run (issue #12, point 6).

For each family and timeline database the benchmark writes a rules file with many rules
on ONE schedule and a source for them, builds the code location from it
(``alert_jobs.definitions.build_definitions``), and DISCOVERS what a tick launches: the
schedules whose job covers the family's evaluation assets, grouped by cron + timezone,
and the run requests their evaluation functions return (tags such as
``dagster/asset_partition_range_start/end``). Nothing about batching is assumed: today's
one-schedule-per-rule ``sql_metric`` is "1,000 runs per tick", a batched one "1 run".

Every run is executed the way Dagster executes it: a new process,
``dagster job execute -m alert_jobs.definitions -j <job> --tags <run request tags>``
with ``ALERT_JOBS_RULES`` / ``ALERT_JOBS_DATABASE_URL`` / ``DAGSTER_HOME`` pointing at the
generated files (the job's own executor: multiprocess today, so a step process too).
Measured by a small stdlib-only launcher process with ``os.wait4``: wall, CPU (user +
system of the run and every descendant it waited for) and peak RSS (``ru_maxrss`` of that
process tree — the largest single process; the launcher is small, so the benchmark's own
RSS does not leak into the figure, which a direct fork would do on Linux).

* **Tick**: all of the tick's runs; when there are more than ``SAMPLE_RUNS`` (today's
  ``sql_metric``), an evenly spread sample is run and CPU is extrapolated (mean × runs),
  wall as if the runs shared the 2 cores perfectly; both are labelled "extrapolated".
* **Baseline (same run)**: a single-rule run, ``dagster asset materialize -m
  alert_jobs.definitions --select <one rule's asset> [--partition <one target>]``, median
  of ``BASELINE_REPS``, interleaved with the tick.
* **Targets** (printed pass/fail): CPU per rule at least 100× less than the single-rule
  run's; the whole tick under 60 s on 2 cores; peak RSS under 500 MB.
* **Dagster alone** (``sql_metric`` only, same run, once per size): the same asset shape
  with nothing evaluated — as many asset specs and checks as rules, in multi-assets of
  :data:`~alert_jobs.runtime.batching.PART_SIZE`, each yielding one number and a passed
  check (:data:`FLOOR_MODULE`) — run the same way, and its own single-asset run. What
  the tick costs beyond it is alert-jobs' share; what it costs alone is Dagster's
  bookkeeping (events, planned events, check targets), which no evaluation code can
  take away.

Cold start (``cold_start`` rows): in a fresh process, the import of the family's run
module (timed on its own), then the first evaluation, then ``WARM_REPS`` more (median);
target: first ≤ 1.5× warm. The timeline already holds the rules' state from an earlier
process, as it does for every scheduled run.

Sizes: 1,000 ``sql_metric`` rules (``SELECT count(*) … WHERE k = <i>`` on a 10,000-row
table), 200 ``redis_quota`` targets on the local Redis (databases 0–15 round-robin),
200 ``score_drift`` segments (one rule, static ``segments:``). ``--quick``: 50 / 20 / 20.
On PostgreSQL every workload gets its own ``bench_<random>`` schema (timeline and source
tables), dropped at the end. Writes ``results/cost.json``; ``make bench`` puts the same
entries into ``results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.timeline_bench import (
    TEST_DATABASE_URL_ENV,
    BenchmarkError,
    aligned_table,
    metadata,
    postgres_database,
)

REDIS_URL_ENV = "REDIS_URL"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SIZES = {"sql_metric": 1000, "redis_quota": 200, "score_drift": 200}
QUICK_SIZES = {"sql_metric": 50, "redis_quota": 20, "score_drift": 20}
SAMPLE_RUNS = 5
BASELINE_REPS = 3
WARM_REPS = 10
COLD_PROCESSES = 3
CORES = 2
TARGET_CPU_RATIO = 100.0
TARGET_TICK_S = 60.0
TARGET_RSS_MB = 500.0
TARGET_COLD_RATIO = 1.5
RUN_TIMEOUT_S = 900
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "cost.json"
ROOT = Path(__file__).resolve().parent.parent
CODE_TREE = ROOT  # whose alert_jobs the runs and the cold start use (--code-tree)
FAMILIES = ("sql_metric", "redis_quota", "score_drift")
CRON = "*/5 * * * *"

# The launcher: stdlib only, so its own RSS (which its child inherits as a high-water
# mark on fork) is a few MB, not the benchmark's. One JSON spec on stdin, one on stdout.
LAUNCHER = r"""
import json, os, subprocess, sys, time
spec = json.load(sys.stdin)
with open(spec["log"], "ab") as log:
    started = time.perf_counter()
    proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime,
                  "sys_s": ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024,
                  "exit_code": proc.returncode}))
"""


# Dagster alone: point 1's shape (one asset spec and one check per rule, multi-assets of
# PART_SIZE rules, one job, in-process executor) doing nothing but yield what a rule yields
# at least: one plain number and a passed check.
FLOOR_MODULE = r"""
import os
import dagster as dg

N, PART = int(os.environ["FLOOR_RULES"]), int(os.environ["FLOOR_PART"])


def part(first, last):
    keys = [dg.AssetKey(["floor", f"r{i:04d}"]) for i in range(first, last)]

    @dg.multi_asset(name=f"floor_part_{first // PART + 1}", can_subset=True,
                    specs=[dg.AssetSpec(k) for k in keys],
                    check_specs=[dg.AssetCheckSpec("ok", asset=k) for k in keys])
    def _part(context: dg.AssetExecutionContext):
        for k in keys:
            if k in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=k, metadata={"value": 1.0}, check_results=[
                    dg.AssetCheckResult(asset_key=k, check_name="ok", passed=True)])
    return _part


defs = dg.Definitions(
    assets=[part(i, min(i + PART, N)) for i in range(0, N, PART)],
    jobs=[dg.define_asset_job("floor_job", selection=dg.AssetSelection.all())],
    executor=dg.in_process_executor)
"""


@dataclass
class Measured:
    """One process tree: wall and CPU seconds, peak RSS (MB of the largest process)."""

    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float
    exit_code: int
    argv: list[str] = field(default_factory=list)


@dataclass
class Workload:
    family: str
    backend: str
    units: int  # rules / targets / segments one tick evaluates
    unit_name: str
    rules_file: Path
    timeline_url: str
    home: Path  # DAGSTER_HOME
    single_select: list[str]  # `dagster asset materialize` args for one rule

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if CODE_TREE != ROOT:  # measure another checkout's alert_jobs (--code-tree)
            env["PYTHONPATH"] = os.pathsep.join([str(CODE_TREE), str(ROOT)])
        env.update({"ALERT_JOBS_RULES": str(self.rules_file),
                    "ALERT_JOBS_DATABASE_URL": self.timeline_url,
                    "DAGSTER_HOME": str(self.home), "PYTHONWARNINGS": "ignore"})
        return env


@dataclass
class PlannedRun:
    """One run a tick launches: the job, its tags, or an asset subset."""

    schedule: str
    job: str
    tags: dict[str, str]
    asset_selection: list[str] | None = None

    def argv(self) -> list[str]:
        bin_dir = Path(sys.executable).parent
        if self.asset_selection is None:
            return [str(bin_dir / "dagster"), "job", "execute", "-m", "alert_jobs.definitions",
                    "-j", self.job, "--tags", json.dumps(self.tags)]
        argv = [str(bin_dir / "dagster"), "asset", "materialize", "-m",
                "alert_jobs.definitions", "--select", ",".join(self.asset_selection)]
        start = self.tags.get("dagster/asset_partition_range_start")
        if start:
            argv += ["--partition-range",
                     f"{start}...{self.tags['dagster/asset_partition_range_end']}"]
        elif "dagster/partition" in self.tags:
            argv += ["--partition", self.tags["dagster/partition"]]
        return argv


@dataclass
class Tick:
    cron: str
    timezone: str
    schedules: list[str]
    runs: list[PlannedRun]
    how: str  # how the run requests were found


@dataclass
class TickResult:
    family: str
    backend: str
    units: int
    unit_name: str
    runs_per_tick: int
    measured_runs: int
    extrapolated: bool
    schedules: int
    how: str
    tick_wall_s: float
    tick_cpu_s: float
    tick_maxrss_mb: float
    run_cpu_s: list[float]
    baseline_cpu_s: list[float]
    baseline_wall_s: list[float]
    baseline_maxrss_mb: float
    evaluations: dict[str, int]
    floor: dict[str, float] | None = None  # Dagster alone: tick/single CPU and wall

    @property
    def cpu_per_unit(self) -> float:
        return self.tick_cpu_s / self.units

    @property
    def baseline_cpu(self) -> float:
        return statistics.median(self.baseline_cpu_s)

    @property
    def cpu_ratio(self) -> float:
        """How many times less CPU one rule costs in the tick than in its own run."""
        return self.baseline_cpu / self.cpu_per_unit

    def targets(self) -> dict[str, bool]:
        return {"cpu_per_rule": self.cpu_ratio >= TARGET_CPU_RATIO,
                "tick_wall": self.tick_wall_s < TARGET_TICK_S,
                "peak_rss": self.tick_maxrss_mb < TARGET_RSS_MB}

    def as_json(self) -> dict[str, Any]:
        return {"name": f"cost: one tick, {self.units} {self.unit_name} [{self.family}, "
                        f"{self.backend}]",
                **{k: v for k, v in asdict(self).items() if k != "floor"},
                "cpu_per_unit_s": self.cpu_per_unit,
                "baseline": {"name": "single-rule run (dagster asset materialize)",
                             "median_cpu_s": self.baseline_cpu},
                "cpu_ratio": self.cpu_ratio,
                "cpu_ratio_meaning": "baseline CPU per run / tick CPU per rule",
                "targets": self.targets(), **self.floor_json()}

    def floor_json(self) -> dict[str, Any]:
        if self.floor is None:
            return {}
        f = self.floor
        return {"dagster_alone": {
            "name": "the same asset shape with nothing evaluated (FLOOR_MODULE)", **f,
            "cpu_per_unit_s": f["tick_cpu_s"] / self.units,
            "cpu_ratio": f["single_cpu_s"] / (f["tick_cpu_s"] / self.units),
            "alert_jobs_cpu_per_unit_s": (self.tick_cpu_s - f["tick_cpu_s"]) / self.units,
            "share_of_tick_cpu": f["tick_cpu_s"] / self.tick_cpu_s}}


@dataclass
class ColdResult:
    family: str
    backend: str
    import_s: float
    import_cpu_s: float
    rules_s: float
    first_s: list[float]  # per process
    warm_s: list[float]  # per process: the median of its warm evaluations
    profile: list[str] = field(default_factory=list)

    @property
    def first(self) -> float:
        return statistics.median(self.first_s)

    @property
    def warm(self) -> float:
        return statistics.median(self.warm_s)

    @property
    def ratio(self) -> float:
        return statistics.median(f / w for f, w in zip(self.first_s, self.warm_s, strict=True))

    def as_json(self) -> dict[str, Any]:
        return {"name": f"cold start: first evaluation in a new process [{self.family}, "
                        f"{self.backend}]", **asdict(self), "first_median_s": self.first,
                "warm_median_s": self.warm,
                "ratio": self.ratio, "ratio_meaning": "first evaluation / median warm one",
                "target": {"max_ratio": TARGET_COLD_RATIO,
                           "passed": self.ratio <= TARGET_COLD_RATIO}}


# ----- workloads: rules files and sources --------------------------------------------


def is_evaluation(family: str, key_path: list[str]) -> bool:
    """Whether an asset key (its path) is one of ``family``'s evaluation assets (not the
    score_drift references, which have their own daily schedule)."""
    if family == "score_drift":
        return key_path[-1] == "score_drift"
    return key_path[0] == family


def _rules_header() -> str:
    return (f"version: 1\ndefaults: {{receivers: [console], timezone: UTC, schedule: '{CRON}', "
            f"redis_quota_schedule: '{CRON}'}}\nreceivers: [{{name: console, type: console}}]\n"
            "checks:\n")


def sql_metric_rules(n: int, source_url: str) -> str:
    lines = [_rules_header(), "  sql_metric:\n"]
    for i in range(n):
        lines.append(
            f"    - name: r{i:04d}\n      database: '{source_url}'\n"
            f"      query: SELECT count(*) FROM cost_source WHERE k = {i}\n"
            "      expect: {min: 0, max: 1000}\n")
    return "".join(lines)


def write_sql_source(url: str, n: int) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS cost_source")
            conn.exec_driver_sql("CREATE TABLE cost_source (id INTEGER PRIMARY KEY, k INTEGER)")
            conn.exec_driver_sql("CREATE INDEX ix_cost_source_k ON cost_source (k)")
            conn.execute(sa.text("INSERT INTO cost_source VALUES (:id, :k)"),
                         [{"id": i, "k": i % n} for i in range(10 * n)])
    finally:
        engine.dispose()


def redis_rules(n: int, redis_url: str) -> str:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    lines = [_rules_header(), "  redis_quota:\n"]
    for i in range(n):
        lines.append(f"    - name: t{i:03d}\n      url: '{base}/{i % 16}'\n"
                     "      quota: {window: day, limit: 100000000000}\n")
    return "".join(lines)


DRIFT_NOW_SHIFT = timedelta(minutes=1)


def drift_rules(n: int, source_url: str) -> str:
    segments = ", ".join(f"s{i:03d}" for i in range(n))
    return (_rules_header() + "  score_drift:\n    - name: cost_scores\n"
            f"      database: '{source_url}'\n      table: cost_scores\n"
            "      time_column: scored_at\n      score_column: score\n"
            "      segment_columns: [model]\n      feature_columns: [amount]\n"
            f"      segments: [{segments}]\n      min_samples: 20\n"
            "      reference: {kind: fixed, lookback: 6h}\n"
            "      high_score: {threshold: 0.9, min_samples: 20}\n")


def write_drift_source(url: str, n: int, now: datetime, *, ref_rows: int = 240,
                       cur_rows: int = 40) -> None:
    """``ref_rows`` scores per segment over the 6 hours before the last hour and
    ``cur_rows`` in the last hour: the same rate and the same distribution, scores
    spread evenly over [0.02, 0.8] (no drift; random draws of 40 would differ by chance
    and alert on PSI, adding notifications that are not the check's cost)."""
    engine = _engine(url)
    pg = engine.dialect.name == "postgresql"
    cur_start = now - timedelta(hours=1)
    ref_start = cur_start - timedelta(hours=6)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        model = f"s{i:03d}"
        for count, start, span in ((ref_rows, ref_start, timedelta(hours=6)),
                                   (cur_rows, cur_start, timedelta(hours=1) - DRIFT_NOW_SHIFT)):
            step = span / count
            for j in range(count):
                at = start + j * step
                score = 0.02 + 0.78 * ((j * 7919) % count + 0.5) / count  # evenly, shuffled
                rows.append({"at": at if pg else at.strftime("%Y-%m-%d %H:%M:%S"),
                             "score": score, "model": model, "amount": 1.0})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS cost_scores")
            conn.exec_driver_sql(
                f"CREATE TABLE cost_scores (scored_at {'TIMESTAMPTZ' if pg else 'TEXT'}, "
                "score DOUBLE PRECISION, model TEXT, amount DOUBLE PRECISION)")
            conn.exec_driver_sql("CREATE INDEX ix_cost_scores ON cost_scores (model, scored_at)")
            conn.execute(sa.text("INSERT INTO cost_scores VALUES (:at, :score, :model, :amount)"),
                         rows)
    finally:
        engine.dispose()


def _engine(url: str) -> sa.Engine:
    from alert_jobs.store.urls import driver_url

    return sa.create_engine(driver_url(url))


def redis_available(url: str) -> str | None:
    """``None`` if Redis answers PING at ``url``, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"no Redis at {url}: {str(exc).splitlines()[0][:120]}"
    return None


@contextmanager
def workload(family: str, backend: str, n: int, tmp: Path,
             pg_url: str | None) -> Iterator[Workload]:
    """The family's rules file, source and empty (upgraded) timeline on ``backend``."""
    from alert_jobs.store import Timeline

    with _database(backend, tmp / f"{family}-timeline.db", pg_url) as timeline_url:
        source_url = timeline_url if backend == "postgresql" else \
            f"sqlite:///{tmp / f'{family}-source.db'}"
        home = tmp / f"{family}-{backend}-home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        rules_file = tmp / f"{family}-{backend}.yaml"
        if family == "sql_metric":
            write_sql_source(source_url, n)
            rules_file.write_text(sql_metric_rules(n, source_url))
            single, unit = ["--select", "sql_metric/r0000"], "rules"
        elif family == "redis_quota":
            rules_file.write_text(redis_rules(n, os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS)))
            single, unit = ["--select", "redis_quota", "--partition", "t000"], "targets"
        else:
            write_drift_source(source_url, n, datetime.now(UTC) + DRIFT_NOW_SHIFT)
            rules_file.write_text(drift_rules(n, source_url))
            single, unit = (["--select", "cost_scores/score_drift", "--partition", "s000"],
                            "segments")
        timeline = Timeline(timeline_url)
        timeline.upgrade()
        timeline.dispose()
        w = Workload(family, backend, n, unit, rules_file, timeline_url, home, single)
        if family == "score_drift":
            _build_references(w, n)
        yield w


@contextmanager
def _database(backend: str, path: Path, pg_url: str | None) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{path}"
        return
    assert pg_url is not None
    with postgres_database(pg_url) as url:
        yield url


def _build_references(w: Workload, n: int) -> None:
    """Untimed: the daily reference build, so the tick measures the hourly check."""
    from alert_jobs.config import load_rules
    from alert_jobs.families.score_drift.config import ScoreDriftRule
    from alert_jobs.families.score_drift.run import build_references
    from alert_jobs.store import Timeline

    rules = load_rules(str(w.rules_file))
    (rule,) = rules.rules_of(ScoreDriftRule)
    timeline = Timeline(w.timeline_url)
    try:
        builds = build_references(rule, timeline, [f"s{i:03d}" for i in range(n)])
    finally:
        timeline.dispose()
    failed = [b for b in builds if b.error]
    if failed:
        raise BenchmarkError(f"reference build failed: {failed[0].error}")


# ----- discovering the tick -----------------------------------------------------------


def discover_tick(w: Workload) -> Tick:
    """What the family's schedule tick launches, read from the built code location.

    Schedules whose job selects any of the family's evaluation assets are grouped by
    cron + timezone; the largest group is "the tick" (every generated rule shares one
    cron). Each schedule is evaluated (``build_schedule_context``) for its run requests;
    one without an evaluation function (a plain ``ScheduleDefinition``) requests one
    run of its job with no tags. Runs in its own process, as a code server would, so
    no Dagster state is left behind in this one.
    """
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cost_bench", "--discover", w.family,
         str(w.rules_file), str(w.home / "discover")],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=w.env(), cwd=ROOT,
        check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"discovering the tick failed: {done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in out:
        raise BenchmarkError(out["error"])
    out["runs"] = [PlannedRun(**r) for r in out["runs"]]
    return Tick(**out)


def _discover(family: str, rules_file: str, instance_dir: str) -> dict[str, Any]:
    import warnings

    import dagster as dg

    warnings.simplefilter("ignore")  # Dagster's beta/preview notices
    Path(instance_dir).mkdir(parents=True, exist_ok=True)
    # Everything inside a live instance: resolving jobs builds the repository, which
    # Dagster ties to the current instance.
    with dg.instance_for_test(temp_dir=instance_dir) as instance:
        return _discover_in(family, rules_file, instance)


def _discover_in(family: str, rules_file: str, instance: Any) -> dict[str, Any]:
    import dagster as dg

    from alert_jobs.definitions import build_definitions

    defs = build_definitions(rules_file)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for schedule in defs.schedules or []:
        job = defs.resolve_job_def(schedule.job_name)
        keys = job.asset_layer.selected_asset_keys  # the job's assets
        if any(is_evaluation(family, list(k.path)) for k in keys):
            groups[(str(schedule.cron_schedule), schedule.execution_timezone or "UTC")].append(
                schedule)
    if not groups:
        return {"error": f"no schedule of the code location targets {family}'s assets"}
    (cron, tz), schedules = max(groups.items(), key=lambda kv: len(kv[1]))
    runs: list[dict[str, Any]] = []
    hows: set[str] = set()
    for schedule in schedules:
        context = dg.build_schedule_context(instance=instance,
                                            scheduled_execution_time=datetime.now(UTC))
        try:
            result = schedule(context)
            hows.add("evaluated")
        except dg.DagsterInvalidInvocationError:  # no evaluation function
            result = dg.RunRequest()
            hows.add("plain schedule (one run of its job)")
        requests = result if isinstance(result, list) else [result]
        for request in requests:
            if isinstance(request, dg.SkipReason):
                return {"error": f"{schedule.name} skipped: {request.skip_message}"}
            tags = dict(request.tags)
            if request.partition_key:
                tags["dagster/partition"] = request.partition_key
            selection = [k.to_user_string() for k in request.asset_selection] \
                if request.asset_selection else None
            runs.append(asdict(PlannedRun(schedule.name, request.job_name or schedule.job_name,
                                          tags, selection)))
    return {"cron": cron, "timezone": tz, "schedules": [s.name for s in schedules],
            "runs": runs, "how": ", ".join(sorted(hows))}


# ----- running ------------------------------------------------------------------------


def launch(argv: list[str], env: dict[str, str], log: Path) -> Measured:
    spec = {"argv": argv, "env": env, "cwd": str(CODE_TREE), "log": str(log)}
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER], input=json.dumps(spec),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"launcher failed: {done.stderr[-2000:]}")
    measured = Measured(**json.loads(done.stdout), argv=argv)
    if measured.exit_code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise BenchmarkError(f"{' '.join(argv[1:4])} … exited {measured.exit_code}:\n{tail}")
    return measured


def sample(runs: list[PlannedRun], k: int) -> list[PlannedRun]:
    if len(runs) <= k:
        return runs
    step = len(runs) / k
    return [runs[int(i * step)] for i in range(k)]


def count_evaluations(url: str, since: datetime) -> dict[str, int]:
    """Evaluations written since ``since``: fingerprints seen, and per status."""
    from alert_jobs.store import Timeline, schema

    timeline = Timeline(url)
    try:
        t = schema.evaluations
        with timeline.read() as conn:
            rows = conn.execute(sa.select(t.c.status, sa.func.count(),
                                          sa.func.count(sa.distinct(t.c.fingerprint)))
                                .where(t.c.at >= since).group_by(t.c.status)).all()
            fingerprints = conn.execute(sa.select(sa.func.count(sa.distinct(t.c.fingerprint)))
                                        .where(t.c.at >= since)).scalar() or 0
    finally:
        timeline.dispose()
    out = {f"status_{s}": int(n) for s, n, _ in rows}
    out["fingerprints"] = int(fingerprints)
    return out


def bench_tick(w: Workload, baseline_reps: int, sample_runs: int) -> TickResult:
    print(f"  discovering the tick of {w.units} {w.unit_name} …", file=sys.stderr, flush=True)
    tick = discover_tick(w)
    planned = sample(tick.runs, sample_runs)
    extrapolated = len(planned) < len(tick.runs)
    single = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
              "alert_jobs.definitions", *w.single_select]
    logs = w.home / "logs"
    logs.mkdir(exist_ok=True)
    env = w.env()
    baseline: list[Measured] = []
    print(f"  {len(tick.runs)} run(s) per tick ({len(tick.schedules)} schedule(s), "
          f"{tick.how}); running {len(planned)} and {baseline_reps} single-rule runs …",
          file=sys.stderr, flush=True)
    baseline.append(launch(single, env, logs / "baseline-0.log"))
    since = datetime.now(UTC)
    measured = [launch(run.argv(), env, logs / f"tick-{i}.log") for i, run in enumerate(planned)]
    evaluations = count_evaluations(w.timeline_url, since)
    for rep in range(1, baseline_reps):
        baseline.append(launch(single, env, logs / f"baseline-{rep}.log"))
    expected = w.units * len(planned) // len(tick.runs)
    if evaluations["fingerprints"] < expected:
        raise BenchmarkError(f"the tick's {len(planned)} run(s) evaluated "
                             f"{evaluations['fingerprints']} alert instances, expected at "
                             f"least {expected} ({evaluations})")
    if evaluations.get("status_error"):
        raise BenchmarkError(f"{evaluations['status_error']} evaluations of the tick were "
                             f"errors; the workload is broken ({evaluations})")
    floor = bench_floor(w, baseline_reps) if w.family == "sql_metric" else None
    scale = len(tick.runs) / len(planned)
    cpu = sum(m.cpu_s for m in measured) * scale
    if extrapolated:
        wall = statistics.mean(m.wall_s for m in measured) * len(tick.runs) / min(
            CORES, len(tick.runs))
    else:
        wall = sum(m.wall_s for m in measured)
    return TickResult(
        w.family, w.backend, w.units, w.unit_name, len(tick.runs), len(planned), extrapolated,
        len(tick.schedules), tick.how, wall, cpu, max(m.maxrss_mb for m in measured),
        [m.cpu_s for m in measured], [m.cpu_s for m in baseline], [m.wall_s for m in baseline],
        max(m.maxrss_mb for m in baseline), evaluations, floor)


#: Dagster alone per rule count, measured once per benchmark run: it reads no timeline,
#: so the SQLite and PostgreSQL workloads of one size share it.
_FLOORS: dict[int, dict[str, float]] = {}


def bench_floor(w: Workload, reps: int) -> dict[str, float]:
    """Dagster alone (:data:`FLOOR_MODULE`): one tick-sized run and ``reps`` single-asset
    runs, launched like the product's, on a fresh instance of their own."""
    if w.units not in _FLOORS:
        _FLOORS[w.units] = _measure_floor(w, reps)
    return _FLOORS[w.units]


def _measure_floor(w: Workload, reps: int) -> dict[str, float]:
    from alert_jobs.runtime.batching import PART_SIZE

    home = w.home.parent / f"{w.home.name}-floor"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    module = home / "cost_floor.py"
    module.write_text(FLOOR_MODULE)
    env = {**w.env(), "DAGSTER_HOME": str(home), "FLOOR_RULES": str(w.units),
           "FLOOR_PART": str(PART_SIZE)}
    dagster = str(Path(sys.executable).parent / "dagster")
    print(f"  Dagster alone: {w.units} assets and checks, nothing evaluated …",
          file=sys.stderr, flush=True)
    single = [launch([dagster, "asset", "materialize", "-f", str(module), "--select",
                      "floor/r0000"], env, home / f"single-{i}.log") for i in range(reps)]
    tick = launch([dagster, "job", "execute", "-f", str(module), "-j", "floor_job"], env,
                  home / "tick.log")
    return {"tick_cpu_s": tick.cpu_s, "tick_wall_s": tick.wall_s,
            "single_cpu_s": statistics.median(m.cpu_s for m in single),
            "single_wall_s": statistics.median(m.wall_s for m in single)}


# ----- cold start ---------------------------------------------------------------------


COLD_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import logging
logging.disable(logging.WARNING)
family, rules_file, url = sys.argv[1], sys.argv[2], sys.argv[3]
warm_reps, profile = int(sys.argv[4]), sys.argv[5] != "0"
PROFILE_SORT = sys.argv[5] if profile and sys.argv[5] != "1" else "cumulative"
t0, c0 = time.perf_counter(), time.process_time()
from alert_jobs.config import load_rules
from alert_jobs.store import shared_timeline
if family == "sql_metric":
    from alert_jobs.families.sql_metric.config import SqlMetricRule as R
    from alert_jobs.families.sql_metric.run import evaluate_rule
elif family == "redis_quota":
    from alert_jobs.families.redis_quota.config import RedisQuotaTarget as R
    from alert_jobs.families.redis_quota.run import check_targets
else:
    from alert_jobs.families.score_drift.config import ScoreDriftRule as R
    from alert_jobs.families.score_drift.run import check_segments
from alert_jobs.runtime.deliver import deliver
import_s, import_cpu = time.perf_counter() - t0, time.process_time() - c0

t = time.perf_counter()
rules = load_rules(rules_file)
rule = rules.rules_of(R)[0]
rules_s = time.perf_counter() - t

def once():
    timeline = shared_timeline(url)
    if family == "sql_metric":
        evaluate_rule(rules, rule, timeline)
    elif family == "redis_quota":
        check_targets(rules, [rule], timeline)
    else:
        check_segments(rules, rule, timeline, list(rule.segments[:2]))
    deliver(rules, timeline)

if profile:
    import cProfile, io, pstats
    prof = cProfile.Profile()
    prof.enable()
t = time.perf_counter()
once()
first = time.perf_counter() - t
lines = []
if profile:
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(PROFILE_SORT).print_stats(45)
    lines = out.getvalue().splitlines()
warm = []
for _ in range(warm_reps):
    t = time.perf_counter()
    once()
    warm.append(time.perf_counter() - t)
print(json.dumps({"import_s": import_s, "import_cpu_s": import_cpu, "rules_s": rules_s,
                  "first_s": first, "warm_s": warm, "profile": lines}))
"""


def cold_start(w: Workload, warm_reps: int = WARM_REPS, profile: bool = False,
               processes: int = COLD_PROCESSES) -> ColdResult:
    """First evaluation (one rule / target, two segments; plus delivery) in a new
    process, after the imports, against the median of the next ``warm_reps``; repeated
    in ``processes`` fresh processes (medians of each figure; the ratio is the median of
    the per-process ratios, as first and warm of one process share its conditions)."""
    outs = []
    for i in range(processes):
        done = subprocess.run(
            [sys.executable, "-c", COLD_CHILD, w.family, str(w.rules_file), w.timeline_url,
             str(warm_reps), "1" if profile and i == 0 else "0"],
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=w.env(),
            cwd=CODE_TREE, check=False)
        if done.returncode != 0:
            raise BenchmarkError(f"cold-start child failed: {done.stderr[-3000:]}")
        outs.append(json.loads(done.stdout.strip().splitlines()[-1]))

    def med(key: str) -> float:
        return statistics.median(o[key] for o in outs)

    return ColdResult(w.family, w.backend, med("import_s"), med("import_cpu_s"), med("rules_s"),
                      [o["first_s"] for o in outs],
                      [statistics.median(o["warm_s"]) if o["warm_s"] else 0.0 for o in outs],
                      outs[0]["profile"])


def prime(w: Workload) -> None:
    """One untimed evaluation in its own process: the timeline holds the rule's state
    (and the schema is there) before the cold-start process opens it."""
    cold_start(w, warm_reps=0, processes=1)


# ----- running and reporting ----------------------------------------------------------


def run(quick: bool = False, families: tuple[str, ...] = FAMILIES,
        backends: tuple[str, ...] = ("sqlite", "postgresql"), baseline_reps: int = BASELINE_REPS,
        sample_runs: int = SAMPLE_RUNS, cold_only: bool = False, profile: bool = False
        ) -> tuple[list[TickResult], list[ColdResult], dict[str, str], bool]:
    sizes = QUICK_SIZES if quick else SIZES
    ticks: list[TickResult] = []
    colds: list[ColdResult] = []
    skipped: dict[str, str] = {}
    failed = False
    pg_url = os.environ.get(TEST_DATABASE_URL_ENV)
    redis_why = redis_available(os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS))
    for backend in backends:
        if backend == "postgresql" and not pg_url:
            skipped["cost_postgresql"] = (f"${TEST_DATABASE_URL_ENV} not set: the PostgreSQL "
                                          "workloads need a PostgreSQL server")
            continue
        for family in families:
            name = f"cost_{family}_{backend}"
            if family == "redis_quota" and redis_why:
                skipped[name] = redis_why
                continue
            print(f"cost: {family} on {backend} …", file=sys.stderr, flush=True)
            try:
                with tempfile.TemporaryDirectory(prefix="alert-jobs-cost-") as tmp, \
                        workload(family, backend, sizes[family], Path(tmp), pg_url) as w:
                    if not cold_only:
                        ticks.append(bench_tick(w, baseline_reps, sample_runs))
                    prime(w)
                    colds.append(cold_start(w, profile=profile))
            except sa.exc.OperationalError as exc:
                skipped[name] = f"cannot connect: {str(exc.orig or exc).splitlines()[0]}"
                failed = True
            except BenchmarkError as exc:
                skipped[name] = f"FAILED: {str(exc)[:2000]}"
                failed = True
    return ticks, colds, skipped, failed


def _secs(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _pf(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def format_table(ticks: list[TickResult], colds: list[ColdResult],
                 skipped: dict[str, str]) -> str:
    lines: list[str] = []
    if ticks:
        header = ("cost: one schedule tick", "runs/tick", "tick wall", "tick CPU", "CPU/rule",
                  "single-rule run CPU", "less CPU/rule", "peak RSS", "targets")
        rows = [header]
        for t in ticks:
            mark = "*" if t.extrapolated else ""
            ok = t.targets()
            rows.append((
                f"{t.units:,} {t.unit_name} [{t.family}, {t.backend}]", f"{t.runs_per_tick:,}",
                _secs(t.tick_wall_s) + mark, _secs(t.tick_cpu_s) + mark,
                _secs(t.cpu_per_unit), _secs(t.baseline_cpu), f"{t.cpu_ratio:,.1f}x",
                f"{t.tick_maxrss_mb:,.0f} MB",
                f"CPU {_pf(ok['cpu_per_rule'])}, wall {_pf(ok['tick_wall'])}, "
                f"RSS {_pf(ok['peak_rss'])}"))
        lines += aligned_table(rows, {1, 2, 3, 4, 5, 6, 7})
        lines.append(f"targets: ≥{TARGET_CPU_RATIO:.0f}x less CPU per rule than the single-rule "
                     f"run (median of its runs, same benchmark); tick wall < {TARGET_TICK_S:.0f} s"
                     f" on {CORES} cores; peak RSS < {TARGET_RSS_MB:.0f} MB (largest process)")
        if any(t.extrapolated for t in ticks):
            lines.append("* extrapolated: a sample of the tick's runs measured (spread "
                         "evenly); CPU = sum × runs/measured, wall = mean × runs / "
                         f"{CORES} cores (the runs sharing both cores perfectly)")
        for t in ticks:
            lines.append(f"  {t.family}/{t.backend}: {t.schedules} schedule(s) on the tick "
                         f"({t.how}), {t.measured_runs} run(s) measured; evaluations seen "
                         f"{t.evaluations}; single-rule run wall "
                         f"{_secs(statistics.median(t.baseline_wall_s))}, peak RSS "
                         f"{t.baseline_maxrss_mb:,.0f} MB")
    for t in ticks:
        if t.floor is None:
            continue
        f = t.floor_json()["dagster_alone"]
        lines.append(
            f"  Dagster alone ({t.family}/{t.backend}: {t.units:,} assets and checks, nothing "
            f"evaluated): tick {_secs(f['tick_cpu_s'])} CPU, {_secs(f['tick_wall_s'])} wall, "
            f"{_secs(f['cpu_per_unit_s'])} per rule = {f['cpu_ratio']:,.1f}x less than its "
            f"single-asset run ({_secs(f['single_cpu_s'])}); that is "
            f"{f['share_of_tick_cpu']:.0%} of the tick's CPU; alert-jobs' own share "
            f"{_secs(f['alert_jobs_cpu_per_unit_s'])} per rule")
    if colds:
        lines.append("")
        header = ("cold start", "import", "load rules", "first evaluation", "warm (median)",
                  "first/warm", "target ≤1.5x")
        rows = [header] + [(f"{c.family} [{c.backend}]",
                            f"{_secs(c.import_s)} ({_secs(c.import_cpu_s)} CPU)",
                            _secs(c.rules_s),
                            _secs(c.first), _secs(c.warm), f"{c.ratio:.2f}x",
                            _pf(c.ratio <= TARGET_COLD_RATIO)) for c in colds]
        lines += aligned_table(rows, {1, 2, 3, 4, 5})
        lines.append("cold start: a fresh process imports the family's run module and loads "
                     "the rules (each timed alone), then evaluates once (one rule / target, "
                     f"two segments; + delivery), then {WARM_REPS} more; medians of "
                     f"{COLD_PROCESSES} processes (ratio: median of the per-process ratios)")
    for name, why in skipped.items():
        lines.append(f"{name}: skipped ({why})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--discover"]:  # the child of discover_tick
        print(json.dumps(_discover(*argv[1:4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 / 20 / 20 (a smoke test)")
    parser.add_argument("--family", action="append", choices=FAMILIES,
                        help="only this family (repeatable)")
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--baseline-reps", type=int, default=BASELINE_REPS)
    parser.add_argument("--sample-runs", type=int, default=SAMPLE_RUNS)
    parser.add_argument("--cold-only", action="store_true", help="only the cold-start part")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of each first evaluation")
    parser.add_argument("--code-tree", type=Path, default=ROOT,
                        help="run the Dagster runs and the cold start on the alert_jobs of "
                             "another checkout (e.g. `git worktree add /tmp/before main`)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    global CODE_TREE
    CODE_TREE = args.code_tree.resolve()
    started = time.perf_counter()
    ticks, colds, skipped, failed = run(
        args.quick, tuple(args.family or FAMILIES), tuple(args.backend or ("sqlite",
                                                                           "postgresql")),
        args.baseline_reps, args.sample_runs, args.cold_only, args.profile)
    print(format_table(ticks, colds, skipped))
    if args.profile:
        for c in colds:
            print(f"\n--- first evaluation, {c.family} [{c.backend}] ---")
            print("\n".join(c.profile))
    report = {**metadata(), "quick": args.quick, "elapsed_s": time.perf_counter() - started,
              "results": results_json(ticks, colds), "skipped": skipped}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output} ({report['elapsed_s']:.0f} s)")
    return 1 if failed else 0


def results_json(ticks: list[TickResult], colds: list[ColdResult]) -> list[dict[str, Any]]:
    return [*(t.as_json() for t in ticks),
            *({k: v for k, v in c.as_json().items() if k != "profile"} for c in colds)]



if __name__ == "__main__":
    sys.exit(main())
