"""Under the daemon: N sql_metric rules on one every-minute schedule, for real.

The harness (:class:`DaemonSetup`, :func:`run_daemon`) builds a temporary
``DAGSTER_HOME`` with the repository's ``dagster.yaml``, a ``workspace.yaml`` that
loads this code location, a rules file of ``rules`` cheap ``sql_metric`` rules on
``* * * * *`` against a SQLite source and a SQLite timeline; runs ``dagster instance
migrate`` and ``alert-jobs db upgrade``; starts ``dagster-daemon run`` in its own
session; waits until ``ticks`` scheduled runs of the batch have finished (each tick is
one run of all rules); stops the daemon; and reads back, from the instance and the
timeline, every run of the batch (scheduled minute, start, end) and every evaluation.
Meanwhile it samples the CPU time of the daemon's whole process tree (daemon, code
server, run workers; a finished child's time counts in its parent's children time).

``tests/test_daemon_batch.py`` asserts on it (every rule once per minute, no overlap);
run alone, this module reports the machine's CPU per minute and per rule evaluation::

    python -m benchmarks.daemon_bench [--rules 200] [--ticks 3]

It is not part of ``make bench`` by itself (the lead wires it in).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
BATCH = "sql_metric_every_minute"
# The tick a scheduled run was launched for (set by the scheduler on every scheduled run);
# "dagster/schedule_name" says which schedule.
SCHEDULED_TAG = ".dagster/scheduled_execution_time"
SCHEDULE_NAME_TAG = "dagster/schedule_name"
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "daemon.json"


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class DaemonSetup:
    """The folder a daemon run lives in: instance, workspace, rules, source, timeline."""

    folder: Path
    rules: int = 200

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def rules_file(self) -> Path:
        return self.folder / "alerts.yaml"

    @property
    def timeline_url(self) -> str:
        return f"sqlite:///{self.folder / 'timeline.db'}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DAGSTER_HOME=str(self.home), ALERT_JOBS_RULES=str(self.rules_file),
                   ALERT_JOBS_DATABASE_URL=self.timeline_url, PYTHONUNBUFFERED="1")
        env.pop("ALERT_JOBS_LINK_SECRET", None)
        return env

    def write(self) -> None:
        """Instance, workspace, a source table, and ``rules`` rules on ``* * * * *``."""
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        (self.folder / "workspace.yaml").write_text(
            "load_from:\n  - python_module:\n      module_name: alert_jobs.definitions\n"
            f"      location_name: alert_jobs\n      working_directory: {ROOT}\n")
        source = self.folder / "source.db"
        with sqlite3.connect(source) as db:
            db.execute("CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, queue INTEGER)")
            db.execute("DELETE FROM jobs")
            db.executemany("INSERT INTO jobs (queue) VALUES (?)",
                           [(i % 50,) for i in range(5000)])
        # Alert quality starts today, so its catch-up sensor has no past days to fill in:
        # the batch's runs are the only runs, and the CPU measured is theirs.
        today = datetime.now(UTC).date().isoformat()
        lines = ["version: 1",
                 "defaults: {receivers: [console], schedule: '* * * * *', timezone: UTC}",
                 "receivers: [{name: console, type: console}]",
                 f"quality: {{start_date: '{today}'}}",
                 "checks:", "  sql_metric:"]
        for i in range(self.rules):
            lines.append(f"    - {{name: queue_{i:04d}, database: 'sqlite:///{source}', "
                         f"query: 'SELECT count(*) FROM jobs WHERE queue = {i % 50}', "
                         "expect: {max: 1000}}")
        self.rules_file.write_text("\n".join(lines) + "\n")

    def prepare(self) -> None:
        self.write()
        for argv in ([tool("dagster"), "instance", "migrate"],
                     [tool("alert-jobs"), "db", "upgrade"]):
            subprocess.run(argv, env=self.env, cwd=self.folder, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=180)


@dataclass
class BatchRun:
    run_id: str
    status: str
    minute: datetime | None  # the schedule tick it was launched for
    created: float
    start: float | None
    end: float | None


@dataclass
class DaemonResult:
    """What a daemon run did, read back after it stopped."""

    runs: list[BatchRun]
    evaluations: list[tuple[str, str]]  # (rule, run_id)
    skips: list[str]  # the batch schedule's skip messages
    cpu_samples: list[tuple[float, float]]  # (monotonic, CPU seconds of the tree)
    cpu_total: float  # CPU seconds of the daemon and all it started (waited for)
    seconds: float  # how long the daemon ran
    stopped_at: float = 0.0  # when the harness decided to stop (epoch seconds)
    log_tail: str = ""

    def finished(self) -> list[BatchRun]:
        return [r for r in self.runs if r.status == "SUCCESS" and r.minute is not None]

    def problems(self, rules: list[str], ticks: int) -> list[str]:
        """Why this is not "every rule once per minute, no two runs overlapping"."""
        out: list[str] = []
        done = sorted(self.finished(), key=lambda r: r.minute or datetime.min)
        # A run the stopping daemon launched in its last second is not a failure.
        failed = [r for r in self.runs if r.status != "SUCCESS"
                  and r.created < self.stopped_at - 1]
        if failed:
            out.append(f"runs of {BATCH} that did not succeed: "
                       f"{[(r.run_id, r.status) for r in failed]}")
        if len(done) < ticks:
            out.append(f"only {len(done)} scheduled run(s) of {BATCH} finished, wanted "
                       f"{ticks}; skip messages: {self.skips[-5:]}")
            return out
        minutes = [r.minute for r in done if r.minute is not None]
        gaps = [(a, b) for a, b in itertools.pairwise(minutes)
                if (b - a).total_seconds() != 60]
        if gaps:
            out.append(f"a minute without its run (or two runs for one minute): "
                       f"{[(f'{a:%H:%M}', f'{b:%H:%M}') for a, b in gaps]}; skips: "
                       f"{self.skips[-5:]}")
        per_run = Counter(run_id for _, run_id in self.evaluations)
        by_run_rule = Counter(self.evaluations)
        for run in done:
            if per_run[run.run_id] != len(rules):
                out.append(f"run {run.run_id} ({run.minute:%H:%M}) made {per_run[run.run_id]} "
                           f"evaluations, wanted {len(rules)} (one per rule)")
            twice = [rule for rule in rules if by_run_rule[(rule, run.run_id)] > 1]
            if twice:
                out.append(f"run {run.run_id} evaluated {twice[:5]} more than once")
        per_minute: Counter[tuple[str, datetime]] = Counter()
        minute_of = {r.run_id: r.minute for r in self.runs}
        for rule, run_id in self.evaluations:
            if minute_of.get(run_id) is not None:
                per_minute[(rule, minute_of[run_id])] += 1  # type: ignore[index]
        wrong = [(rule, f"{m:%H:%M}", per_minute[(rule, m)]) for m in minutes for rule in rules
                 if per_minute[(rule, m)] != 1]
        if wrong:
            out.append(f"rules not evaluated exactly once in a minute (rule, minute, count): "
                       f"{wrong[:10]}")
        spans = sorted((r.start, r.end, r.run_id) for r in self.runs
                       if r.start is not None and r.end is not None)
        for (_s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans):
            if s2 < e1:
                out.append(f"runs {a} and {b} of {BATCH} overlapped by {e1 - s2:.1f} s")
        return out

    def cpu_per_minute(self) -> float | None:
        """CPU seconds per minute of the tree, over the sampled span after the first run."""
        if len(self.cpu_samples) < 2:
            return None
        (t0, c0), (t1, c1) = self.cpu_samples[0], self.cpu_samples[-1]
        return (c1 - c0) / (t1 - t0) * 60 if t1 > t0 else None


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of ``root`` and its live descendants, with the children each has
    waited for (a run worker that exited counts in its parent's children time)."""
    total = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + getattr(t, "children_user", 0.0) \
                + getattr(t, "children_system", 0.0)
    return total


