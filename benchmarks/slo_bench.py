"""SLO evaluation over stored buckets against a naive re-aggregation of the events.

Data (the same in both forms, in one timeline database): 100 SLOs (Workbook pairs, 99.9 %
over 30 days), each with 30 days of per-minute counts (43,200 rows per SLO, 4.32 M in
all), stored twice:

* as the family stores them, in ``alert_slo_buckets`` with running totals (bulk-loaded:
  totals computed in Python, ``executemany`` on SQLite, ``COPY`` on PostgreSQL — loading
  4.3 M rows through ``SloBucketStore.append`` one call each would only measure the load);
* as per-minute events, one row per SLO and minute in ``bench_slo_events(rule, at, good,
  total)`` with an index on ``(rule, at)``: what a user keeps without buckets, already
  counted per minute (kind to the naive path);
* and, for the first :data:`RAW_SLOS` SLO, as a row per request in
  ``bench_slo_requests(rule, at, ok)`` (5.6 M rows for 30 days): the raw events a naive
  check really re-aggregates.

Measured, per SLO, in the same run and on the same database, in batches of
:data:`BATCH` SLOs on one connection each (as a schedule tick's run evaluates its batch;
the time per SLO is the batch's over its size, for both paths alike):

* **buckets**: ``SloBucketStore.window_counts_many`` (the real store, what
  ``run.evaluate_batch`` calls) + ``check.evaluate`` + ``check.judge``;
* **naive**: for each of the same windows ``SELECT sum(good), sum(total) FROM
  bench_slo_events WHERE rule = :rule AND at >= :start AND at < :end`` (the 30-day window
  reads 43,200 rows), then the same ``evaluate`` + ``judge``. The "raw events" here are
  already counted per minute, which favours the naive path: a table with a row per
  request would be 100–160 times larger.

Both give the same good/total for every window (checked for every SLO). Medians per SLO
over repetitions that interleave the two paths; the ratio is naive / buckets. A cold
figure: a new Python process opens the database and evaluates the first SLO (imports not
counted), for each path. Targets: under 5 ms per SLO, at least 20× faster than naive.
``--slos``/``--days`` for a smaller run (the test uses 3 SLOs × 2 days).
"""

from __future__ import annotations

import argparse
import itertools
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

from alert_jobs.config import parse_rules
from alert_jobs.families.slo import check
from alert_jobs.families.slo.check import Counts
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.store import SloBucketStore, slo_buckets
from alert_jobs.store import Timeline, schema
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "slo.json"
SLOS = 100
DAYS = 30
REPS = 5
END = datetime(2026, 10, 31, tzinfo=UTC)  # the newest bucket ends here
STEP = timedelta(minutes=1)
TARGET_MS = 5.0
TARGET_RATIO = 20.0
#: SLOs evaluated together, as one run of a schedule tick does (per SLO = batch / size).
BATCH = 10

