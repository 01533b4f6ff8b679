"""Cost of evaluating a baseline rule: one indexed statement (slot + recent) + the maths.

Data (:func:`load`): :data:`RULES` baseline rules (one alert instance each) with
:data:`DAYS` days of 5-minute evaluations in the timeline's own ``alert_evaluations``
(8,064 rows per rule, 8.06 M in all), as the engine writes them: status, value, the
message's expected text and summary, the baseline ``details`` JSON, a run id; about
1 % of the evaluations are alerting (short incidents), which the baseline leaves out.
Each rule's values follow a daily and weekly curve with noise. Rows are bulk-loaded
(``executemany`` on SQLite, ``COPY`` on PostgreSQL, in chunks of :data:`CHUNK_RULES`
rules so memory stays flat), then statistics are refreshed as a live database has them.

Measured, per rule, in the same run and on the same database, interleaved in blocks of
:data:`BLOCK` rules (a burst of load elsewhere hits both paths):

* **ours**: :func:`alert_jobs.runtime.baseline.assess_value` (the slot's ranges, the
  store's one ``UNION ALL`` statement, :meth:`~alert_jobs.store.baselines.BaselineStore.read`:
  ranges over ``(rule, at)`` of the evaluations and ``(fingerprint, at)`` of the
  backfilled points, and the evaluations of the last :data:`~alert_jobs.core.baseline.RECENT`
  hours with the expected value of their ``details``, for today's level; then
  :func:`alert_jobs.core.baseline.assess`), default ``expect.baseline`` (hour_of_week,
  28 d), timezone Europe/Berlin;
* **naive** (the named baseline): read the rule's whole 28-day history
  (``SELECT at, value, status, details … WHERE rule = ? AND at >= ? AND at < ?`` on the
  same index: 8,064 rows), pick the slot's points and the last 6 hours (their expected
  value parsed from ``details``) in Python, then the same ``assess``.

Both give the same assessment for every rule (expected value, bounds, points, today's
level; checked).
Figures: the median ms per rule warm (all rules, :data:`REPS` repetitions), the ratio
naive / ours (median of per-repetition ratios), cold = a new process opens the
database and evaluates one rule (imports not counted; how much of it opening the
connection took is shown beside it), and the peak RSS of a new
process that evaluates every rule once (``VmHWM``, the process's own high-water mark;
with the peak after imports, so the growth is the evaluation's). Target: under 10 ms
per rule. The query plan of the slot statement is recorded (``EXPLAIN``): does it
range-scan the index per slot, or walk all of the rule's entries?
``--rules``/``--days`` for a smaller run (the test uses 3 rules × 21 days).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alert_jobs.config import Baseline
from alert_jobs.core import baseline as core
from alert_jobs.runtime.baseline import assess_value
from alert_jobs.store import Timeline, schema
from alert_jobs.store.baselines import _history_sql
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "baseline_cost.json"
RULES = 1_000
DAYS = 28
REPS = 3
BLOCK = 20
CHUNK_RULES = 25
SEED = 14
STEP = timedelta(minutes=5)
END = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)  # "now": the newest evaluation is before it
TIMEZONE = "Europe/Berlin"
TARGET_MS = 10.0
SPEC = Baseline()
SETTINGS = SPEC.settings()


def rule_name(i: int) -> str:
    return f"orders_last_hour_{i:04d}"


def fingerprint(i: int) -> str:
    return f"{i:032x}"


def points_per_rule(days: int) -> int:
    return days * 24 * 12


def value_now(i: int) -> float:
    """The value each rule's measured evaluation judges (a weekday afternoon's level)."""
    return 900.0 + (i % 37) * 10


def evaluation_rows(i: int, days: int, ts: Any, rng: random.Random
                    ) -> Iterator[tuple[Any, ...]]:
    """Rule ``i``'s evaluations, oldest first: (at, rule, fingerprint, status, value,
    expected, summary, state_after, run_id, details). A daily curve (night at a fifth of
    the afternoon), weekends at 70 %, 3 % noise; now and then an incident of 30 min –
    2 h at 3× (status ``alert``, about 1 % of the rows)."""
    rule, fp = rule_name(i), fingerprint(i)
    level = 900.0 + (i % 37) * 10
    n = points_per_rule(days)
    start = END - n * STEP
    incident_left = 0
    for k in range(n):
        at = start + k * STEP
        hour = (at.hour + 1 + at.minute / 60) % 24  # roughly local time
        shape = 0.2 + 0.8 * (1 + math.cos(2 * math.pi * (hour - 15) / 24)) / 2
        weekend = 0.7 if at.weekday() >= 5 else 1.0
        expected = level * shape * weekend
        value = round(expected * (1 + rng.gauss(0, 0.03)))
        if incident_left == 0 and rng.random() < 1 / 1200:
            incident_left = rng.randint(6, 24)
        if incident_left:
            incident_left -= 1
            value *= 3
        alerting = incident_left > 0 or value > expected * 2
        lower, upper = round(expected * 0.88, 1), round(expected * 1.12, 1)
        status = "alert" if alerting else "ok"
        expected_text = (f"to be about {expected:,.0f} ({lower:,.0f}–{upper:,.0f}, from the same "
                         "hour of the week over the last 4 weeks)")
        summary = (f"Expected orders in the last hour {expected_text}, got {value:,.0f}"
                   if alerting else f"orders in the last hour {value:,.0f}, as expected")
        details = json.dumps({"expected_value": round(expected, 1), "lower": lower,
                              "upper": upper, "spread": round(expected * 0.04, 2),
                              "points": 48.0, "crossed": "upper" if alerting else None,
                              "learning": None})
        yield (ts(at), rule, fp, status, float(value), expected_text, summary,
               "firing" if alerting else "inactive", f"run-{k:06d}", details)


_COLUMNS = ("at", "rule", "fingerprint", "status", "value", "expected", "summary",
            "state_after", "run_id", "details")


def load(url: str, n_rules: int, days: int) -> None:
    """The evaluations of every rule, bulk-loaded; statistics refreshed."""
    timeline = Timeline(url)
    timeline.upgrade()
    engine = timeline.engine
    sqlite = engine.dialect.name == "sqlite"

    def ts(at: datetime) -> Any:
        return at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at

    rng = random.Random(SEED)
    table = schema.evaluations.name
    for first in range(0, n_rules, CHUNK_RULES):
        rows = [row for i in range(first, min(first + CHUNK_RULES, n_rules))
                for row in evaluation_rows(i, days, ts, rng)]
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            if sqlite:
                raw.executemany(f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(_COLUMNS))})", rows)
            else:
                with raw.cursor() as cur, cur.copy(
                        f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE" if sqlite else f"VACUUM ANALYZE {table}")
    timeline.dispose()


# ----- the two paths -------------------------------------------------------------------------


def evaluate_ours(timeline: Timeline, i: int) -> core.Assessment:
    """What a baseline rule's evaluation costs in the product."""
    return assess_value(timeline, rule=rule_name(i), fingerprint=fingerprint(i),
                        value=value_now(i), spec=SPEC, now=END, timezone=TIMEZONE,
                        state=None).assessment


