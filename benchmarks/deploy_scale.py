"""Scale on paper (issue #18): what 1,000 ``sql_metric`` rules cost a PostgreSQL timeline.

``deploy/README.md`` states rules per run, runs per minute, timeline rows per day and
PostgreSQL size per month; this benchmark is where those figures come from. It runs the
batch path a scheduled run runs, without Dagster around it: one batch of ``--rules``
rules, ``evaluate_batch(rules, batch, timeline, now=…, run_id=…)`` and then
``deliver(rules, timeline, run_id=…, raised_by=…)`` (what ``sql_metric``'s multi-asset
and ``deliver_in_run`` do), for ``--ticks`` simulated ticks one minute apart (``now``
advanced; every tick lies in the past, so the outbox's real-clock claim sees what each
tick queued).

* **Timeline**: a fresh database ``deploy_scale_<random>`` created on
  ``$TEST_DATABASE_URL``'s server (upgraded with alembic as ``alert-jobs db upgrade``
  does), dropped at the end.
* **Source**: ``deploy_source(k, v)`` in the same database, one row per rule; rule ``i``
  is ``SELECT v FROM deploy_source WHERE k = i`` with ``expect: {max: 100}``. Each tick
  2 % of the rules (``--flip``) start firing (``v = 500``) and the ones that fired on the
  previous tick resolve: about 2 % firing and 2 % resolving per tick, each with its
  notification (console receiver, its log muted) through the outbox.
* **Baseline (same run)**: the same rules, source and ticks with the timeline in a
  SQLite file (the embedded default), the two interleaved tick by tick (order
  alternating), so load elsewhere hits both. Ratio: median over ticks of PostgreSQL ÷
  SQLite evaluation wall time (and CPU).
* **Measured per tick**: wall and CPU seconds (``time.process_time``: this process and
  its threads) of the evaluation and of the delivery; the local PostgreSQL server's CPU
  over both (its processes and reaped backends, via ``psutil``; the whole server, so
  other clients count too; the timeline's writes and the rules' source queries are its
  work); rows added per timeline table (``count(*)`` before and after); and on
  PostgreSQL ``pg_total_relation_size`` of every timeline table (heap, indexes, TOAST).
  A first, untimed tick creates every rule's alert state (a deployment does that once).
* **Extrapolated** (medians of the measured ticks): rows per day at 1- and 5-minute
  cadences, and PostgreSQL MB per month (30 days) from the measured growth per tick of
  the tables whose row count grows (``pg_total_relation_size`` after the last tick minus
  after the warm-up, ÷ ticks); tables that only get UPDATEs (alert state) are bounded by
  the number of rules once autovacuum reuses their dead rows, and reported apart.
  Runs per minute: one run per batch per tick.
* **Dagster's own cost per run** (not in ``--quick``; ``--no-dagster`` skips it): after
  the ticks, the same batch once as Dagster runs it, ``dagster job execute -m
  alert_jobs.definitions -j sql_metric_every_minute_job`` in a new process (measured like
  ``benchmarks.cost_bench`` does, by its stdlib launcher: wall, CPU of the process tree,
  peak RSS), against the same PostgreSQL timeline, twice: with ``deploy/dagster.yaml``'s
  PostgreSQL instance storage (another fresh database) and with a SQLite instance (the
  embedded default). The run's CPU minus the bare evaluation's is what Dagster adds per
  run; the whole server's CPU is beside it (other clients count too), and, attributable
  to the run's databases, ``pg_stat_database``'s sessions opened, statement time and
  commits (dagster-postgres opens a connection per storage operation). The figures of
  ``benchmarks.cost_bench`` and ``benchmarks.daemon_bench`` are added from
  ``results/cost.json`` / ``results/daemon.json`` when present, else quoted
  from the README's "Measured cost" (named in the report).

``--quick`` (100 rules, 3 ticks) is the smoke test ``tests/test_deploy_files.py`` runs.
Writes ``results/deploy_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from benchmarks.timeline_bench import TEST_DATABASE_URL_ENV, BenchmarkError, aligned_table, metadata

RULES = 1000
TICKS = 20
QUICK_RULES = 100
QUICK_TICKS = 3
FLIP = 0.02  # share of the rules that start firing each tick (the previous tick's resolve)
FIRING_VALUE = 500
LIMIT = 100
CADENCES_MIN = (1, 5)
MINUTES_PER_DAY = 24 * 60
DAYS_PER_MONTH = 30
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "deploy_scale.json"
ROOT = Path(__file__).resolve().parent.parent
JOB = "sql_metric_every_minute_job"  # the batch of '* * * * *' in UTC
STATS_FLUSH_S = 1.5  # backends report to pg_stat_database at least once a second
COST_RESULTS = Path(__file__).resolve().parent / "results" / "cost.json"
DAEMON_RESULTS = Path(__file__).resolve().parent / "results" / "daemon.json"
# benchmarks.cost_bench and daemon_bench as the top-level README reports them (2 cores,
# SQLite instance storage, 2026-11-29); used when their results files are absent.
README_DAGSTER = {
    "source": "README.md 'Measured cost' (python -m benchmarks.cost_bench / daemon_bench, "
              "2026-11-29, 2 cores, SQLite instance storage)",
    "one_run_1000_rules_wall_s": 177.0,
    "one_run_1000_rules_cpu_per_rule_s": 0.159,
    "single_rule_run_cpu_s": 9.7,
    "daemon_200_rules_run_wall_median_s": 18.0,
    "daemon_200_rules_cpu_s_per_minute": 39.0,
}


@dataclass
class TickFigures:
    backend: str
    tick: int
    eval_wall_s: float
    eval_cpu_s: float
    deliver_wall_s: float
    deliver_cpu_s: float
    server_cpu_s: float | None  # the PostgreSQL server's, evaluation + delivery
    rows_added: dict[str, int]
    size_bytes_added: int | None  # PostgreSQL only: all timeline tables
    firing: int  # alert instances firing after the tick
    sent: int  # notifications delivered in the tick


@dataclass
class BackendResult:
    backend: str
    rules: int
    ticks: list[TickFigures] = field(default_factory=list)
    start_rows: dict[str, int] = field(default_factory=dict)  # after the warm-up tick
    start_bytes: dict[str, int] = field(default_factory=dict)  # PostgreSQL only
    final_rows: dict[str, int] = field(default_factory=dict)
    final_bytes: dict[str, int] = field(default_factory=dict)  # PostgreSQL only

    def median(self, name: str) -> float:
        return statistics.median(getattr(t, name) for t in self.ticks)

    def rows_per_tick(self) -> dict[str, float]:
        tables = sorted({k for t in self.ticks for k in t.rows_added})
        return {k: statistics.median(t.rows_added.get(k, 0) for t in self.ticks)
                for k in tables}

    def growing(self) -> list[str]:
        """Tables whose row count grows tick by tick (the others hold state: UPDATEs)."""
        return [k for k, n in self.rows_per_tick().items() if n > 0]

    def bytes_per_row(self) -> dict[str, float]:
        """Marginal bytes per added row over the measured ticks (heap, indexes, TOAST)."""
        return {k: (self.final_bytes[k] - self.start_bytes[k])
                / (self.final_rows[k] - self.start_rows[k]) for k in self.growing()
                if self.final_rows[k] > self.start_rows[k] and k in self.final_bytes}

    def growth_bytes_per_tick(self, tables: list[str] | None = None) -> float:
        """Measured size growth per tick of ``tables`` (default: the growing ones)."""
        chosen = self.growing() if tables is None else tables
        return sum(self.final_bytes[k] - self.start_bytes[k] for k in chosen
                   if k in self.final_bytes) / max(1, len(self.ticks))

    def as_json(self) -> dict[str, Any]:
        rows_tick = self.rows_per_tick()
        rows_total = sum(rows_tick.values())
        servers = [t.server_cpu_s for t in self.ticks if t.server_cpu_s is not None]
        out: dict[str, Any] = {
            "name": f"deploy scale: one tick of {self.rules:,} sql_metric rules, one batch "
                    f"[{self.backend} timeline]",
            "backend": self.backend, "rules": self.rules, "ticks_measured": len(self.ticks),
            "eval_wall_s_median": self.median("eval_wall_s"),
            "eval_cpu_s_median": self.median("eval_cpu_s"),
            "deliver_wall_s_median": self.median("deliver_wall_s"),
            "deliver_cpu_s_median": self.median("deliver_cpu_s"),
            "server_cpu_s_median": statistics.median(servers) if servers else None,
            "notifications_per_tick_median": self.median("sent"),
            "rows_per_tick": rows_tick, "rows_per_tick_total": rows_total,
            "rows_per_day": {f"{c}min": rows_total * MINUTES_PER_DAY / c for c in CADENCES_MIN},
            "runs_per_minute": {f"{c}min": 1 / c for c in CADENCES_MIN},
            "final_rows": self.final_rows,
            "ticks": [asdict(t) for t in self.ticks],
        }
        if self.final_bytes:
            growth = self.growth_bytes_per_tick()
            sizes = [t.size_bytes_added for t in self.ticks if t.size_bytes_added is not None]
            out.update({
                "final_bytes": self.final_bytes,
                "bytes_per_row": self.bytes_per_row(),
                "size_bytes_added_per_tick_median": statistics.median(sizes) if sizes else None,
                "growth_bytes_per_tick": growth,
                "growth_bytes_per_tick_all_tables": self.growth_bytes_per_tick(
                    sorted(self.final_bytes)),
                "mb_per_month": {f"{c}min": growth * MINUTES_PER_DAY / c * DAYS_PER_MONTH / 2**20
                                 for c in CADENCES_MIN},
            })
        return out


# ----- the workload -------------------------------------------------------------------


def rules_yaml(n: int, source_url: str) -> str:
    lines = ["version: 1",
             "defaults: {receivers: [console], timezone: UTC, schedule: '* * * * *'}",
             "receivers: [{name: console, type: console}]", "checks:", "  sql_metric:"]
    for i in range(n):
        lines.append(f"    - {{name: r{i:04d}, database: '{source_url}', "
                     f"query: 'SELECT v FROM deploy_source WHERE k = {i}', "
                     f"expect: {{max: {LIMIT}}}}}")
    return "\n".join(lines) + "\n"


def flips(n: int, tick: int) -> list[int]:
    """The rules that fire on ``tick`` (a rotating window of ``FLIP`` × n rules)."""
    k = max(1, round(n * FLIP))
    return [(tick * k + j) % n for j in range(k)]


def write_source(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS deploy_source")
        conn.exec_driver_sql("CREATE TABLE deploy_source (k INTEGER PRIMARY KEY, v INTEGER)")
        conn.execute(sa.text("INSERT INTO deploy_source VALUES (:k, 0)"),
                     [{"k": i} for i in range(n)])


def set_tick(engine: sa.Engine, n: int, tick: int) -> None:
    """Tick ``tick``'s rules fire, the previous tick's go back to normal."""
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deploy_source SET v = 0 WHERE v <> 0")
        conn.execute(sa.text("UPDATE deploy_source SET v = :v WHERE k = :k"),
                     [{"v": FIRING_VALUE, "k": k} for k in flips(n, tick)])


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on ``server_url``'s server, dropped at the end; yields its URL."""
    name = f"deploy_scale_{uuid.uuid4().hex[:10]}"
    base = sa.make_url(server_url)
    admin = sa.create_engine(base.set(drivername="postgresql+psycopg"),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def server_cpu() -> float | None:
    """CPU seconds of the local PostgreSQL server: its live processes, plus the backends
    the postmaster has reaped (its children times). ``None`` if it cannot be read (not
    on this machine, or another user's processes)."""
    total, seen = 0.0, False
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] not in ("postgres", "postmaster"):
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:
            return None
        seen = True
        total += times.user + times.system + times.children_user + times.children_system
    return total if seen else None


