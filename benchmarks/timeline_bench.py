"""What one alert decision costs: the pure engine in memory, and the SQL timeline.

Every figure is a median over repetitions, set against a named baseline measured in
the same run (same process, same database), and reported as a cost ratio: how many
baseline operations one measured operation costs. Absolute rates move with the
machine; the ratios are what to compare between runs and commits.

1. ``engine.evaluate`` re-evaluating a firing alert that needs no notification,
   against ``dataclasses.replace`` of an ``AlertRecord`` (the least any state
   update costs).
2. ``timeline.alerts.process`` over a fixed workload (1,000 evaluations of 100
   fingerprints, a mix of ok and alert) on SQLite, and on PostgreSQL when
   ``$TEST_DATABASE_URL`` is set, against a "bare write transaction": one
   transaction per evaluation that only INSERTs one row into a scratch table.
3. Memory during the timeline runs: growth of the process's peak RSS
   (``getrusage``; a high-water mark, so a later backend only shows growth beyond an
   earlier one), and the ``tracemalloc`` peak of one extra, untimed, shorter run.

No timing is asserted; the benchmark only fails if the workload itself misbehaves
(for example a run that decides differently from the others).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alert_jobs.core.engine import RulePolicy, evaluate
from alert_jobs.core.model import AlertRecord, AlertState, Observation, Severity, Status
from alert_jobs.store import Timeline, make_engine, safe_url, schema

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "latest.json"

ENGINE_CALLS = 20_000
ENGINE_REPS = 5
# Within a repetition, measured and baseline run in alternating blocks (20 x 1,000 calls
# for the engine, one round over the fingerprints for the timeline).
INTERLEAVE_BLOCKS = 20
TIMELINE_EVALUATIONS = 1_000
TIMELINE_FINGERPRINTS = 100
TIMELINE_REPS = 3
TIMELINE_WARMUP = 100
# tracemalloc slows Python ~3x, so its (untimed) run covers the first rounds only: every
# alert row gets created, then updated; enough to see the per-decision working set.
TRACEMALLOC_EVALUATIONS = 300
# Each fingerprint is a two-state Markov chain: ok turns bad with P_FIRE, bad turns
# good with P_CLEAR, so about a quarter of evaluations are "alert" and the workload
# holds first notifications, silent re-evaluations, resolves and plain oks.
P_FIRE = 0.1
P_CLEAR = 0.3
SEED = 20250101
T0 = datetime(2025, 1, 1, tzinfo=UTC)
RULE = "bench_late_rows"
RUN_ID = "bench-run"
MESSAGE = {"title": "late rows", "body": "rows arrived late", "severity": "warning"}

_scratch_metadata = sa.MetaData()
SCRATCH = sa.Table(
    "bench_scratch",
    _scratch_metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("at", schema.UTCDateTime, nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("value", sa.Float),
)
_TIMELINE_DATA_TABLES = [schema.outbox, schema.events, schema.evaluations, schema.alerts,
                         schema.silences, schema.rule_settings, schema.notify_queue,
                         schema.groups]


class BenchmarkError(RuntimeError):
    """The workload did not behave as designed; the timings would be meaningless."""


# ----- results -------------------------------------------------------------------


@dataclass
class Comparison:
    """A measured operation and its same-run baseline, both as per-repetition seconds."""

    name: str
    backend: str
    ops: int
    seconds: list[float]
    baseline: str
    baseline_ops: int
    baseline_seconds: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_op(self) -> float:
        return statistics.median(self.seconds) / self.ops

    @property
    def baseline_per_op(self) -> float:
        return statistics.median(self.baseline_seconds) / self.baseline_ops

    @property
    def paired_ratios(self) -> list[float]:
        """Per repetition: measured cost per op / baseline cost per op, run interleaved."""
        return [(m / self.ops) / (b / self.baseline_ops)
                for m, b in zip(self.seconds, self.baseline_seconds, strict=True)]

    @property
    def ratio(self) -> float:
        """How many baseline operations one measured operation costs (median of pairs)."""
        return statistics.median(self.paired_ratios)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "ops_per_repetition": self.ops,
            "repetitions_s": self.seconds,
            "median_ops_per_s": 1 / self.per_op,
            "median_us_per_op": self.per_op * 1e6,
            "spread": _spread(self.seconds),
            "baseline": {
                "name": self.baseline,
                "ops_per_repetition": self.baseline_ops,
                "repetitions_s": self.baseline_seconds,
                "median_ops_per_s": 1 / self.baseline_per_op,
                "median_us_per_op": self.baseline_per_op * 1e6,
                "spread": _spread(self.baseline_seconds),
            },
            "cost_ratio": self.ratio,
            "cost_ratio_per_repetition": self.paired_ratios,
            "cost_ratio_of_medians": self.per_op / self.baseline_per_op,
            "cost_ratio_meaning": f"one '{self.name}' costs this many '{self.baseline}'",
            **self.extra,
        }


def _spread(samples: list[float]) -> float:
    """(max - min) / median: how noisy the repetitions were."""
    return (max(samples) - min(samples)) / statistics.median(samples)


# ----- 1. the pure engine --------------------------------------------------------


def _firing_case() -> tuple[Observation, AlertRecord, RulePolicy, datetime]:
    """A firing, already-notified alert seen bad again well inside repeat_interval."""
    policy = RulePolicy(rule=RULE, severity=Severity.CRITICAL, repeat_interval=timedelta(hours=4),
                        receivers=("console",))
    labels = {"shard": "007", "team": "data"}
    now = T0 + timedelta(hours=1)
    prior = AlertRecord.new(RULE, labels).evolve(
        state=AlertState.FIRING, severity=Severity.CRITICAL, episode=1, active_since=T0,
        fired_at=T0, last_notified_at=T0, notified_firing=True, notify_seq=1,
        last_status=Status.ALERT, last_value=1200.0, last_summary="1,200 late rows",
        last_eval_at=now - timedelta(minutes=1),
    )
    obs = Observation(RULE, Status.ALERT, labels, value=1234.0, summary="1,234 late rows",
                      expected="to be 0", seen="1,234", window="1h")
    decision = evaluate(obs, prior, policy, now)
    if (decision.record.state != AlertState.FIRING or decision.notifications
            or decision.events or decision.muted_by):
        raise BenchmarkError(f"engine case is not a silent re-evaluation: {decision.describe()}")
    return obs, prior, policy, now


def _time_evaluate(n: int, obs: Observation, prior: AlertRecord, policy: RulePolicy,
                   now: datetime) -> float:
    start = time.perf_counter()
    for _ in range(n):
        evaluate(obs, prior, policy, now)
    return time.perf_counter() - start


def _time_replace(n: int, prior: AlertRecord, now: datetime) -> float:
    start = time.perf_counter()
    for _ in range(n):
        replace(prior, last_eval_at=now)
    return time.perf_counter() - start


def bench_engine() -> Comparison:
    obs, prior, policy, now = _firing_case()
    _time_evaluate(ENGINE_CALLS // 10, obs, prior, policy, now)  # warm-up
    _time_replace(ENGINE_CALLS // 10, prior, now)
    block = ENGINE_CALLS // INTERLEAVE_BLOCKS
    measured: list[float] = []
    baseline: list[float] = []
    for _ in range(ENGINE_REPS):
        gc.collect()
        m = b = 0.0
        for i in range(INTERLEAVE_BLOCKS):  # small alternating blocks: load changes hit both
            if i % 2:
                m += _time_evaluate(block, obs, prior, policy, now)
                b += _time_replace(block, prior, now)
            else:
                b += _time_replace(block, prior, now)
                m += _time_evaluate(block, obs, prior, policy, now)
        measured.append(m)
        baseline.append(b)
    return Comparison("engine.evaluate (firing, no notification)", "memory",
                      block * INTERLEAVE_BLOCKS, measured, "dataclasses.replace(AlertRecord)",
                      block * INTERLEAVE_BLOCKS, baseline)


# ----- 2. the SQL timeline -------------------------------------------------------


def _workload() -> list[tuple[Observation, datetime]]:
    """TIMELINE_EVALUATIONS observations in rounds over TIMELINE_FINGERPRINTS alerts."""
    rng = random.Random(SEED)
    labels = [{"shard": f"{i:03d}", "team": "data"} for i in range(TIMELINE_FINGERPRINTS)]
    bad = [rng.random() < 0.2 for _ in labels]
    work: list[tuple[Observation, datetime]] = []
    for i in range(TIMELINE_EVALUATIONS):
        k = i % TIMELINE_FINGERPRINTS
        if i >= TIMELINE_FINGERPRINTS:
            flip = P_CLEAR if bad[k] else P_FIRE
            bad[k] = bad[k] != (rng.random() < flip)
        value = float(rng.randint(1, 5000)) if bad[k] else 0.0
        obs = Observation(
            RULE, Status.ALERT if bad[k] else Status.OK, labels[k], value=value,
            summary=f"{value:,.0f} late rows", expected="to be 0", seen=f"{value:,.0f}",
            window="1h", details={"query_ms": 12},
        )
        now = T0 + timedelta(minutes=i // TIMELINE_FINGERPRINTS, milliseconds=k)
        work.append((obs, now))
    return work


def _policy() -> RulePolicy:
    return RulePolicy(rule=RULE, severity=Severity.WARNING, repeat_interval=timedelta(hours=4),
                      receivers=("console",))


def _reset(timeline: Timeline) -> None:
    """Empty the timeline and scratch tables (untimed) so every run starts alike."""
    tables = [*_TIMELINE_DATA_TABLES, SCRATCH]
    with timeline.engine.begin() as conn:
        if timeline.dialect == "postgresql":
            conn.execute(sa.text("TRUNCATE " + ", ".join(t.name for t in tables)))
        else:
            for table in tables:
                conn.execute(table.delete())
    if timeline.dialect == "sqlite":
        raw = timeline.engine.raw_connection()  # autocommit: the WAL checkpoint needs no tx
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    gc.collect()


def _time_bare_writes(engine: sa.Engine, rows: list[dict[str, Any]]) -> float:
    insert = SCRATCH.insert()
    start = time.perf_counter()
    for row in rows:
        with engine.begin() as conn:
            conn.execute(insert, row)
    return time.perf_counter() - start


@dataclass
class _RunStats:
    """Accumulated over the blocks of one repetition."""

    seconds: float = 0.0
    events: int = 0
    outbox_rows: int = 0
    states: dict[str, int] = field(default_factory=dict)


def _time_process(timeline: Timeline, work: list[tuple[Observation, datetime]],
                  policy: RulePolicy, stats: _RunStats) -> None:
    # Tallying inline (microseconds) keeps no results alive, so tracemalloc sees only
    # what process() itself holds.
    start = time.perf_counter()
    for obs, now in work:
        result = timeline.alerts.process(obs, policy, now=now, run_id=RUN_ID, message=MESSAGE)
        stats.events += len(result.decision.events)
        stats.outbox_rows += len(result.outbox_ids)
        state = str(result.decision.record.state)
        stats.states[state] = stats.states.get(state, 0) + 1
    stats.seconds += time.perf_counter() - start


def _count_statements(timeline: Timeline, work: list[tuple[Observation, datetime]],
                      policy: RulePolicy) -> float:
    """Statements per decision over the workload (untimed: a listener costs time)."""
    _reset(timeline)
    count = [0]

    def seen(*_: Any) -> None:
        count[0] += 1

    sa.event.listen(timeline.engine, "before_cursor_execute", seen)
    try:
        _time_process(timeline, work, policy, _RunStats())
    finally:
        sa.event.remove(timeline.engine, "before_cursor_execute", seen)
    return count[0] / len(work)


def _maxrss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def bench_timeline(url: str, backend: str) -> Comparison:
    """timeline.alerts.process vs bare write transactions, on the database at ``url``."""
    work = _workload()
    policy = _policy()
    scratch_rows = [{"at": now, "fingerprint": obs.fingerprint, "value": obs.value}
                    for obs, now in work]
    rss_before = _maxrss_mib()
    timeline = Timeline(url)
    try:
        timeline.upgrade()
        with timeline.engine.begin() as conn:
            SCRATCH.create(conn, checkfirst=True)
        server = _server_facts(timeline)

        _reset(timeline)  # warm-up: connection pool, statement caches, the file itself
        _time_process(timeline, work[:TIMELINE_WARMUP], policy, _RunStats())
        _time_bare_writes(timeline.engine, scratch_rows[:TIMELINE_WARMUP])

        runs: list[_RunStats] = []
        baseline: list[float] = []
        for _ in range(TIMELINE_REPS):
            _reset(timeline)
            run = _RunStats()
            bare = 0.0
            # One block per round over the fingerprints, process and bare writes
            # alternating, so a burst of load elsewhere on the machine hits both.
            for i, start in enumerate(range(0, len(work), TIMELINE_FINGERPRINTS)):
                stop = start + TIMELINE_FINGERPRINTS
                if i % 2:
                    _time_process(timeline, work[start:stop], policy, run)
                    bare += _time_bare_writes(timeline.engine, scratch_rows[start:stop])
                else:
                    bare += _time_bare_writes(timeline.engine, scratch_rows[start:stop])
                    _time_process(timeline, work[start:stop], policy, run)
            runs.append(run)
            baseline.append(bare)
        rss_after = _maxrss_mib()

        first = runs[0]
        for run in runs[1:]:
            if (run.events, run.outbox_rows, run.states) != (
                    first.events, first.outbox_rows, first.states):
                raise BenchmarkError(f"{backend}: runs decided differently: {runs}")

        statements = _count_statements(timeline, work, policy)

        _reset(timeline)  # one more run, untimed, under tracemalloc
        tracemalloc.start()
        try:
            _time_process(timeline, work[:TRACEMALLOC_EVALUATIONS], policy, _RunStats())
            _, traced_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        with timeline.engine.begin() as conn:
            SCRATCH.drop(conn, checkfirst=True)
    finally:
        timeline.dispose()

    extra = {
        "database": safe_url(url),
        "workload": {
            "evaluations": TIMELINE_EVALUATIONS,
            "fingerprints": TIMELINE_FINGERPRINTS,
            "alert_evaluations": sum(o.status == Status.ALERT for o, _ in work),
            "events_per_run": first.events,
            "outbox_rows_per_run": first.outbox_rows,
            "state_after_counts": first.states,
        },
        "memory": {
            "maxrss_growth_mib": rss_after - rss_before,
            "maxrss_before_mib": rss_before,
            "maxrss_after_mib": rss_after,
            "tracemalloc_peak_mib": traced_peak / (1024 * 1024),
            "tracemalloc_evaluations": TRACEMALLOC_EVALUATIONS,
        },
        "server": server,
        # SQL statements sent per decision (SQLite's count includes its BEGIN IMMEDIATE;
        # COMMIT is not a statement here), from one more untimed run
        "statements_per_decision": statements,
    }
    return Comparison(f"timeline.alerts.process [{backend}]", backend, TIMELINE_EVALUATIONS,
                      [r.seconds for r in runs], "bare write transaction", len(scratch_rows),
                      baseline, extra)


def _server_facts(timeline: Timeline) -> dict[str, Any]:
    """Settings that change what a commit costs, recorded next to the figures."""
    with timeline.engine.connect() as conn:
        if timeline.dialect == "postgresql":
            facts = {name: conn.execute(sa.text(f"SHOW {name}")).scalar()
                     for name in ("server_version", "synchronous_commit", "fsync")}
            facts["search_path"] = conn.execute(sa.text("SHOW search_path")).scalar()
            return facts
        if timeline.dialect == "sqlite":
            return {
                "sqlite_version": conn.execute(sa.text("SELECT sqlite_version()")).scalar(),
                "journal_mode": conn.execute(sa.text("PRAGMA journal_mode")).scalar(),
                "synchronous": conn.execute(sa.text("PRAGMA synchronous")).scalar(),
            }
    return {}


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A throwaway SQLite file (plus its WAL) in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="alert-jobs-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A fresh ``bench_<random>`` schema, dropped at the end; yields a URL that uses it.

    The schema is selected with ``options=-csearch_path=…`` so the timeline's tables are
    created there and nothing in ``public`` (or anyone else's schema) is touched.
    """
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        try:
            bench_url = _with_search_path(url, name)
            probe = make_engine(bench_url)
            try:
                with probe.connect() as conn:
                    current = conn.execute(sa.text("SELECT current_schema()")).scalar()
            finally:
                probe.dispose()
            if current != name:
                raise BenchmarkError(f"search_path did not select {name} (got {current!r})")
            yield bench_url
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()


