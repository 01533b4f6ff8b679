"""How fast ``alert-jobs`` starts: ``--help``, ``status`` and ``ping`` in a new process.

Every command is a new interpreter, as a shell or a cron job runs it, so start-up is the
cost. Baseline, same run: ``python -c pass`` (the interpreter alone). For reference, the
same run also times ``import alert_jobs.definitions`` — what Dagster pays to load the code
location (it imports Dagster; the CLI must not).

Measured per command: wall time and CPU time (user + system, from ``getrusage`` of the
children), median of interleaved repetitions (baseline, command, baseline, …), and the
cost ratio against the baseline. No timing is asserted; ``tests/cli/test_startup.py``
checks that these commands import no Dagster.

Run alone: ``python -m benchmarks.cli_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.timeline_bench import aligned_table

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "cli.json"
REPS = {"full": 11, "quick": 3}


@dataclass(frozen=True)
class Startup:
    name: str
    wall_s: float
    cpu_s: float
    baseline_wall_s: float
    baseline_cpu_s: float

    @property
    def ratio(self) -> float:
        return self.cpu_s / self.baseline_cpu_s if self.baseline_cpu_s else float("nan")

    def as_json(self) -> dict[str, float | str]:
        return {**asdict(self), "cpu_ratio": self.ratio}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def commands(workdir: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "alert_jobs.cli.main", "--database-url",
           f"sqlite:///{workdir / 'alerts.db'}"]
    return {
        "alert-jobs --help": [*cli, "--help"],
        "alert-jobs status": [*cli, "status"],
        "alert-jobs ping (server down)": [*cli, "ping", "bench",
                                          "--url", f"http://127.0.0.1:{_closed_port()}"],
        "import alert_jobs.definitions (Dagster)": [sys.executable, "-c",
                                                    "import alert_jobs.definitions"],
    }


def run(reps: int = REPS["full"]) -> list[Startup]:
    with tempfile.TemporaryDirectory(prefix="alert-jobs-cli-bench-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "DAGSTER_HOME": str(workdir),
               "ALERT_JOBS_RULES": str(Path(__file__).resolve().parents[1] / "alerts.yaml")}
        subprocess.run([sys.executable, "-m", "alert_jobs.cli.main", "--database-url",
                        f"sqlite:///{workdir / 'alerts.db'}", "db", "upgrade"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        baseline = [sys.executable, "-c", "pass"]
        out = []
        for name, argv in commands(workdir).items():
            _run(argv, env)  # warm the file cache once, as a second invocation would be
            samples, base = [], []
            for _ in range(reps):
                base.append(_run(baseline, env))
                samples.append(_run(argv, env))
            out.append(Startup(name, statistics.median(s[0] for s in samples),
                               statistics.median(s[1] for s in samples),
                               statistics.median(b[0] for b in base),
                               statistics.median(b[1] for b in base)))
        return out


def format_table(results: list[Startup]) -> str:
    rows = [("start-up (new process)", "wall", "cpu", "baseline: python -c pass (cpu)",
             "cpu ratio")]
    for r in results:
        rows.append((r.name, f"{r.wall_s * 1000:.0f} ms", f"{r.cpu_s * 1000:.0f} ms",
                     f"{r.baseline_cpu_s * 1000:.0f} ms", f"{r.ratio:.1f}x"))
    return "\n".join(aligned_table(rows, right={1, 2, 3, 4}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 11")
    args = parser.parse_args(argv)
    results = run(REPS["quick" if args.quick else "full"])
    print(format_table(results))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    print(f"\nwrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