def run_daemon(setup: DaemonSetup, *, ticks: int = 3, min_seconds: float = 180.0,
               timeout: float = 360.0, sample_every: float = 1.0) -> DaemonResult:
    """Start the daemon; once ``ticks`` scheduled runs have finished, it has run for
    ``min_seconds`` and no run of the batch is in progress (or after ``timeout``
    seconds), stop it; read back runs and evaluations."""
    import dagster as dg

    log_path = setup.folder / "daemon.log"
    before = _children_cpu()
    started = time.monotonic()
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [tool("dagster-daemon"), "run", "-w", str(setup.folder / "workspace.yaml")],
            env=setup.env, cwd=setup.folder, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        root = psutil.Process(daemon.pid)
        samples: list[tuple[float, float]] = []
        first_start: float | None = None
        stopped_at = 0.0
        try:
            with dg.DagsterInstance.from_config(str(setup.home)) as instance:
                while time.monotonic() - started < timeout and daemon.poll() is None:
                    cpu = _tree_cpu(root)
                    records = instance.get_run_records(
                        dg.RunsFilter(tags={"alert_jobs/batch": BATCH}))
                    done = [r for r in records
                            if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
                            and SCHEDULE_NAME_TAG in r.dagster_run.tags]
                    if first_start is None and records:
                        first_start = time.monotonic()
                    if first_start is not None:
                        samples.append((time.monotonic(), cpu))
                    going = [r for r in records if r.dagster_run.status in (
                        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)]
                    if len(done) >= ticks and not going \
                            and time.monotonic() - started >= min_seconds:
                        break
                    time.sleep(sample_every)
        finally:
            stopped_at = time.time()
            _stop(daemon)
    seconds = time.monotonic() - started
    cpu_total = _children_cpu() - before
    result = _read_back(setup, samples, cpu_total, seconds)
    result.stopped_at = stopped_at
    result.log_tail = log_path.read_text(errors="replace")[-4000:]
    return result


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the daemon (it stops its threads and code server), then its group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
    deadline = time.monotonic() + 20  # run workers and the code server end with it
    while time.monotonic() < deadline:
        try:
            os.killpg(daemon.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(daemon.pid, signal.SIGKILL)


def _read_back(setup: DaemonSetup, samples: list[tuple[float, float]], cpu_total: float,
               seconds: float) -> DaemonResult:
    import dagster as dg
    import sqlalchemy as sa

    runs: list[BatchRun] = []
    skips: list[str] = []
    with dg.DagsterInstance.from_config(str(setup.home)) as instance:
        for record in instance.get_run_records(dg.RunsFilter(tags={"alert_jobs/batch": BATCH})):
            run = record.dagster_run
            scheduled = run.tags.get(SCHEDULED_TAG)
            minute = None
            if scheduled:
                minute = datetime.fromisoformat(scheduled).astimezone(UTC)
            elif SCHEDULE_NAME_TAG in run.tags:  # the tick's minute: when the run was created
                minute = record.create_timestamp.astimezone(UTC).replace(second=0,
                                                                          microsecond=0)
            runs.append(BatchRun(run.run_id, run.status.value, minute,
                                 record.create_timestamp.timestamp(), record.start_time,
                                 record.end_time))
        for state in instance.all_instigator_state():
            if state.name == f"{BATCH}_schedule":
                for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                               limit=50):
                    if tick.skip_reason:
                        skips.append(tick.skip_reason)
    engine = sa.create_engine(setup.timeline_url)
    with engine.connect() as conn:
        evaluations = [(r[0], r[1]) for r in conn.execute(sa.text(
            "SELECT rule, run_id FROM alert_evaluations WHERE run_id IS NOT NULL"))]
    engine.dispose()
    return DaemonResult(runs, evaluations, skips, samples, cpu_total, seconds)


