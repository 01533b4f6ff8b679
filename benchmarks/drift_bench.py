"""What a score-drift check costs: aggregation in PostgreSQL vs pulling rows into pandas.

1. **In the database** (needs ``$TEST_DATABASE_URL``): a PostgreSQL table of 10 million
   scores of two models spread evenly over 7 days (``bench_drift.bench_scores_10m``,
   generated with ``generate_series`` inside PostgreSQL, indexed on ``(model, scored_at)``
   and ``(scored_at)``, and reused by later runs if it has the right row count). The
   reference summary is built and stored first (timed once, for information). Measured:
   ``check_segments`` over both models for the last hour (about 60,000 scores: one
   ``GROUP BY`` query, stored references read back, engine decisions written to a
   SQLite timeline). Baseline, same run: ``pandas.read_sql`` of both windows (the 7-day
   reference and the hour, ~10M rows) and PSI (reference deciles) + KS (sorted
   ``searchsorted``), high-score rate and null rate per model in numpy.
   Each side runs in its own freshly spawned process, so its peak RSS is its own:
   VmHWM from ``/proc/self/status``, reset with ``/proc/self/clear_refs`` after imports
   and a warm-up (where Linux allows it), i.e. the high-water mark of the process while
   the timed repetitions ran — interpreter and libraries included.
2. **In memory**: PSI + KS from fine histograms for 10M reference and 1M current scores
   (binning both, and binning only the current one against a stored reference) against
   ``scipy.stats.ks_2samp`` alone on the same arrays.

``--quick`` runs the same code on 200,000 rows (a smoke test, not a measurement).
No timing is asserted; the benchmark fails only if the workload misbehaves (e.g. the
check does not see the drift planted in the last hour).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from benchmarks.delivery_bench import (
    _RSS_METHOD,
    _RSS_METHOD_FALLBACK,
    _peak_rss_mib,
    _reset_peak_rss,
)
from benchmarks.timeline_bench import (
    TEST_DATABASE_URL_ENV,
    BenchmarkError,
    aligned_table,
    metadata,
)

SCHEMA = "bench_drift"
END = datetime(2026, 1, 15, tzinfo=UTC)  # the data's "now": the check looks at the hour before
FULL_ROWS, QUICK_ROWS = 10_000_000, 200_000
FULL_MEMORY, QUICK_MEMORY = (10_000_000, 1_000_000), (200_000, 20_000)
CHECK_REPS, BASELINE_REPS, MEMORY_REPS = 15, 3, 5
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "drift_latest.json"
CHILD_TIMEOUT_S = 3600


@dataclass
class Sizes:
    rows: int
    ref_n: int
    cur_n: int
    check_reps: int
    baseline_reps: int
    memory_reps: int

    @property
    def table(self) -> str:
        return "bench_scores_10m" if self.rows == FULL_ROWS else f"bench_scores_{self.rows}"


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(QUICK_ROWS, *QUICK_MEMORY, check_reps=3, baseline_reps=1, memory_reps=2)
    return Sizes(FULL_ROWS, *FULL_MEMORY, CHECK_REPS, BASELINE_REPS, MEMORY_REPS)


@dataclass
class Result:
    """A measured operation against a baseline from the same run (medians, seconds)."""

    name: str
    seconds: list[float]
    baseline: str
    baseline_seconds: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_seconds)

    @property
    def speed_up(self) -> float:
        return self.baseline_median / self.median

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "repetitions_s": self.seconds, "median_s": self.median,
                "baseline": {"name": self.baseline, "repetitions_s": self.baseline_seconds,
                             "median_s": self.baseline_median},
                "speed_up": self.speed_up,
                "speed_up_meaning": f"median '{self.baseline}' / median '{self.name}'",
                **self.extra}


# ----- the 10M-row table --------------------------------------------------------------


def pg_engine(url: str) -> sa.Engine:
    from alert_jobs.store.urls import driver_url

    return sa.create_engine(driver_url(url))


def ensure_table(url: str, rows: int, table: str) -> dict[str, Any]:
    """Create (or reuse) ``bench_drift.<table>``: ``rows`` scores over 7 days before END.

    Odd ids are ``churn-v1``, even ids ``fraud-v3``; scores are ``random()^2.5`` (most
    near 0), 1 % NULL amounts; in the last hour half of fraud-v3's scores are above 0.9.
    """
    engine = pg_engine(url)
    qualified = f"{SCHEMA}.{table}"
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": qualified}).scalar()
            if exists:
                count = conn.execute(sa.text(f"SELECT count(*) FROM {qualified}")).scalar()
                if count == rows:
                    return {"generated": False, "rows": rows, "seconds": 0.0}
                conn.execute(sa.text(f"DROP TABLE {qualified}"))
            last_hour = rows // (7 * 24)
            conn.execute(sa.text(f"""
                CREATE TABLE {qualified} (scored_at timestamptz NOT NULL, model text NOT NULL,
                                          score double precision, amount double precision)"""))
            conn.execute(sa.text("SELECT setseed(0.42)"))
            conn.execute(sa.text(f"""
                INSERT INTO {qualified}
                SELECT CAST(:end AS timestamptz) - i * (interval '7 days' / :rows),
                       CASE WHEN i % 2 = 0 THEN 'fraud-v3' ELSE 'churn-v1' END,
                       CASE WHEN i <= :last_hour AND i % 2 = 0 AND random() < 0.5
                            THEN 0.9 + 0.1 * random() ELSE power(random(), 2.5) END,
                       CASE WHEN random() < 0.01 THEN NULL ELSE 500 * random() END
                FROM generate_series(1, :rows) AS i"""),
                {"end": END, "rows": rows, "last_hour": last_hour})
            conn.execute(sa.text(f"CREATE INDEX ON {qualified} (model, scored_at)"))
            conn.execute(sa.text(f"CREATE INDEX ON {qualified} (scored_at)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"VACUUM ANALYZE {qualified}"))
    finally:
        engine.dispose()
    return {"generated": True, "rows": rows, "seconds": time.perf_counter() - started}


def rules_yaml(url: str, table: str) -> str:
    return f"""