_NAIVE = sa.select(schema.evaluations.c.at, schema.evaluations.c.value,
                   schema.evaluations.c.status,
                   # as text: parsed only for the recent rows (psycopg would parse all)
                   sa.cast(schema.evaluations.c.details, sa.Text)).where(
    schema.evaluations.c.rule == sa.bindparam("rule"),
    schema.evaluations.c.fingerprint == sa.bindparam("fp"),
    schema.evaluations.c.at >= sa.bindparam("start", type_=schema.UTCDateTime()),
    schema.evaluations.c.at < sa.bindparam("end", type_=schema.UTCDateTime()))


def evaluate_naive(timeline: Timeline, i: int) -> core.Assessment:
    """The rule's whole history read, the slot and the last hours picked in Python, the
    same maths."""
    ranges = core.slot_ranges(END, SETTINGS.season, SETTINGS.history, TIMEZONE)
    with timeline.engine.connect() as conn:
        rows = conn.execute(_NAIVE, {"rule": rule_name(i), "fp": fingerprint(i),
                                     "start": ranges[0][0], "end": END}).all()
    history = [core.Point(at, value) for at, value, status, _ in rows
               if status != "alert" and value is not None
               and any(start <= at < end for start, end in ranges)]
    recent = []
    for at, value, status, details in rows:
        if value is not None and at >= END - core.RECENT:
            expected = json.loads(details or "{}").get("expected_value")
            recent.append(core.Recent(at, value, None if expected is None else float(expected),
                                      status == "alert"))
    return core.assess(value_now(i), history, SETTINGS, now=END, timezone=TIMEZONE,
                       recent=recent)


def agree(a: core.Assessment, b: core.Assessment) -> bool:
    """The same band from both paths (or the same learning reason)."""
    if a.band is None or b.band is None:
        return a.band is None and b.band is None and a.learning == b.learning
    return (a.band.points == b.band.points and a.crossed == b.crossed
            and all(math.isclose(x, y, rel_tol=1e-9) for x, y in (
                (a.band.expected, b.band.expected), (a.band.lower, b.band.lower),
                (a.band.upper, b.band.upper), (a.band.level, b.band.level))))