def _with_search_path(url: str, schema_name: str) -> str:
    parsed = sa.make_url(url)
    options = parsed.query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    option = f"-csearch_path={schema_name}"
    merged = f"{options} {option}" if options else option
    return parsed.update_query_dict({"options": merged}).render_as_string(hide_password=False)


# ----- report --------------------------------------------------------------------


def _rate(per_op: float) -> str:
    return f"{1 / per_op:,.0f}/s"


def _us(per_op: float) -> str:
    return f"{per_op * 1e6:,.1f} µs"


def aligned_table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows as aligned text columns (``right``: right-aligned column indexes), with a
    dashed rule under the first row, the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    return [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]


def format_table(results: list[Comparison], skipped: dict[str, str]) -> str:
    header = ("benchmark", "median", "per op", "spread", "baseline (same run)", "median",
              "per op", "cost ratio")
    rows = [header]
    for c in results:
        rows.append((c.name, _rate(c.per_op), _us(c.per_op), f"{_spread(c.seconds):.0%}",
                     c.baseline, _rate(c.baseline_per_op), _us(c.baseline_per_op),
                     f"{c.ratio:.2f}x"))
    out = aligned_table(rows, {1, 2, 3, 5, 6, 7})
    out.append("")
    out.append("cost ratio = time per op / time per baseline op, median over repetitions; "
               "both run interleaved in small blocks")
    out.append("  (e.g. 12x: one decision costs as much as 12 bare write transactions)")
    out.append(f"engine: median of {ENGINE_REPS} x {ENGINE_CALLS:,} calls; timeline: median of "
               f"{TIMELINE_REPS} x {TIMELINE_EVALUATIONS:,} evaluations over "
               f"{TIMELINE_FINGERPRINTS} fingerprints")
    for c in results:
        mem = c.extra.get("memory")
        if not mem:
            continue
        wl = c.extra["workload"]
        out.append(
            f"{c.name}: peak RSS +{mem['maxrss_growth_mib']:.1f} MiB "
            f"(process high-water mark, now {mem['maxrss_after_mib']:.0f} MiB), "
            f"tracemalloc peak {mem['tracemalloc_peak_mib']:.2f} MiB "
            f"(over {mem['tracemalloc_evaluations']} evaluations); per run "
            f"{wl['alert_evaluations']} alert evaluations, {wl['events_per_run']} events, "
            f"{wl['outbox_rows_per_run']} outbox rows; "
            f"{c.extra['statements_per_decision']:.2f} SQL statements per decision"
        )
    for backend, why in skipped.items():
        out.append(f"{backend}: skipped ({why})")
    return "\n".join(out)


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=5,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def metadata() -> dict[str, Any]:
    versions: dict[str, str] = {"sqlalchemy": sa.__version__}
    try:
        import psycopg

        versions["psycopg"] = psycopg.__version__
    except ImportError:
        pass
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "parameters": {
            "engine_calls": ENGINE_CALLS, "engine_repetitions": ENGINE_REPS,
            "timeline_evaluations": TIMELINE_EVALUATIONS,
            "timeline_fingerprints": TIMELINE_FINGERPRINTS,
            "timeline_repetitions": TIMELINE_REPS, "timeline_warmup": TIMELINE_WARMUP,
            "tracemalloc_evaluations": TRACEMALLOC_EVALUATIONS,
            "p_fire": P_FIRE, "p_clear": P_CLEAR, "seed": SEED,
        },
    }


