"""Pings under load: a real ``alert-jobs serve`` with 1,000 declared checks vs 10.

Issue #16 point 5: with 1,000 declared heartbeat checks the ping server re-parsed the
rules file (about 1 s) every 2 s under a lock inside the request path. This benchmark
starts ``alert-jobs serve`` as a subprocess (as in production: the CLI, uvicorn, the
rules file, SQLite or PostgreSQL), twice in the same run — once with a rules file of
1,000 declared checks, once with 10 (the baseline) — and loads each from a separate
process of plain-socket asyncio HTTP/1.1 keep-alive clients (32 connections; an httpx
client would eat the CPU the server needs on a 2-core machine):

* **flat-out**: every connection sends its next ping as soon as the last one answered;
  throughput (2xx pings/s) and latency p50/p99;
* **paced**: 1,000 pings/s on a fixed schedule; each request's latency is measured from
  the moment it was *due* (so a server that falls behind shows it, no coordinated
  omission), p50/p99.

Pings go round-robin over the declared slugs. Afterwards each database must hold every
2xx ping: the sum of ``n_pings`` over the heartbeat rows (counted in the same
transaction as the ping's row) equals the 2xx count of all cases. Repetitions alternate
the two servers (10, 1000, 10, 1000 …); the report gives medians and the 1,000 ÷ 10
ratio. Target (issue): ≥ 1,000 pings/s and p99 < 50 ms with 1,000 checks on 2 cores.

Run alone: ``python -m benchmarks.ping_bench [--quick] [--server-tree DIR]``;
``--server-tree`` runs the server from another checkout (how the "before" figures of
``benchmarks/README.md`` were taken). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.timeline_bench import TEST_DATABASE_URL_ENV, postgres_database, sqlite_database

ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = ROOT / "benchmarks" / "results" / "pings.json"
FULL = {"checks": [10, 1000], "reps": 3, "flat_pings": 12_000, "paced_rate": 1000,
        "paced_seconds": 8.0, "connections": 32}
QUICK = {"checks": [10, 50], "reps": 1, "flat_pings": 600, "paced_rate": 200,
         "paced_seconds": 1.0, "connections": 8}


def rules_text(n: int) -> str:
    lines = ["defaults: {receivers: [console]}", "checks:", "  heartbeat:"]
    lines += [f"    - {{name: job_{i:04d}, period: 1d, grace: 1h}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def slugs(n: int) -> list[str]:
    return [f"job_{i:04d}" for i in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----- the load process (plain sockets, asyncio) -------------------------------------


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               request: bytes) -> int:
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def _load(port: int, names: list[str], mode: str, total: int, rate: float,
                connections: int) -> dict[str, Any]:
    requests = [f"GET /ping/{s} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                for s in names]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(total))
    start = time.perf_counter() + 0.05

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in counter:
                due = start + i / rate if mode == "paced" else None
                if due is not None:
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent = time.perf_counter()
                try:
                    code = await _one(reader, writer, requests[i % len(requests)])
                except (ConnectionError, asyncio.IncompleteReadError):
                    code = 599
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latencies.append(time.perf_counter() - (due if due is not None else sent))
                statuses[code] = statuses.get(code, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - max(t0, start if mode == "paced" else t0)
    latencies.sort()
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    return {"mode": mode, "sent": total, "ok": ok, "statuses": statuses,
            "elapsed_s": elapsed, "pings_per_s": ok / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max_ms": 1000 * latencies[-1]}


def load(port: int, names: list[str], mode: str, total: int, rate: float,
         connections: int) -> dict[str, Any]:
    """Run the load in a separate Python process; returns its measurements."""
    spec = json.dumps({"port": port, "names": names, "mode": mode, "total": total,
                       "rate": rate, "connections": connections})
    out = subprocess.run([sys.executable, "-m", "benchmarks.ping_bench", "--load", spec],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# ----- the server under test ---------------------------------------------------------


@contextmanager
def server(db_url: str, n_checks: int, tree: Path) -> Iterator[tuple[int, int]]:
    """``alert-jobs serve`` from ``tree`` with ``n_checks`` declared checks; its port
    and pid."""
    with tempfile.TemporaryDirectory(prefix="alert-jobs-pingbench-") as tmp:
        rules = Path(tmp) / "alerts.yaml"
        rules.write_text(rules_text(n_checks))
        env = {**os.environ, "PYTHONPATH": str(tree), "DAGSTER_HOME": tmp,
               "ALERT_JOBS_LINK_SECRET": "bench-secret-0123456789"}
        cli = [sys.executable, "-m", "alert_jobs.cli.main", "--rules", str(rules),
               "--database-url", db_url]
        subprocess.run([*cli, "db", "upgrade"], env=env, cwd=tree, check=True,
                       capture_output=True)
        port = _free_port()
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env, cwd=tree,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, proc, Path(tmp) / "serve.log")
            # one ping per check first: rows exist, as in production (not timed)
            load(port, slugs(n_checks), "flat", n_checks, 1.0, 4)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not answer /healthz within 60 s")


def stored_pings(db_url: str) -> int:
    from alert_jobs.store import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT COALESCE(SUM(n_pings), 0) FROM alert_heartbeats")).scalar() or 0)
    finally:
        engine.dispose()


# ----- the run -----------------------------------------------------------------------


def bench_backend(backend: str, base_url: str | None, p: dict[str, Any], tree: Path
                  ) -> dict[str, Any]:
    with ExitStack() as stack:
        urls, ports, pids = {}, {}, {}
        for n in p["checks"]:
            url = stack.enter_context(sqlite_database() if base_url is None
                                      else postgres_database(base_url))
            urls[n] = url
            ports[n], pids[n] = stack.enter_context(server(url, n, tree))
        runs: dict[int, dict[str, list[dict[str, Any]]]] = {
            n: {"flat": [], "paced": []} for n in p["checks"]}
        ok = {n: n for n in p["checks"]}  # the warm-up pings
        for rep in range(p["reps"]):
            order = p["checks"] if rep % 2 == 0 else list(reversed(p["checks"]))
            for n in order:
                cpu0 = cpu_seconds(pids[n])
                flat = load(ports[n], slugs(n), "flat", p["flat_pings"], 1.0,
                            p["connections"])
                cpu1 = cpu_seconds(pids[n])
                paced = load(ports[n], slugs(n), "paced",
                             int(p["paced_rate"] * p["paced_seconds"]), p["paced_rate"],
                             p["connections"])
                cpu2 = cpu_seconds(pids[n])
                flat["server_cpu_ms_per_ping"] = 1000 * (cpu1 - cpu0) / max(1, flat["sent"])
                paced["server_cpu_ms_per_ping"] = 1000 * (cpu2 - cpu1) / max(1, paced["sent"])
                runs[n]["flat"].append(flat)
                runs[n]["paced"].append(paced)
                ok[n] += flat["ok"] + paced["ok"]
        out: dict[str, Any] = {"backend": backend, "cases": {}}
        for n in p["checks"]:
            stored = stored_pings(urls[n])
            out["cases"][str(n)] = {
                "checks": n,
                "flat_pings_per_s": statistics.median(r["pings_per_s"] for r in runs[n]["flat"]),
                "flat_p50_ms": statistics.median(r["p50_ms"] for r in runs[n]["flat"]),
                "flat_p99_ms": statistics.median(r["p99_ms"] for r in runs[n]["flat"]),
                "paced_pings_per_s": statistics.median(
                    r["pings_per_s"] for r in runs[n]["paced"]),
                "paced_p50_ms": statistics.median(r["p50_ms"] for r in runs[n]["paced"]),
                "paced_p99_ms": statistics.median(r["p99_ms"] for r in runs[n]["paced"]),
                "server_cpu_ms_per_ping": statistics.median(
                    r["server_cpu_ms_per_ping"] for r in [*runs[n]["flat"], *runs[n]["paced"]]),
                "non_2xx": sum(c for r in [*runs[n]["flat"], *runs[n]["paced"]]
                               for code, c in r["statuses"].items()
                               if not 200 <= int(code) < 300),
                "ok_2xx": ok[n], "stored": stored, "all_2xx_stored": stored >= ok[n],
                "runs": runs[n],
            }
        return out


def run(quick: bool = False, tree: Path = ROOT, **overrides: Any) -> dict[str, Any]:
    p = {**(QUICK if quick else FULL), **{k: v for k, v in overrides.items() if v}}
    backends = [("sqlite", None)]
    if os.environ.get(TEST_DATABASE_URL_ENV):
        backends.append(("postgresql", os.environ[TEST_DATABASE_URL_ENV]))
    results = [bench_backend(name, url, p, tree) for name, url in backends]
    return {"parameters": p, "server_tree": str(tree), "results": results}


def format_table(report: dict[str, Any]) -> str:
    p = report["parameters"]
    lo, hi = (str(n) for n in p["checks"])
    lines = [f"ping benchmark: alert-jobs serve, {p['connections']} keep-alive connections, "
             f"flat-out {p['flat_pings']:,} pings, paced {p['paced_rate']:,}/s for "
             f"{p['paced_seconds']:g} s; medians of {p['reps']}; {hi} checks vs {lo} "
             f"(ratio = {hi} ÷ {lo})"]
    header = f"{'backend':<11}{'checks':>7}{'flat /s':>10}{'flat p50':>10}{'flat p99':>10}" \
             f"{'paced p50':>11}{'paced p99':>11}{'CPU/ping':>10}{'non-2xx':>9}{'2xx stored':>12}"
    lines.append(header)
    for r in report["results"]:
        for n in (lo, hi):
            c = r["cases"][n]
            lines.append(f"{r['backend']:<11}{n:>7}{c['flat_pings_per_s']:>10,.0f}"
                         f"{c['flat_p50_ms']:>8.1f}ms{c['flat_p99_ms']:>8.1f}ms"
                         f"{c['paced_p50_ms']:>9.1f}ms{c['paced_p99_ms']:>9.1f}ms"
                         f"{c['server_cpu_ms_per_ping']:>8.2f}ms"
                         f"{c['non_2xx']:>9}{'all' if c['all_2xx_stored'] else 'NO':>12}")
        a, b = r["cases"][lo], r["cases"][hi]
        lines.append(f"{r['backend']:<11}{'ratio':>7}"
                     f"{b['flat_pings_per_s'] / a['flat_pings_per_s']:>10.2f}"
                     f"{b['flat_p50_ms'] / a['flat_p50_ms']:>10.2f}"
                     f"{b['flat_p99_ms'] / a['flat_p99_ms']:>10.2f}"
                     f"{b['paced_p50_ms'] / a['paced_p50_ms']:>11.2f}"
                     f"{b['paced_p99_ms'] / a['paced_p99_ms']:>11.2f}"
                     f"{b['server_cpu_ms_per_ping'] / a['server_cpu_ms_per_ping']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--server-tree", type=Path, default=ROOT,
                        help="run alert-jobs serve from this checkout")
    parser.add_argument("--reps", type=int)
    parser.add_argument("--flat-pings", type=int)
    parser.add_argument("--paced-seconds", type=float)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the load process's entry
    args = parser.parse_args(argv)
    if args.load:
        spec = json.loads(args.load)
        print(json.dumps(asyncio.run(_load(**spec))))
        return 0
    report = run(quick=args.quick, tree=args.server_tree.resolve(), reps=args.reps,
                 flat_pings=args.flat_pings, paced_seconds=args.paced_seconds)
    print(format_table(report))
    if args.server_tree.resolve() == ROOT and not args.quick:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2))
    failed = any(not c["all_2xx_stored"] for r in report["results"]
                 for c in r["cases"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