events = sa.Table(
    "bench_slo_events", sa.MetaData(),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("at", schema.UTCDateTime, nullable=False),
    sa.Column("good", sa.Float, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Index("ix_bench_slo_events_rule_at", "rule", "at"),
)


#: One row per request, for the first :data:`RAW_SLOS` SLOs: what a service keeps in an
#: access log and what a naive SLO check really re-aggregates (5.6 M rows per SLO-month).
requests = sa.Table(
    "bench_slo_requests", sa.MetaData(),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("at", schema.UTCDateTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Index("ix_bench_slo_requests_rule_at", "rule", "at"),
)
RAW_SLOS = 1
RAW_CHUNK = 200_000


def slo_rules(n: int, days: int) -> list[SloRule]:
    """The benchmark's rules, parsed as the rules file would be."""
    return parse_rules(rules_text(n, days)).rules_of(SloRule)


def rules_text(n: int, days: int) -> str:
    """``n`` SLOs with the Workbook's pairs; the period fits the data (30 days, or a
    shorter one for a small run, with pairs that fit it)."""
    lines = ["defaults: {receivers: [console]}", "receivers: [{name: console, type: console}]",
             "checks:", "  slo:"]
    pairs = "" if days >= 30 else (
        "      pairs: [{long: 1h, short: 5m, budget_percent: 2, severity: page},\n"
        "              {long: 6h, short: 30m, budget_percent: 5, severity: page},\n"
        "              {long: 1d, short: 2h, budget_percent: 10, severity: ticket}]\n")
    for i in range(n):
        lines.append(f"    - name: slo_{i:03d}\n      objective: 99.9\n"
                     f"      period: {30 if days >= 30 else max(days, 1)}d\n{pairs}"
                     "      sli: {sql: {database: 'sqlite://', query: "
                     "'SELECT 1 AS good, 1 AS total'}}")
    return "\n".join(lines) + "\n"


def minutes(days: int) -> int:
    return days * 24 * 60


def counts_of(i: int, days: int) -> Iterator[tuple[datetime, float, float]]:
    """(start, good, total) per minute of SLO ``i``: 100–160 requests a minute, about
    0.05 % errors, and for every fifth SLO a burst (3 % errors for the last 40 minutes)."""
    n = minutes(days)
    start = END - n * STEP
    for m in range(n):
        total = 100.0 + (m * 7 + i * 13) % 61
        bad = 1.0 if (m * 31 + i) % 2000 < 1 else 0.0
        if i % 5 == 0 and m >= n - 40:
            bad = round(total * 0.03)
        yield start + m * STEP, total - bad, total


def load(url: str, n_slos: int, days: int, *, raw_slos: int = 0) -> None:
    """Both tables (and a row per request for the first ``raw_slos`` SLOs), bulk-loaded;
    statistics refreshed as a live database would have."""
    timeline = Timeline(url)
    timeline.upgrade()
    engine = timeline.engine
    events.create(engine, checkfirst=True)
    sqlite = engine.dialect.name == "sqlite"

    def ts(at: datetime) -> Any:
        return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") \
            if sqlite else at

    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for i in range(n_slos):
            rule = f"slo_{i:03d}"
            cg = ct = cc = 0.0
            buckets, raws = [], []
            for start, good, total in counts_of(i, days):
                cg, ct, cc = cg + good, ct + total, cc + STEP.total_seconds()
                end = start + STEP
                buckets.append((rule, ts(end), ts(start), good, total, True, cg, ct, cc, None))
                raws.append((rule, ts(start), good, total))
            if sqlite:
                raw.executemany(
                    "INSERT INTO alert_slo_buckets (rule, \"end\", start, good, total, "
                    "has_data, cum_good, cum_total, cum_covered, run_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", buckets)
                raw.executemany("INSERT INTO bench_slo_events VALUES (?, ?, ?, ?)", raws)
            else:
                with raw.cursor() as cur:
                    with cur.copy('COPY alert_slo_buckets (rule, "end", start, good, total, '
                                  "has_data, cum_good, cum_total, cum_covered, run_id) "
                                  "FROM STDIN") as copy:
                        for row in buckets:
                            copy.write_row(row)
                    with cur.copy("COPY bench_slo_events (rule, at, good, total) FROM STDIN"
                                  ) as copy:
                        for event in raws:
                            copy.write_row(event)
    if raw_slos:
        load_requests(engine, min(raw_slos, n_slos), days, ts)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if sqlite:
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql(f"VACUUM ANALYZE {slo_buckets.name}")
            conn.exec_driver_sql(f"VACUUM ANALYZE {events.name}")
            if raw_slos:
                conn.exec_driver_sql(f"VACUUM ANALYZE {requests.name}")
    timeline.dispose()


def request_rows(i: int, days: int, ts: Any) -> Iterator[tuple[str, Any, bool]]:
    """SLO ``i``'s minutes as single requests, spread evenly over each minute, the bad
    ones first (the same good/total per minute as :func:`counts_of`)."""
    rule = f"slo_{i:03d}"
    for start, good, total in counts_of(i, days):
        n, bad = int(total), int(total - good)
        gap = STEP / n
        for k in range(n):
            yield rule, ts(start + k * gap), k >= bad


def load_requests(engine: sa.Engine, n: int, days: int, ts: Any) -> None:
    """The per-request table for SLOs ``0 … n-1``, in chunks (millions of rows)."""
    requests.create(engine, checkfirst=True)
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for i in range(n):
            rows = request_rows(i, days, ts)
            while chunk := list(itertools.islice(rows, RAW_CHUNK)):
                if sqlite:
                    raw.executemany("INSERT INTO bench_slo_requests VALUES (?, ?, ?)", chunk)
                else:
                    with raw.cursor() as cur, cur.copy(
                            "COPY bench_slo_requests (rule, at, ok) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)


# ----- the two paths ---------------------------------------------------------------------

_RAW = sa.select(sa.func.count(), sa.func.sum(sa.case((requests.c.ok, 1), else_=0))).where(
    requests.c.rule == sa.bindparam("rule"),
    requests.c.at >= sa.bindparam("start", type_=schema.UTCDateTime()),
    requests.c.at < sa.bindparam("end", type_=schema.UTCDateTime()))


def raw_counts(conn: sa.Connection, rule: str, spans: list[timedelta], end: datetime
               ) -> dict[timedelta, Counts]:
    """One COUNT over the requests per window: the naive path with nothing pre-counted."""
    out = {}
    for span in spans:
        total, good = conn.execute(_RAW, {"rule": rule, "start": end - span, "end": end}).one()
        out[span] = Counts(span, float(good or 0.0), float(total or 0.0),
                           covered=span if total else timedelta(0))
    return out


def evaluate_raw(engine: sa.Engine, rule: SloRule) -> dict[timedelta, Counts]:
    with engine.connect() as conn:
        counts = raw_counts(conn, rule.name, check.windows_of(rule), END)
    check.judge(rule, check.evaluate(rule, counts), now=END)
    return counts



_NAIVE = sa.select(sa.func.sum(events.c.good), sa.func.sum(events.c.total)).where(
    events.c.rule == sa.bindparam("rule"),
    events.c.at >= sa.bindparam("start", type_=schema.UTCDateTime()),
    events.c.at < sa.bindparam("end", type_=schema.UTCDateTime()))


def naive_counts(conn: sa.Connection, rule: str, spans: list[timedelta], end: datetime
                 ) -> dict[timedelta, Counts]:
    """One SUM over the raw events per window (the per-minute rows cover it fully)."""
    out = {}
    for span in spans:
        good, total = conn.execute(_NAIVE, {"rule": rule, "start": end - span,
                                            "end": end}).one()
        out[span] = Counts(span, float(good or 0.0), float(total or 0.0),
                           covered=span if total else timedelta(0))
    return out


def evaluate_buckets(store: SloBucketStore, rule: SloRule) -> dict[timedelta, Counts]:
    counts = store.window_counts(rule.name, check.windows_of(rule), end=END)
    check.judge(rule, check.evaluate(rule, counts), now=END)
    return counts


def evaluate_naive(engine: sa.Engine, rule: SloRule) -> dict[timedelta, Counts]:
    with engine.connect() as conn:
        counts = naive_counts(conn, rule.name, check.windows_of(rule), END)
    check.judge(rule, check.evaluate(rule, counts), now=END)
    return counts


def _batches(rules: list[SloRule]) -> list[list[SloRule]]:
    """The rules in batches of :data:`BATCH` (a schedule tick's run reads one batch)."""
    return [rules[i:i + BATCH] for i in range(0, len(rules), BATCH)]


def evaluate_buckets_batch(store: SloBucketStore, rules: list[SloRule]) -> None:
    """What a run does for its batch: every SLO's windows on one connection
    (``window_counts_many``), then evaluate + judge each."""
    many = store.window_counts_many([(r.name, check.windows_of(r), END) for r in rules])
    for rule, counts in zip(rules, many, strict=True):
        check.judge(rule, check.evaluate(rule, counts), now=END)


def evaluate_naive_batch(engine: sa.Engine, rules: list[SloRule]) -> None:
    """The naive path with the same advantage: one connection for the batch."""
    with engine.connect() as conn:
        for rule in rules:
            counts = naive_counts(conn, rule.name, check.windows_of(rule), END)
            check.judge(rule, check.evaluate(rule, counts), now=END)


def agree(a: dict[timedelta, Counts], b: dict[timedelta, Counts]) -> list[str]:
    """Windows whose good or total differ between the two paths."""
    return [f"{span}: {a[span].good}/{a[span].total} vs {b[span].good}/{b[span].total}"
            for span in a if abs(a[span].good - b[span].good) > 1e-6
            or abs(a[span].total - b[span].total) > 1e-6]


@dataclass
class BackendResult:
    backend: str
    slos: int
    days: int
    buckets: int
    load_s: float
    buckets_ms: float  # median per SLO
    naive_ms: float
    ratio: float  # median of per-repetition ratios (naive / buckets)
    cold_buckets_ms: float | None
    cold_naive_ms: float | None
    mismatches: int
    #: The same SLO against a row per request (None: not measured in this run).
    raw_ms: float | None = None
    raw_buckets_ms: float | None = None
    raw_ratio: float | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"name": f"slo evaluation ({self.backend})", **self.__dict__}
        out["under_5ms"] = self.buckets_ms < TARGET_MS
        out["at_least_20x"] = self.ratio >= TARGET_RATIO
        return out


def bench_backend(name: str, url: str, n_slos: int, days: int, reps: int, *,
                  cold: bool = True, raw_slos: int = RAW_SLOS) -> BackendResult:
    started = time.perf_counter()
    load(url, n_slos, days, raw_slos=raw_slos)
    load_s = time.perf_counter() - started
    rules = slo_rules(n_slos, days)
    timeline = Timeline(url)
    store = SloBucketStore(timeline)
    engine = timeline.engine
    mismatches = 0
    for rule in rules:  # warm-up, and the correctness check: same counts both ways
        diff = agree(evaluate_buckets(store, rule), evaluate_naive(engine, rule))
        if diff:
            mismatches += 1
            print(f"{name} {rule.name}: counts differ: {diff[:3]}", file=sys.stderr)
    bucket_runs: list[float] = []
    naive_runs: list[float] = []
    ratios: list[float] = []
    for _ in range(reps):  # interleaved: a burst of load elsewhere hits both
        per_b, per_n = [], []
        for group in _batches(rules):  # as a run evaluates them: a batch per connection
            t0 = time.perf_counter()
            evaluate_buckets_batch(store, group)
            t1 = time.perf_counter()
            evaluate_naive_batch(engine, group)
            t2 = time.perf_counter()
            per_b.append((t1 - t0) / len(group))
            per_n.append((t2 - t1) / len(group))
        b, n = statistics.median(per_b), statistics.median(per_n)
        bucket_runs.append(b)
        naive_runs.append(n)
        ratios.append(n / b if b else float("inf"))
    raw = _bench_raw(name, store, engine, rules[:min(raw_slos, n_slos)], reps)
    if raw is None:
        raw_ms = raw_b = raw_ratio = None
    else:
        raw_ms, raw_b, raw_ratio, raw_bad = raw
        mismatches += raw_bad
    timeline.dispose()
    cold_b = cold_n = None
    if cold:
        cold_b, cold_n = cold_ms(url, n_slos, days, "buckets"), cold_ms(url, n_slos, days,
                                                                          "naive")
    return BackendResult(name, n_slos, days, n_slos * minutes(days), load_s,
                         1000 * statistics.median(bucket_runs),
                         1000 * statistics.median(naive_runs), statistics.median(ratios),
                         cold_b, cold_n, mismatches, raw_ms, raw_b, raw_ratio)


def _bench_raw(name: str, store: SloBucketStore, engine: sa.Engine, rules: list[SloRule],
               reps: int) -> tuple[float, float, float, int] | None:
    """Buckets against a row per request, SLO by SLO (one evaluation each, as a manual
    check of one SLO does): medians in ms, the median ratio, SLOs whose counts differ."""
    if not rules:
        return None
    bad = 0
    for rule in rules:
        diff = agree(evaluate_buckets(store, rule), evaluate_raw(engine, rule))
        if diff:
            bad += 1
            print(f"{name} {rule.name}: request counts differ: {diff[:3]}", file=sys.stderr)
    b_runs, r_runs, ratios = [], [], []
    for _ in range(reps):
        for rule in rules:
            t0 = time.perf_counter()
            evaluate_buckets(store, rule)
            t1 = time.perf_counter()
            evaluate_raw(engine, rule)
            t2 = time.perf_counter()
            b_runs.append(t1 - t0)
            r_runs.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
    return (1000 * statistics.median(r_runs), 1000 * statistics.median(b_runs),
            statistics.median(ratios), bad)


def cold_ms(url: str, n_slos: int, days: int, path: str) -> float | None:
    """A new process: open the database and evaluate the first SLO once (after imports)."""
    code = ("import sys, time\nfrom benchmarks import slo_bench as b\n"
            "print(b._cold_once(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))")
    done = subprocess.run([sys.executable, "-c", code, url, str(n_slos), str(days), path],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        print(f"cold {path}: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return float(done.stdout.strip().splitlines()[-1])


def _cold_once(url: str, n_slos: int, days: int, path: str) -> float:
    rule = slo_rules(n_slos, days)[0]
    started = time.perf_counter()
    timeline = Timeline(url)
    if path == "buckets":
        evaluate_buckets(SloBucketStore(timeline), rule)
    else:
        evaluate_naive(timeline.engine, rule)
    return 1000 * (time.perf_counter() - started)


# ----- running it ------------------------------------------------------------------------


def run(n_slos: int = SLOS, days: int = DAYS, *, reps: int = REPS, cold: bool = True,
        postgres: bool = True, workdir: Path | None = None, raw_slos: int = RAW_SLOS
        ) -> tuple[list[BackendResult], dict[str, str]]:
    results: list[BackendResult] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        results.append(bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'slo.db'}", n_slos,
                                     days, reps, cold=cold, raw_slos=raw_slos))
    pg_url, pg_schema = scratch_schema("bench_slo") if postgres else (None, "not asked for")
    if pg_url is None:
        skipped["slo evaluation postgresql"] = pg_schema
    else:
        try:
            results.append(bench_backend("postgresql", pg_url, n_slos, days, reps, cold=cold,
                                         raw_slos=raw_slos))
        finally:
            drop_schema(pg_schema)
    return results, skipped


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def format_table(results: list[BackendResult], skipped: dict[str, str]) -> str:
    lines = ["SLO evaluation per SLO: stored buckets (window_counts + evaluate + judge) vs "
             "naive SUM over per-minute rows per window (batches of 10 SLOs)",
             f"{'backend':<11}{'SLOs':>5}{'days':>5}{'buckets':>11}{'load':>7}"
             f"{'buckets':>10}{'naive':>10}{'ratio':>8}{'cold b.':>9}{'cold n.':>9}"
             "  <5ms  >=20x"]
    for r in results:
        lines.append(
            f"{r.backend:<11}{r.slos:>5}{r.days:>5}{r.buckets:>11,}{r.load_s:>6.0f}s"
            f"{r.buckets_ms:>8.2f}ms{r.naive_ms:>8.2f}ms{r.ratio:>7.1f}x"
            f"{_ms(r.cold_buckets_ms):>9}{_ms(r.cold_naive_ms):>9}"
            f"  {'yes' if r.buckets_ms < TARGET_MS else 'NO':<5}"
            f" {'yes' if r.ratio >= TARGET_RATIO else 'NO'}"
            + ("" if not r.mismatches else f"  COUNTS DIFFER for {r.mismatches} SLO(s)"))
    raws = [r for r in results if r.raw_ratio is not None]
    if raws:
        lines.append("one SLO evaluated against a row per request (100–160 a minute) "
                     "instead of per-minute rows:")
        for r in raws:
            lines.append(f"{r.backend:<11} buckets {_ms(r.raw_buckets_ms)}, requests "
                         f"{_ms(r.raw_ms)}, ratio {r.raw_ratio:.0f}x"
                         f"  {'yes' if (r.raw_ratio or 0) >= TARGET_RATIO else 'NO'}")
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
    parser.add_argument("--slos", type=int, default=SLOS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--reps", type=int, default=REPS)
    parser.add_argument("--no-cold", action="store_true", help="skip the new-process figure")
    parser.add_argument("--raw-slos", type=int, default=RAW_SLOS,
                        help="SLOs also stored as a row per request (0: none)")
    parser.add_argument("--no-write", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    results, skipped = run(args.slos, args.days, reps=args.reps, cold=not args.no_cold,
                           raw_slos=args.raw_slos)
    print(format_table(results, skipped))
    if not args.no_write:
        write_results(results, skipped)
        print(f"wrote {RESULTS_FILE}")
    return 1 if any(r.mismatches for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
