"""Heartbeats: what a ping costs over HTTP, and what one sensor tick costs at 100,000 checks.

1. Pings per second: ``alert-jobs serve``'s app under uvicorn on 127.0.0.1 (a child
   process, as in production), hammered by concurrent keep-alive httpx clients (one
   thread each). Baseline, same server, same clients, same run: a do-nothing Starlette
   route (``/ping/__noop__``: under ``/ping/``, so it passes the sign-in middleware as
   a ping does), so the ratio is what the ping's work (rules lookup, one locked read +
   UPDATE + INSERT) costs on top of the framework. Batches alternate
   (noop, ping, noop, ping …); medians over repetitions.
2. One heartbeat sensor evaluation (``evaluate_due``) over 100,000 registered
   heartbeats: steady state (nothing overdue) and with 100 going down at once (100
   engine decisions). Baseline, same database, same run: a full scan reading every row,
   which is what the tick would cost without the ``alert_after`` index. Target: well
   under 1 s (the sensor tick limit is 60 s).

Run alone: ``python -m benchmarks.heartbeat_bench [--quick]``. No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from alert_jobs.config import parse_rules
from alert_jobs.families.heartbeat.run import evaluate_due
from alert_jobs.families.heartbeat.store import heartbeats as heartbeats_table
from alert_jobs.store import Timeline, safe_url, schema
from benchmarks.timeline_bench import (
    TEST_DATABASE_URL_ENV,
    postgres_database,
    sqlite_database,
)

NOOP = "/ping/__noop__"  # the baseline route (see the module docstring)
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "heartbeat.json"
RULES = """
defaults: {receivers: [console]}
checks:
  heartbeat:
    - name: bench_job
      slug: bench-job
      period: 1h
heartbeats:
  ping_log_keep: 100