def query_plan(timeline: Timeline) -> list[str]:
    """``EXPLAIN`` of the statement for rule 0, slot and recent part (does it range-scan
    the index?)."""
    ranges = core.slot_ranges(END, SETTINGS.season, SETTINGS.history, TIMEZONE)
    dialect = timeline.engine.dialect.name
    sql = _history_sql(len(ranges), 0, dialect, recent=True)

    def bind(at: datetime) -> Any:
        return at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") \
            if dialect == "sqlite" else at

    params: dict[str, Any] = {"rule": rule_name(0), "fp": fingerprint(0)}
    for k, (start, end) in enumerate(ranges):
        params[f"s{k}"], params[f"e{k}"] = bind(start), bind(end)
    params["rs"], params["re"] = bind(END - core.RECENT), bind(END)
    with timeline.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        if dialect == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            lines = [str(row[-1]) for row in cur.fetchall()]
        else:
            cur.execute("EXPLAIN " + sql, params)
            lines = [str(row[0]) for row in cur.fetchall()]
        cur.close()
    return lines


@dataclass
class BackendResult:
    backend: str
    rules: int
    days: int
    rows: int
    load_s: float
    ours_ms: float  # median per rule, warm
    naive_ms: float
    ratio: float  # median of per-repetition ratios (naive / ours)
    cold_ours_ms: float | None
    cold_naive_ms: float | None
    #: peak RSS (MB) of a new process evaluating every rule once, and its RSS after imports
    rss_ours_mb: float | None
    rss_naive_mb: float | None
    rss_imports_mb: float | None
    points: int  # history points one evaluation judged by (rule 0)
    recent: int  # recent evaluations the same statement returned (rule 0)
    level: float  # today's level they gave (rule 0)
    mismatches: int
    plan: list[str]
    #: of ``cold_ours_ms``, opening the connection (a run opens it once for its batch)
    cold_connect_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"name": f"baseline rule evaluation ({self.backend})", **self.__dict__}
        out["under_10ms"] = self.ours_ms < TARGET_MS
        out["cold_under_10ms"] = (self.cold_ours_ms is not None
                                  and self.cold_ours_ms < TARGET_MS)
        out["cold_without_connect_under_10ms"] = (
            self.cold_ours_ms is not None and self.cold_connect_ms is not None
            and self.cold_ours_ms - self.cold_connect_ms < TARGET_MS)
        return out


def bench_backend(name: str, url: str, n_rules: int, days: int, reps: int, *,
                  cold: bool = True) -> BackendResult:
    started = time.perf_counter()
    load(url, n_rules, days)
    load_s = time.perf_counter() - started
    timeline = Timeline(url)
    mismatches = 0
    points = recent = 0
    level = 1.0
    for i in range(n_rules):  # warm-up, and the correctness check: the same band
        ours, naive = evaluate_ours(timeline, i), evaluate_naive(timeline, i)
        if not agree(ours, naive):
            mismatches += 1
            if mismatches <= 3:
                print(f"{name} {rule_name(i)}: {ours} vs {naive}", file=sys.stderr)
        if i == 0 and ours.band is not None:
            points, level = ours.band.points, ours.band.level
            recent = len(timeline.baselines.read(
                rule_name(0), fingerprint(0), (), recent=(END - core.RECENT, END)).recent)
    ours_runs: list[float] = []
    naive_runs: list[float] = []
    ratios: list[float] = []
    for _ in range(reps):
        per_o: list[float] = []
        per_n: list[float] = []
        for first in range(0, n_rules, BLOCK):  # interleaved blocks
            block = range(first, min(first + BLOCK, n_rules))
            for i in block:
                t0 = time.perf_counter()
                evaluate_ours(timeline, i)
                per_o.append(time.perf_counter() - t0)
            for i in block:
                t0 = time.perf_counter()
                evaluate_naive(timeline, i)
                per_n.append(time.perf_counter() - t0)
        o, n = statistics.median(per_o), statistics.median(per_n)
        ours_runs.append(o)
        naive_runs.append(n)
        ratios.append(n / o if o else float("inf"))
    plan = query_plan(timeline)
    timeline.dispose()
    cold_o = cold_n = rss_o = rss_n = rss_imports = connect = None
    if cold:
        cold_o, rss_o, rss_imports, connect = new_process(url, n_rules, "ours")
        cold_n, rss_n, _, _ = new_process(url, n_rules, "naive")
    return BackendResult(name, n_rules, days, n_rules * points_per_rule(days), load_s,
                         1000 * statistics.median(ours_runs),
                         1000 * statistics.median(naive_runs), statistics.median(ratios),
                         cold_o, cold_n, rss_o, rss_n, rss_imports, points, recent, level,
                         mismatches, plan, connect)