def report(setup: DaemonSetup, result: DaemonResult) -> dict[str, Any]:
    done = result.finished()
    per_minute = result.cpu_per_minute()
    durations = sorted((r.end or 0) - (r.start or 0) for r in done)
    out: dict[str, Any] = {
        "rules": setup.rules,
        "scheduled_runs_finished": len(done),
        "daemon_seconds": round(result.seconds, 1),
        "cpu_seconds_total": round(result.cpu_total, 1),
        "cpu_seconds_per_minute": round(per_minute, 2) if per_minute is not None else None,
        "cpu_ms_per_rule_evaluation": round(per_minute / setup.rules * 1000, 1)
        if per_minute is not None else None,
        "run_seconds_median": round(durations[len(durations) // 2], 2) if durations else None,
        "problems": result.problems([f"queue_{i:04d}" for i in range(setup.rules)],
                                    len(done) or 1),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alert-jobs-daemon-") as tmp:
        setup = DaemonSetup(Path(tmp), rules=args.rules)
        setup.prepare()
        result = run_daemon(setup, ticks=args.ticks, min_seconds=60.0 * args.ticks,
                            timeout=150 + 70 * args.ticks)
        figures = report(setup, result)
    print(f"daemon, {figures['rules']} sql_metric rules on '* * * * *' (one batch), "
          f"{figures['scheduled_runs_finished']} ticks:")
    print(f"  CPU of the daemon and its runs: {figures['cpu_seconds_per_minute']} s per "
          f"minute = {figures['cpu_ms_per_rule_evaluation']} ms per rule evaluation "
          f"(total {figures['cpu_seconds_total']} s in {figures['daemon_seconds']} s, "
          "start-up included)")
    print(f"  run duration (median): {figures['run_seconds_median']} s")
    for problem in figures["problems"]:
        print(f"  PROBLEM: {problem}")
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(figures, indent=2))
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