"""
FULL = {"requests": 2_000, "reps": 5, "clients": 16, "heartbeats": 100_000, "overdue": 100,
        "tick_reps": 5}
QUICK = {"requests": 100, "reps": 2, "clients": 4, "heartbeats": 1_000, "overdue": 10,
         "tick_reps": 2}


def make_app() -> Any:
    """The served app plus a do-nothing route (uvicorn ``--factory`` target)."""
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from alert_jobs.http.app import create_app
    from alert_jobs.store import shared_timeline

    rules = parse_rules(RULES)
    app = create_app(lambda: shared_timeline(os.environ["ALERT_JOBS_DATABASE_URL"]),
                     lambda: rules)

    async def noop(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    app.router.routes.insert(0, Route(NOOP, noop, methods=["GET", "POST"]))
    return app


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(db_url: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "ALERT_JOBS_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.heartbeat_bench:make_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        env=env, cwd=str(Path(__file__).resolve().parents[1]))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + NOOP, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("benchmark server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _hammer(base: str, path: str, total: int, clients: int) -> tuple[float, int]:
    """``total`` requests from ``clients`` threads; returns (seconds, non-200 answers)."""
    per = total // clients
    bad = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def work(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            c.get(NOOP)  # open the keep-alive connection before timing
            barrier.wait()
            for _ in range(per):
                if c.get(path).status_code != 200:
                    bad[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, sum(bad)


def bench_pings(db_url: str, backend: str, p: dict[str, int]) -> dict[str, Any]:
    Timeline(db_url).upgrade()
    with _server(db_url) as base:
        _hammer(base, "/ping/bench-job", p["requests"] // 4, p["clients"])  # warm-up
        pings, noops, errors = [], [], 0
        for _ in range(p["reps"]):
            seconds, bad = _hammer(base, NOOP, p["requests"], p["clients"])
            noops.append(seconds)
            seconds, bad2 = _hammer(base, "/ping/bench-job", p["requests"], p["clients"])
            pings.append(seconds)
            errors += bad + bad2
    n = (p["requests"] // p["clients"]) * p["clients"]
    ping_rate = n / statistics.median(pings)
    noop_rate = n / statistics.median(noops)
    ratios = [pg / no for pg, no in zip(pings, noops, strict=True)]
    return {"name": "ping (GET /ping/<slug>)", "backend": backend,
            "requests_per_repetition": n, "clients": p["clients"],
            "ping_per_s_median": ping_rate, "noop_per_s_median": noop_rate,
            "ping_repetitions_s": pings, "noop_repetitions_s": noops,
            "cost_ratio": statistics.median(ratios), "cost_ratio_per_repetition": ratios,
            "cost_ratio_meaning": "one ping costs this many do-nothing requests",
            "errors": errors}


def _fill(timeline: Timeline, n: int, overdue: int, now: datetime) -> None:
    """``n`` auto-created-style checks, last pinged recently; ``overdue`` of them past
    their deadline."""
    t = heartbeats_table
    with timeline.engine.begin() as conn:
        conn.execute(t.delete())
        batch = []
        for i in range(n):
            late = i < overdue
            last = now - (timedelta(hours=3) if late else timedelta(minutes=i % 50))
            batch.append({
                "slug": f"job-{i:06d}", "rule": "heartbeat", "declared": False,
                "config_hash": "", "kind": "simple", "period_seconds": 3600.0, "cron": None,
                "timezone": "UTC", "grace_seconds": 600.0, "max_duration_seconds": None,
                "manual_resume": False, "status": "up", "last_ping": last,
                "last_signal": "success", "last_exit_code": None, "last_start": None,
                "last_start_rid": None, "last_duration_seconds": None, "open_problems": "",
                "alert_after": last + timedelta(seconds=4200), "n_pings": 1,
                "created_at": last, "updated_at": last})
            if len(batch) == 5_000:
                conn.execute(t.insert(), batch)
                batch = []
        if batch:
            conn.execute(t.insert(), batch)
    if timeline.dialect == "postgresql":  # fresh statistics, as autovacuum keeps them
        with timeline.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("ANALYZE alert_heartbeats"))
    with timeline.engine.begin() as conn:
        for table in (schema.alerts, schema.events, schema.evaluations, schema.outbox,
                      schema.notify_queue, schema.groups):
            conn.execute(table.delete())


def _full_scan(timeline: Timeline) -> float:
    start = time.perf_counter()
    with timeline.engine.connect() as conn:
        rows = conn.execute(sa.select(heartbeats_table)).all()
    assert rows
    return time.perf_counter() - start


def bench_tick(db_url: str, backend: str, p: dict[str, int]) -> dict[str, Any]:
    rules = parse_rules(RULES.replace("checks:\n  heartbeat:\n    - name: bench_job\n"
                                      "      slug: bench-job\n      period: 1h\n", ""))
    timeline = Timeline(db_url)
    timeline.upgrade()
    rss_before = _maxrss_mib()
    steady, going_down, scans, decided, cpu = [], [], [], [], []
    try:
        for _ in range(p["tick_reps"]):
            now = datetime.now(UTC)
            _fill(timeline, p["heartbeats"], p["overdue"], now)
            scans.append(_full_scan(timeline))
            start, start_cpu = time.perf_counter(), time.process_time()
            report = evaluate_due(rules, timeline, now=now, sync_declared=False)
            going_down.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            decided.append(len(report.outcomes))
            start = time.perf_counter()
            again = evaluate_due(rules, timeline, now=now, sync_declared=False)
            steady.append(time.perf_counter() - start)
            if again.outcomes:
                raise RuntimeError("a second tick decided again: the index query is wrong")
    finally:
        timeline.dispose()
    return {"name": f"sensor tick over {p['heartbeats']:,} heartbeats", "backend": backend,
            "steady_s_median": statistics.median(steady),
            "going_down_s_median": statistics.median(going_down),
            # this process's CPU only (not the database server's): steadier than wall
            # time on a shared machine
            "going_down_cpu_s_median": statistics.median(cpu),
            "going_down_cpu_repetitions_s": cpu,
            "overdue": p["overdue"], "decisions": decided,
            "full_scan_s_median": statistics.median(scans),
            "steady_vs_full_scan": statistics.median(steady) / statistics.median(scans),
            "steady_repetitions_s": steady, "going_down_repetitions_s": going_down,
            "maxrss_growth_mib": _maxrss_mib() - rss_before, "maxrss_mib": _maxrss_mib()}


def run(quick: bool = False) -> dict[str, Any]:
    """SQLite always; PostgreSQL too when ``$TEST_DATABASE_URL`` is set (in a fresh
    schema, dropped afterwards: nothing in ``public`` is touched)."""
    p = QUICK if quick else FULL
    pings, ticks, databases = [], [], []
    with ExitStack() as stack:
        backends = [("sqlite", stack.enter_context(sqlite_database()))]
        if os.environ.get(TEST_DATABASE_URL_ENV):
            backends.append(("postgresql", stack.enter_context(
                postgres_database(os.environ[TEST_DATABASE_URL_ENV]))))
        for backend, url in backends:
            databases.append(safe_url(url))
            print(f"running heartbeat: pings on {backend} …", file=sys.stderr, flush=True)
            pings.append(bench_pings(url, backend, p))
            print(f"running heartbeat: sensor tick on {backend} …", file=sys.stderr,
                  flush=True)
            ticks.append(bench_tick(url, backend, p))
    return {"parameters": p, "quick": quick, "pings": pings, "ticks": ticks,
            "databases": databases}


def format_table(report: dict[str, Any]) -> str:
    out = ["heartbeat benchmark"]
    for r in report["pings"]:
        out.append(f"[{r['backend']}] pings {r['ping_per_s_median']:,.0f}/s vs do-nothing "
                   f"route {r['noop_per_s_median']:,.0f}/s (same server, {r['clients']} "
                   f"keep-alive clients): one ping costs {r['cost_ratio']:.2f} no-op requests"
                   f"; {r['errors']} errors")
    for r in report["ticks"]:
        out.append(f"[{r['backend']}] {r['name']}: {r['steady_s_median'] * 1000:.1f} ms with "
                   f"nothing overdue, {r['going_down_s_median'] * 1000:.0f} ms with "
                   f"{r['overdue']} going down ({r['going_down_cpu_s_median'] * 1000:.0f} ms CPU "
                   f"in this process); full scan of all rows "
                   f"{r['full_scan_s_median'] * 1000:.0f} ms (tick = "
                   f"{r['steady_vs_full_scan']:.3f} of it); peak RSS {r['maxrss_mib']:.0f} MiB"
                   f" (+{r['maxrss_growth_mib']:.0f})")
    out.append("medians over repetitions; target: a tick well under 1 s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    print(format_table(report))
    if not args.no_write:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS_FILE}")
    return 1 if any(r["errors"] for r in report["pings"]) else 0


if __name__ == "__main__":
    sys.exit(main())