def new_process(url: str, n_rules: int, path: str
                ) -> tuple[float | None, float | None, float | None, float | None]:
    """A new process: the first rule's evaluation in ms (cold: a new connection, nothing
    cached; imports not counted), then every rule once; its peak RSS (MB), its RSS after
    imports, and the ms of the cold figure that opening the connection took."""
    code = ("import sys\nfrom benchmarks import baseline_cost as b\n"
            "print(b._in_new_process(sys.argv[1], int(sys.argv[2]), sys.argv[3]))")
    done = subprocess.run([sys.executable, "-c", code, url, str(n_rules), path],
                          capture_output=True, text=True, timeout=900,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        print(f"new process {path}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None, None, None, None
    cold, peak, imports, connect = (float(x) for x in
                                    done.stdout.strip().splitlines()[-1].split())
    return cold, peak, imports, connect


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` of /proc/self/status where Linux has it
    (``ru_maxrss`` of a spawned child starts at its parent's RSS, which the loading
    parent makes large), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_new_process(url: str, n_rules: int, path: str) -> str:
    imports = peak_rss_mb()
    evaluate = evaluate_ours if path == "ours" else evaluate_naive
    started = time.perf_counter()
    timeline = Timeline(url)
    with timeline.engine.connect():  # the pool's first connection, kept for the rule
        pass
    connected = time.perf_counter()
    evaluate(timeline, 0)
    cold = 1000 * (time.perf_counter() - started)
    connect = 1000 * (connected - started)
    for i in range(1, n_rules):
        evaluate(timeline, i)
    timeline.dispose()
    peak = peak_rss_mb()
    return f"{cold} {peak} {imports} {connect}"


# ----- running it ----------------------------------------------------------------------------


def run(n_rules: int = RULES, days: int = DAYS, *, reps: int = REPS, cold: bool = True,
        postgres: bool = True, workdir: Path | None = None
        ) -> tuple[list[BackendResult], dict[str, str]]:
    results: list[BackendResult] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        results.append(bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'baseline.db'}",
                                     n_rules, days, reps, cold=cold))
    pg_url, pg_schema = scratch_schema("bench_baseline") if postgres else (None,
                                                                           "not asked for")
    if pg_url is None:
        skipped["baseline rule evaluation postgresql"] = pg_schema
    else:
        try:
            results.append(bench_backend("postgresql", pg_url, n_rules, days, reps,
                                         cold=cold))
        finally:
            drop_schema(pg_schema)
    return results, skipped


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _short(line: str, width: int = 70) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}MB"


def format_table(results: list[BackendResult], skipped: dict[str, str]) -> str:
    lines = ["Baseline rule evaluation per rule: assess_value (one statement: slot + last "
             "6 h, and the maths) vs naive (read the rule's whole history, slot and last 6 h "
             "in Python, same maths)",
             f"{'backend':<11}{'rules':>6}{'days':>5}{'rows':>11}{'load':>7}{'points':>7}"
             f"{'recent':>7}"
             f"{'ours':>9}{'naive':>9}{'ratio':>8}{'cold o.':>9}{'connect':>9}{'cold n.':>9}"
             f"{'RSS o.':>8}{'RSS n.':>8}{'imports':>8}  <10ms"]
    for r in results:
        lines.append(
            f"{r.backend:<11}{r.rules:>6}{r.days:>5}{r.rows:>11,}{r.load_s:>6.0f}s"
            f"{r.points:>7}{r.recent:>7}{r.ours_ms:>7.2f}ms{r.naive_ms:>7.2f}ms{r.ratio:>7.1f}x"
            f"{_ms(r.cold_ours_ms):>9}{_ms(r.cold_connect_ms):>9}{_ms(r.cold_naive_ms):>9}"
            f"{_mb(r.rss_ours_mb):>8}{_mb(r.rss_naive_mb):>8}{_mb(r.rss_imports_mb):>8}"
            f"  {'yes' if r.ours_ms < TARGET_MS else 'NO'}"
            + ("" if not r.mismatches else f"  BANDS DIFFER for {r.mismatches} rule(s)"))
    for r in results:
        scans = [line.strip() for line in r.plan if "SEARCH" in line or "SCAN" in line
                 or "Scan" in line]  # one line per table access, the recent part's too
        lines.append(f"{r.backend} plan of the statement (slot + recent): " + " | ".join(
            _short(line, 60) for line in scans))
    for name, why in skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def results_json(results: list[BackendResult]) -> list[dict[str, Any]]:
    return [r.as_json() for r in results]


def write_results(results: list[BackendResult], skipped: dict[str, str],
                  path: Path = RESULTS_FILE) -> None:
    write_json(path, results_json(results), skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=RULES)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--no-cold", action="store_true", help="skip the new-process figures")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    results, skipped = run(args.rules, args.days, reps=args.reps, cold=not args.no_cold,
                           postgres=not args.no_postgres)
    print(format_table(results, skipped))
    if not args.no_write:
        write_results(results, skipped)
        print(f"wrote {RESULTS_FILE}")
    return 1 if any(r.mismatches for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