def database_stats(server_url: str, databases: list[str]) -> dict[str, float]:
    """``pg_stat_database`` summed over ``databases``: sessions opened, milliseconds
    spent executing statements, commits. Attributable to us (the server CPU is not)."""
    engine = sa.create_engine(sa.make_url(server_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(sa.text(
                "SELECT coalesce(sum(sessions), 0), coalesce(sum(active_time), 0), "
                "coalesce(sum(xact_commit), 0) FROM pg_stat_database "
                "WHERE datname = ANY(:dbs)"), {"dbs": databases}).one()
    finally:
        engine.dispose()
    return {"sessions": float(row[0]), "active_time_ms": float(row[1]),
            "commits": float(row[2])}


def stats_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def timeline_tables(engine: sa.Engine) -> list[str]:
    return sorted(t for t in sa.inspect(engine).get_table_names() if t.startswith("alert_"))


def row_counts(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.exec_driver_sql(f'SELECT count(*) FROM "{t}"').scalar() or 0)
                for t in tables}


def relation_sizes(engine: sa.Engine, tables: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: int(conn.execute(sa.text("SELECT pg_total_relation_size(:t)"),
                                    {"t": t}).scalar() or 0) for t in tables}


class Backend:
    """One timeline (PostgreSQL database or SQLite file) and its measured ticks."""

    def __init__(self, name: str, url: str, rules: Any, batch: list[Any]):
        from alert_jobs.store import Timeline
        from alert_jobs.store.urls import driver_url

        self.name, self.rules, self.batch = name, rules, batch
        self.timeline = Timeline(url)
        self.timeline.upgrade()
        self.engine = sa.create_engine(driver_url(url))
        self.tables = timeline_tables(self.engine)
        if "alert_evaluations" not in self.tables:
            raise BenchmarkError(f"{name}: no alert_evaluations table after upgrade "
                                 f"({self.tables})")
        self.result = BackendResult(name, len(batch))

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def tick(self, tick: int, now: datetime, *, record: bool) -> None:
        from alert_jobs.families.sql_metric.run import evaluate_batch
        from alert_jobs.runtime.deliver import deliver

        run_id = f"deploy-scale-{self.name}-{tick:03d}"
        rows0 = row_counts(self.engine, self.tables)
        size0 = relation_sizes(self.engine, self.tables) if self.postgres else None
        if record and not self.result.ticks:
            self.result.start_rows, self.result.start_bytes = rows0, size0 or {}
        s0 = server_cpu()
        w0, c0 = time.perf_counter(), time.process_time()
        outcomes = evaluate_batch(self.rules, self.batch, self.timeline, now=now, run_id=run_id)
        w1, c1 = time.perf_counter(), time.process_time()
        report = deliver(self.rules, self.timeline, run_id=run_id, raised_by=run_id, now=now)
        w2, c2 = time.perf_counter(), time.process_time()
        s2 = server_cpu()
        errors = [o for o in outcomes if str(o.observation.status) == "error"]
        if errors:
            raise BenchmarkError(f"{self.name}: {len(errors)} rule(s) errored on tick {tick}: "
                                 f"{errors[0].observation.summary}")
        if not record:
            return
        rows1 = row_counts(self.engine, self.tables)
        size1 = relation_sizes(self.engine, self.tables) if self.postgres else None
        firing = sum(1 for o in outcomes if str(o.result.decision.record.state) == "firing")
        self.result.ticks.append(TickFigures(
            self.name, tick, w1 - w0, c1 - c0, w2 - w1, c2 - c1,
            s2 - s0 if s0 is not None and s2 is not None else None,
            {t: rows1[t] - rows0[t] for t in self.tables},
            sum(size1.values()) - sum(size0.values()) if size1 and size0 else None,
            firing, report.sent))

    def finish(self) -> BackendResult:
        self.result.final_rows = row_counts(self.engine, self.tables)
        if self.postgres:
            self.result.final_bytes = relation_sizes(self.engine, self.tables)
        self.timeline.dispose()
        self.engine.dispose()
        return self.result


def dagster_pg_url(url: str) -> str:
    """``url`` with the psycopg2 driver, which dagster-postgres needs (deploy/dagster.yaml:
    under SQLAlchemy 2.1 a bare ``postgresql://`` selects psycopg 3, on which its event
    writes fail)."""
    return sa.make_url(url).set(drivername="postgresql+psycopg2").render_as_string(
        hide_password=False)


def dagster_runs(server_url: str, timeline_url: str, rules_text: str, tmp: Path
                 ) -> dict[str, Any]:
    """The batch once as a Dagster run, per instance storage (see the module doc)."""
    from benchmarks.cost_bench import launch

    rules_file = tmp / "alerts.yaml"
    rules_file.write_text(rules_text)
    timeline_db = sa.make_url(timeline_url).database or ""
    argv = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
            "alert_jobs.definitions", "-j", JOB]
    out: dict[str, Any] = {}
    for instance in ("postgresql", "sqlite"):
        home = tmp / f"home-{instance}"
        home.mkdir()
        env = dict(os.environ, ALERT_JOBS_RULES=str(rules_file), DAGSTER_HOME=str(home),
                   ALERT_JOBS_DATABASE_URL=timeline_url, PYTHONWARNINGS="ignore")
        env.pop("ALERT_JOBS_LINK_SECRET", None)
        print(f"  one Dagster run of the batch, {instance} instance storage …",
              file=sys.stderr, flush=True)
        if instance == "postgresql":
            (home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster.yaml").read_text())
            with fresh_database(server_url) as instance_url:
                env["DAGSTER_PG_URL"] = dagster_pg_url(instance_url)
                dbs = [timeline_db, sa.make_url(instance_url).database or ""]
                d0, s0 = database_stats(server_url, dbs), server_cpu()
                measured = launch(argv, env, tmp / f"run-{instance}.log")
                s1 = server_cpu()
                time.sleep(STATS_FLUSH_S)
                stats = stats_delta(d0, database_stats(server_url, dbs))
        else:
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            d0, s0 = database_stats(server_url, [timeline_db]), server_cpu()
            measured = launch(argv, env, tmp / f"run-{instance}.log")
            s1 = server_cpu()
            time.sleep(STATS_FLUSH_S)
            stats = stats_delta(d0, database_stats(server_url, [timeline_db]))
        out[instance] = {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s,
                         "maxrss_mb": measured.maxrss_mb,
                         "server_cpu_s": s1 - s0 if s0 is not None and s1 is not None
                         else None, "database": stats}
    return out


def run(rules_n: int, ticks: int, server_url: str, *, dagster: bool = False
        ) -> tuple[list[BackendResult], dict[str, Any]]:
    from alert_jobs.config import parse_rules
    from alert_jobs.families.sql_metric.config import SqlMetricRule

    logging.getLogger("alert_jobs.console").setLevel(logging.ERROR)  # the receiver's lines
    with fresh_database(server_url) as pg_url, \
            tempfile.TemporaryDirectory(prefix="alert-jobs-deploy-scale-") as tmp:
        source = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            write_source(source, rules_n)
            text = rules_yaml(rules_n, pg_url)
            rules = parse_rules(text, "deploy-scale.yaml")
            batch = rules.rules_of(SqlMetricRule)
            backends = [Backend("postgresql", pg_url, rules, batch),
                        Backend("sqlite", f"sqlite:///{Path(tmp) / 'timeline.db'}", rules,
                                batch)]
            step = timedelta(minutes=1)
            start = datetime.now(UTC).replace(second=0, microsecond=0) - step * (ticks + 2)
            for tick in range(ticks + 1):  # tick 0: every rule's first evaluation, untimed
                set_tick(source, rules_n, tick)
                order = backends if tick % 2 == 0 else backends[::-1]
                for backend in order:
                    backend.tick(tick, start + step * tick, record=tick > 0)
                print(f"  tick {tick}/{ticks}: " + ", ".join(
                    f"{b.name} {b.result.ticks[-1].eval_wall_s:.2f} s"
                    for b in backends if tick > 0), file=sys.stderr, flush=True)
            results = [b.finish() for b in backends]
            runs = dagster_runs(server_url, pg_url, text, Path(tmp)) if dagster else {}
            return results, runs
        finally:
            source.dispose()


def dagster_overhead() -> dict[str, Any]:
    """Dagster's cost per run, from the benchmarks that measure it (see module doc)."""
    out: dict[str, Any] = {}
    if COST_RESULTS.exists():
        for entry in json.loads(COST_RESULTS.read_text()).get("results", []):
            if entry.get("family") == "sql_metric" and "tick_wall_s" in entry:
                out[f"cost_bench_{entry['backend']}"] = {
                    "source": str(COST_RESULTS.name), "rules": entry["units"],
                    "run_wall_s": entry["tick_wall_s"], "run_cpu_s": entry["tick_cpu_s"],
                    "cpu_per_rule_s": entry["cpu_per_unit_s"],
                    "single_rule_run_cpu_s": entry["baseline"]["median_cpu_s"]}
    if DAEMON_RESULTS.exists():
        daemon = json.loads(DAEMON_RESULTS.read_text())
        out["daemon_bench"] = {"source": DAEMON_RESULTS.name, **{
            k: daemon.get(k) for k in ("rules", "run_seconds_median", "cpu_seconds_per_minute",
                                       "at")}}
    if not out:
        out["readme"] = README_DAGSTER
    return out


def report(results: list[BackendResult], quick: bool, runs: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    pg = next(r for r in results if r.backend == "postgresql")
    lite = next(r for r in results if r.backend == "sqlite")
    ratios = [p.eval_wall_s / s.eval_wall_s for p, s in zip(pg.ticks, lite.ticks, strict=True)
              if s.eval_wall_s > 0]
    cpu_ratios = [p.eval_cpu_s / s.eval_cpu_s for p, s in zip(pg.ticks, lite.ticks, strict=True)
                  if s.eval_cpu_s > 0]
    return {**metadata(), "quick": quick, "results": [pg.as_json(), lite.as_json()],
            "baseline": {"name": "the same rules and ticks on a SQLite timeline (temp file)",
                         "wall_ratio_median": statistics.median(ratios) if ratios else None,
                         "cpu_ratio_median": statistics.median(cpu_ratios)
                         if cpu_ratios else None,
                         "ratio_meaning": "PostgreSQL evaluation ÷ SQLite evaluation, per "
                                          "tick, median"},
            "dagster_run": {
                "job": JOB, "rules": pg.rules,
                "timeline": "the PostgreSQL timeline above",
                **{k: {**v, "overhead_cpu_s": v["cpu_s"] - pg.median("eval_cpu_s"),
                       "overhead_wall_s": v["wall_s"] - pg.median("eval_wall_s")}
                   for k, v in (runs or {}).items()}},
            "dagster_overhead": dagster_overhead()}


def format_report(out: dict[str, Any]) -> str:
    pg, lite = out["results"]
    header = ("timeline", "rules", "eval wall", "eval CPU", "PG server CPU", "deliver wall",
              "sent/tick",
              "rows/tick", "size/tick", "rows/day 1 min", "MB/month 1 min", "MB/month 5 min")
    rows = [header]
    for r in (pg, lite):
        mb = r.get("mb_per_month", {})
        size = r.get("size_bytes_added_per_tick_median")
        rows.append((r["backend"], f"{r['rules']:,}", f"{r['eval_wall_s_median']:.2f} s",
                     f"{r['eval_cpu_s_median']:.2f} s",
                     f"{r['server_cpu_s_median']:.2f} s" if r["server_cpu_s_median"] is not None
                     else "-", f"{r['deliver_wall_s_median']:.3f} s",
                     f"{r['notifications_per_tick_median']:.0f}",
                     f"{r['rows_per_tick_total']:,.0f}",
                     f"{size / 1024:,.0f} kB" if size is not None else "-",
                     f"{r['rows_per_day']['1min']:,.0f}",
                     f"{mb['1min']:,.0f}" if mb else "-", f"{mb['5min']:,.0f}" if mb else "-"))
    lines = aligned_table(rows, set(range(1, len(header))))
    base = out["baseline"]
    lines.append(f"PostgreSQL ÷ SQLite (same run, per tick, median): evaluation wall "
                 f"{base['wall_ratio_median']:.2f}x, CPU {base['cpu_ratio_median']:.2f}x")
    lines.append("rows per tick (PostgreSQL): " + ", ".join(
        f"{k} {v:,.0f}" for k, v in pg["rows_per_tick"].items() if v))
    if "bytes_per_row" in pg:
        lines.append("bytes per added row (PostgreSQL, heap + indexes): " + ", ".join(
            f"{k} {v:,.0f}" for k, v in pg["bytes_per_row"].items()))
    if "growth_bytes_per_tick" in pg:
        lines.append(f"PostgreSQL growth per tick: {pg['growth_bytes_per_tick'] / 1024:,.0f} kB "
                     f"in the growing tables, "
                     f"{pg['growth_bytes_per_tick_all_tables'] / 1024:,.0f} kB in all (alert "
                     "state UPDATEs leave dead rows until autovacuum)")
    lines.append(f"runs per minute: {pg['runs_per_minute']['1min']:.1f} at 1 min, "
                 f"{pg['runs_per_minute']['5min']:.1f} at 5 min (one batch, one run per tick)")
    for instance, fig in out["dagster_run"].items():
        if isinstance(fig, dict):
            lines.append(f"one Dagster run of the batch ({instance} instance storage): "
                         f"{fig['wall_s']:.1f} s wall, {fig['cpu_s']:.1f} s CPU "
                         f"(+ {fig['server_cpu_s'] or 0:.1f} s PostgreSQL server), "
                         f"{fig['maxrss_mb']:.0f} MB peak RSS; its databases: "
                         f"{fig['database']['sessions']:,.0f} sessions, "
                         f"{fig['database']['active_time_ms'] / 1000:,.1f} s executing, "
                         f"{fig['database']['commits']:,.0f} commits; Dagster adds "
                         f"{fig['overhead_cpu_s']:.1f} s CPU to the bare evaluation")
    lines.append(f"Dagster's own cost per run, other benchmarks: "
                 f"{json.dumps(out['dagster_overhead'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_RULES} rules, {QUICK_TICKS} ticks (a smoke test)")
    parser.add_argument("--rules", type=int)
    parser.add_argument("--ticks", type=int)
    parser.add_argument("--no-dagster", action="store_true",
                        help="skip the Dagster runs of the batch (always skipped in --quick)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    server = os.environ.get(TEST_DATABASE_URL_ENV)
    if not server:
        print(f"deploy_scale: skipped (${TEST_DATABASE_URL_ENV} not set: it needs a "
              "PostgreSQL server to create its database on)")
        return 0
    rules_n = args.rules or (QUICK_RULES if args.quick else RULES)
    ticks = args.ticks or (QUICK_TICKS if args.quick else TICKS)
    started = time.perf_counter()
    print(f"deploy_scale: {rules_n} rules, {ticks} ticks …", file=sys.stderr, flush=True)
    results, runs = run(rules_n, ticks, server, dagster=not (args.quick or args.no_dagster))
    out = report(results, args.quick, runs)
    out["elapsed_s"] = time.perf_counter() - started
    print(format_report(out))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output} ({out['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