def run() -> tuple[list[Comparison], dict[str, str], bool]:
    """Run the engine and timeline benchmarks: (results, skipped backends, failed)."""
    results: list[Comparison] = []
    skipped: dict[str, str] = {}
    failed = False

    def step(label: str, run: Callable[[], Comparison]) -> None:
        print(f"running {label} …", file=sys.stderr, flush=True)
        results.append(run())

    step("engine.evaluate", bench_engine)
    with sqlite_database() as url:
        step("timeline.alerts.process on SQLite", lambda: bench_timeline(url, "sqlite"))

    pg_url = os.environ.get(TEST_DATABASE_URL_ENV)
    if not pg_url:
        skipped["postgresql"] = f"${TEST_DATABASE_URL_ENV} not set"
    else:
        try:
            with postgres_database(pg_url) as url:
                step(f"timeline.alerts.process on PostgreSQL ({safe_url(pg_url)})",
                     lambda: bench_timeline(url, "postgresql"))
        except sa.exc.OperationalError as exc:
            skipped["postgresql"] = f"cannot connect to {safe_url(pg_url)}: {exc.orig or exc}"
            failed = True
    return results, skipped, failed


def write_results(report: dict[str, Any]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")


def main() -> int:
    """The timeline benchmarks alone (``python -m benchmarks`` runs them all)."""
    started = time.perf_counter()
    results, skipped, failed = run()
    print(format_table(results, skipped))
    report = {**metadata(), "elapsed_s": time.perf_counter() - started,
              "results": [c.as_json() for c in results], "skipped": skipped}
    write_results(report)
    print(f"\nwrote {RESULTS_FILE} ({report['elapsed_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