receivers: [{{name: console, type: console}}]
defaults: {{receivers: [console]}}
checks:
  score_drift:
    - name: bench_scores
      database: '{url}'
      table: {SCHEMA}.{table}
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      feature_columns: [amount]
      segments: [churn-v1, fraud-v3]
      high_score: {{threshold: 0.9, min_samples: 1000}}
      min_samples: 500
"""


# ----- one side, in a fresh process ----------------------------------------------------


def _child_check(url: str, table: str, timeline_url: str, reps: int) -> dict[str, Any]:
    import logging

    from alert_jobs.config import parse_rules
    from alert_jobs.families.score_drift.config import ScoreDriftRule
    from alert_jobs.families.score_drift.run import check_segments
    from alert_jobs.store import Timeline

    logging.disable(logging.WARNING)  # the console receiver is not part of the check
    rules = parse_rules(rules_yaml(url, table))
    rule = rules.rules_of(ScoreDriftRule)[0]
    timeline = Timeline(timeline_url)
    segments = ["churn-v1", "fraud-v3"]
    # The warm-up is the first check in this new process, as every scheduled run's is:
    # timed, it is the cold start (connections, first statements) against the warm median.
    started = time.perf_counter()
    check_segments(rules, rule, timeline, segments, now=END)
    first_s = time.perf_counter() - started
    start_peak = _reset_peak_rss()
    seconds, results = [], []
    for _ in range(reps):
        started = time.perf_counter()
        results = check_segments(rules, rule, timeline, segments, now=END)
        seconds.append(time.perf_counter() - started)
    built = [r.segment for r in results if r.reference_built]
    if built:
        raise BenchmarkError(f"the check had to build references for {built}; the stored "
                             "summary was not used")
    return {"seconds": seconds, "first_s": first_s, "peak_rss_mib": _peak_rss_mib(),
            "rss_at_reset_mib": start_peak, "metrics": {r.segment: r.metrics for r in results},
            "statuses": {r.segment: {_check_name(o.labels): str(o.status)
                                     for o in r.observations} for r in results}}


def _check_name(labels: dict[str, str]) -> str:
    return f"{labels['check']}:{labels['feature']}" if "feature" in labels else labels["check"]


def _child_baseline(url: str, table: str, reps: int) -> dict[str, Any]:
    import pandas as pd

    engine = pg_engine(url)
    cur_start = END - timedelta(hours=1)
    ref_start = cur_start - timedelta(days=7)
    query = sa.text(f"SELECT scored_at, model, score, amount FROM {SCHEMA}.{table} "
                    "WHERE scored_at >= :s AND scored_at < :e")
    _reset_peak_rss()
    seconds, out = [], {}
    for _ in range(reps):
        started = time.perf_counter()
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn, params={"s": ref_start, "e": END})
        out = _numpy_drift(frame, cur_start)
        seconds.append(time.perf_counter() - started)
        del frame
    engine.dispose()
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "metrics": out}


def _numpy_drift(frame: Any, cur_start: datetime) -> dict[str, dict[str, float]]:
    """PSI on reference deciles, KS, high-score rate, null rate — per model, in numpy."""
    out = {}
    current = (frame["scored_at"] >= cur_start).to_numpy()
    for model in sorted(frame["model"].unique()):
        mine = (frame["model"] == model).to_numpy()
        scores = frame["score"].to_numpy(dtype=float)
        ref, cur = scores[mine & ~current], scores[mine & current]
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        edges = np.quantile(ref, np.linspace(0, 1, 11))
        e = np.histogram(ref, edges)[0] / len(ref)
        a = np.histogram(cur, edges)[0] / len(cur)
        e, a = np.where(e == 0, 1e-4, e), np.where(a == 0, 1e-4, a)
        ref_s, cur_s = np.sort(ref), np.sort(cur)
        both = np.concatenate([ref_s, cur_s])
        d = np.max(np.abs(np.searchsorted(ref_s, both, side="right") / len(ref_s)
                          - np.searchsorted(cur_s, both, side="right") / len(cur_s)))
        amount = frame["amount"].to_numpy(dtype=float)[mine & current]
        out[model] = {"psi": float(np.sum((a - e) * np.log(a / e))), "ks": float(d),
                      "high_score_rate": float(np.mean(cur > 0.9)),
                      "null_rate_amount": float(np.mean(np.isnan(amount)))}
    return out


def _in_fresh_process(fn: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result(timeout=CHILD_TIMEOUT_S)


def bench_database(url: str, size: Sizes) -> tuple[Result, dict[str, Any]]:
    from alert_jobs.config import parse_rules
    from alert_jobs.families.score_drift.config import ScoreDriftRule
    from alert_jobs.families.score_drift.run import build_references
    from alert_jobs.store import Timeline

    print(f"preparing {SCHEMA}.{size.table} ({size.rows:,} rows) …", file=sys.stderr,
          flush=True)
    table = ensure_table(url, size.rows, size.table)
    with tempfile.TemporaryDirectory(prefix="alert-jobs-drift-bench-") as tmp:
        timeline_url = f"sqlite:///{Path(tmp) / 'timeline.db'}"
        rules = parse_rules(rules_yaml(url, size.table))
        rule = rules.rules_of(ScoreDriftRule)[0]
        started = time.perf_counter()
        builds = build_references(rule, Timeline(timeline_url), ["churn-v1", "fraud-v3"],
                                  now=END)
        reference_s = time.perf_counter() - started
        if any(b.error for b in builds):
            raise BenchmarkError(f"reference build failed: {builds[0].error}")
        print(f"running the check ({size.check_reps}x) and the pandas baseline "
              f"({size.baseline_reps}x), each in a fresh process …", file=sys.stderr,
              flush=True)
        check = _in_fresh_process(_child_check, url, size.table, timeline_url, size.check_reps)
        baseline = _in_fresh_process(_child_baseline, url, size.table, size.baseline_reps)
    fraud = check["metrics"]["fraud-v3"]
    if not (fraud.get("psi", 0) > 0.25 and fraud.get("high_score_rate", 0) > 0.4):
        raise BenchmarkError(f"the planted drift was not seen: {fraud}")
    agreement = {m: {k: {"check": check["metrics"][m].get(k), "baseline": v}
                     for k, v in baseline["metrics"][m].items()}
                 for m in baseline["metrics"]}
    result = Result(
        f"drift check, last hour of {size.rows:,} rows [postgresql]", check["seconds"],
        "read_sql both windows + numpy", baseline["seconds"],
        {"peak_rss_mib": check["peak_rss_mib"], "rss_at_reset_mib": check["rss_at_reset_mib"],
         "first_check_s": check["first_s"],
         "first_check_ratio": check["first_s"] / statistics.median(check["seconds"]),
         "baseline_peak_rss_mib": baseline["peak_rss_mib"],
         "rss_method": _RSS_METHOD if Path("/proc/self/clear_refs").exists()
         else _RSS_METHOD_FALLBACK,
         "rows_current_per_model": {m: v["rows_current"] for m, v in check["metrics"].items()},
         "reference_build_s": reference_s, "table": table, "agreement": agreement,
         "statuses": check["statuses"]})
    return result, table


def bench_memory(size: Sizes) -> list[Result]:
    from scipy import stats

    from alert_jobs.families.score_drift.check import Grid, compare, histogram_from_values

    rng = np.random.default_rng(1)
    ref = rng.beta(2, 5, size.ref_n)
    cur = rng.beta(2.2, 5, size.cur_n)
    grid = Grid(0.0, 1.0, 1000)
    stored = histogram_from_values(ref, grid, threshold=0.9)
    both, current_only, scipy_s = [], [], []
    for _ in range(size.memory_reps):
        t0 = time.perf_counter()
        m_both = compare(histogram_from_values(ref, grid, threshold=0.9),
                         histogram_from_values(cur, grid, threshold=0.9))
        t1 = time.perf_counter()
        m_cur = compare(stored, histogram_from_values(cur, grid, threshold=0.9))
        t2 = time.perf_counter()
        exact = stats.ks_2samp(ref, cur)
        t3 = time.perf_counter()
        both.append(t1 - t0)
        current_only.append(t2 - t1)
        scipy_s.append(t3 - t2)
    if abs(m_both.ks - exact.statistic) > m_both.ks_bin_error or m_cur.psi != m_both.psi:
        raise BenchmarkError("binned KS/PSI disagree with scipy or with each other")
    label = f"{size.ref_n // 1_000_000 or size.ref_n:,}{'M' if size.ref_n >= 1e6 else ''}"
    extra = {"ks_binned": m_both.ks, "ks_scipy": float(exact.statistic),
             "ks_bound": m_both.ks_bin_error, "psi": m_both.psi,
             "ref_n": size.ref_n, "cur_n": size.cur_n}
    return [Result(f"PSI + KS, bin both ({label} ref / {size.cur_n:,} cur) [memory]", both,
                   "scipy.stats.ks_2samp alone", scipy_s, extra),
            Result("PSI + KS, stored reference, bin current only [memory]", current_only,
                   "scipy.stats.ks_2samp alone", scipy_s, extra)]


# ----- running and reporting -----------------------------------------------------------


def run(quick: bool = False) -> tuple[list[Result], dict[str, str], bool]:
    size = sizes(quick)
    results: list[Result] = []
    skipped: dict[str, str] = {}
    failed = False
    print("running in-memory PSI + KS vs scipy …", file=sys.stderr, flush=True)
    results += bench_memory(size)
    url = os.environ.get(TEST_DATABASE_URL_ENV)
    if not url:
        skipped["drift_postgresql"] = (f"${TEST_DATABASE_URL_ENV} not set: the 10M-row "
                                       "PostgreSQL benchmark needs a PostgreSQL server")
        return results, skipped, failed
    try:
        result, _ = bench_database(url, size)
        results.insert(0, result)
    except sa.exc.OperationalError as exc:
        skipped["drift_postgresql"] = f"cannot connect: {str(exc.orig or exc).splitlines()[0]}"
        failed = True
    return results, skipped, failed


def format_table(results: list[Result], skipped: dict[str, str]) -> str:
    header = ("drift benchmark", "median", "baseline (same run)", "median", "speed-up")
    rows = [header] + [(r.name, _secs(r.median), r.baseline, _secs(r.baseline_median),
                        f"{r.speed_up:,.1f}x") for r in results]
    lines = aligned_table(rows, {1, 3, 4})
    for r in results:
        if "peak_rss_mib" in r.extra:
            e = r.extra
            lines.append(
                f"check: {len(r.seconds)} runs, peak RSS {e['peak_rss_mib']:.0f} MiB (whole "
                f"process, {e['rss_at_reset_mib']:.0f} MiB after imports + warm-up); baseline "
                f"{len(r.baseline_seconds)} runs, peak RSS {e['baseline_peak_rss_mib']:.0f} MiB;"
                f" current rows per model {e['rows_current_per_model']}; reference build "
                f"{e['reference_build_s']:.1f} s (once, not in the check)")
            lines.append(
                f"cold start: the first check in the new process took "
                f"{_secs(e['first_check_s'])}, {e['first_check_ratio']:.2f}x the warm median "
                f"(target ≤ 1.5x)")
            if e["table"]["generated"]:
                lines.append(f"table generated in {e['table']['seconds']:.0f} s (reused next "
                             "time)")
    for name, why in skipped.items():
        lines.append(f"{name}: skipped ({why})")
    return "\n".join(lines)


def _secs(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200,000 rows instead of 10 million (smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results, skipped, failed = run(args.quick)
    print(format_table(results, skipped))
    report = {**metadata(), "quick": args.quick, "elapsed_s": time.perf_counter() - started,
              "results": [r.as_json() for r in results], "skipped": skipped}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output} ({report['elapsed_s']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
