"""How long a crash of the deliverer delays notifications: kill -9 mid-batch, then recover.

For each backend (SQLite; PostgreSQL when ``$TEST_DATABASE_URL`` is set, in a fresh
``bench_<random>`` schema):

1. 200 messages are queued in a fresh timeline; a real ``alert-jobs deliver`` process
   (``python -m alert_jobs.cli.main``, the **default lease**: ``$ALERT_JOBS_DELIVERY_LEASE``
   is removed from its environment) sends them to the local webhook receiver
   (``benchmarks/webhook_receiver.py``, its own process, answering after 50 ms so the
   kill lands mid-batch);
2. once 64 messages have reached the receiver it is killed with SIGKILL;
3. a simulated delivery sensor polls ``timeline.outbox.due_count()`` (the retry sensor's
   own query) every 0.25 s of real time until the dead run's rows are due — measured;
4. the sensor's interval is *modelled*, not slept: the real retry sensor ticks every
   ``minimum_interval_seconds`` (60 s, read from ``outbox_retry_sensor``), so the run
   starts 0 s (best), 30 s (mean) or 60 s (worst) after the rows are due;
5. the rerun, a new ``alert-jobs deliver`` process started at once, runs until it exits —
   measured (start-up included; a Dagster run adds its launch time, not measured here).

Reported: seconds from the kill to the last message delivered (measured kill → due +
modelled tick + measured rerun), best / mean / worst, against the **baseline "old
lease formula"**: the lease the code before issue #16 put on every claim,
``max(120, ceil(limit / 16) · 30 + 60)`` = 1,020 s for ``deliver()``'s limit of 500,
counted from the dead run's claim (its first send, measured in this run), plus the same
tick model and the same measured rerun. The baseline is computed from that formula, not
sat through (17 minutes per backend). Checked (the benchmark fails otherwise): the kill
landed mid-batch, every message reached the receiver, none more than twice, nothing
left undelivered. The target (issue #16): worst case under 120 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alert_jobs.notify.contract import sample_group
from alert_jobs.notify.send import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE
from alert_jobs.runtime.batch import LEASE_ENV, delivery_lease
from alert_jobs.store import Timeline, utcnow
from benchmarks.delivery_bench import LocalReceiver, local_receiver
from benchmarks.timeline_bench import (
    TEST_DATABASE_URL_ENV,
    BenchmarkError,
    aligned_table,
    postgres_database,
    sqlite_database,
)

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "recovery.json"
MESSAGES = 200
DELAY_MS = 50.0
KILL_AFTER = 64  # messages at the receiver: four waves of 16 into a batch of ~13 waves
OLD_LIMIT = 500  # deliver()'s claim limit, which the old lease was computed from
POLL_S = 0.25
TARGET_S = 120.0
START_TIMEOUT_S = 120.0
RERUN_TIMEOUT_S = 300.0


def old_lease_s(limit: int = OLD_LIMIT, concurrency: int = DEFAULT_CONCURRENCY,
                deadline: float = DEFAULT_DEADLINE) -> float:
    """The lease before issue #16: long enough for the whole batch limit."""
    return max(120.0, math.ceil(limit / concurrency) * deadline + 60.0)


def sensor_interval_s() -> float:
    """The real retry sensor's interval (imports Dagster: read, not assumed)."""
    from alert_jobs.sensors.outbox import outbox_retry_sensor

    return float(outbox_retry_sensor.minimum_interval_seconds or 30)


def _deliver(rules: Path, url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != LEASE_ENV}  # the default lease
    return subprocess.Popen([sys.executable, "-m", "alert_jobs.cli.main", "--rules", str(rules),
                             "--database-url", url, "deliver"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(rx: LocalReceiver, at_least: int, proc: subprocess.Popen[str]) -> float:
    """Poll the receiver until ``at_least`` messages reached it; returns perf_counter."""
    give_up = time.perf_counter() + START_TIMEOUT_S
    while rx.stats()["ok"] < at_least:
        if proc.poll() is not None:
            raise BenchmarkError(f"deliver exited ({proc.returncode}) before "
                                 f"{at_least} sends: {proc.communicate()[1][-500:]}")
        if time.perf_counter() > give_up:
            raise BenchmarkError(f"fewer than {at_least} sends in {START_TIMEOUT_S:g} s")
        time.sleep(0.002)
    return time.perf_counter()


def crash_and_recover(rx: LocalReceiver, url: str, backend: str, tmp: Path,
                      interval_s: float) -> dict[str, Any]:
    rules = tmp / f"{backend}.yaml"
    rules.write_text("receivers:\n  - {name: console, type: console}\n"
                     f"  - {{name: hook, type: webhook, url: '{rx.url}'}}\n")
    timeline = Timeline(url)
    try:
        timeline.upgrade()
        for i in range(MESSAGES):
            key = f"hook:recovery:{backend}:{i:04d}"
            timeline.outbox.enqueue("hook", "firing", key, dict(sample_group(dedup_key=key)))
        rx.reset(delay_ms=DELAY_MS)

        proc = _deliver(rules, url)
        try:
            first_send = _wait_for(rx, 1, proc)  # the claim happened just before
            _wait_for(rx, KILL_AFTER, proc)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        proc.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        killed_at = utcnow()
        proc.communicate(timeout=30)
        reached = rx.stats()["ok"]
        rows = timeline.outbox.rows(pending_only=True)
        unsent = len(rows)
        lease_until: datetime = max(r["claimed_until"] for r in rows) if rows else killed_at
        marked = MESSAGES - unsent

        # The simulated sensor: its own query, polled until the dead run's rows are due.
        due = 0
        while due == 0 and time.perf_counter() - killed < 10 * delivery_lease().total_seconds():
            due = timeline.outbox.due_count()
            if due == 0:
                time.sleep(POLL_S)
        due_after = time.perf_counter() - killed
        rerun_start = time.perf_counter()
        rerun = _deliver(rules, url)
        out, err = rerun.communicate(timeout=RERUN_TIMEOUT_S)
        rerun_s = time.perf_counter() - rerun_start
        left = len(timeline.outbox.rows(pending_only=True))
    finally:
        timeline.dispose()
    stats = rx.stats()

    problems: list[str] = []
    if not 0 < reached < MESSAGES:
        problems.append(f"the kill did not land mid-batch ({reached} of {MESSAGES} sent)")
    if due != unsent:
        problems.append(f"the sensor saw {due} due, {unsent} were left unsent")
    if rerun.returncode != 0:
        problems.append(f"the rerun exited {rerun.returncode}: {err[-300:]}")
    if left or stats["distinct_ok"] != MESSAGES:
        problems.append(f"{left} undelivered, {stats['distinct_ok']} of {MESSAGES} reached "
                        "the receiver")
    if stats["max_per_key"] > 2:
        problems.append(f"a message reached the receiver {stats['max_per_key']} times")

    since_claim = killed - first_send
    old_due_after = max(0.0, old_lease_s() - since_claim)
    ticks = {"best": 0.0, "mean": interval_s / 2, "worst": interval_s}
    return {
        "backend": backend,
        "messages": MESSAGES,
        "receiver_delay_ms": DELAY_MS,
        "lease_s": delivery_lease().total_seconds(),
        "sensor_interval_s": interval_s,
        "sent_before_kill": reached,
        "marked_before_kill": marked,
        "left_leased_at_kill": unsent,
        "lease_ran_out_s_after_kill": (lease_until - killed_at).total_seconds(),
        "due_after_s": due_after,
        "rerun_s": rerun_s,
        "rerun_output": out.strip(),
        "recovery_s": {k: due_after + tick + rerun_s for k, tick in ticks.items()},
        "duplicates": stats["duplicates_ok"],
        "max_per_message": stats["max_per_key"],
        "baseline": {
            "name": "old lease formula",
            "lease_s": old_lease_s(),
            "formula": f"max(120, ceil({OLD_LIMIT}/{DEFAULT_CONCURRENCY})*"
                       f"{DEFAULT_DEADLINE:g}+60)",
            "claim_to_kill_s": since_claim,
            "due_after_s": old_due_after,
            "recovery_s": {k: old_due_after + tick + rerun_s for k, tick in ticks.items()},
            "resent": reached,
            "resent_meaning": "the old code marked nothing before the batch ended, so every "
                              "message sent before the kill is sent again",
        },
        "ok": not problems,
        "problems": problems,
    }


@contextmanager
def _backends() -> Iterator[list[tuple[str, str]]]:
    with ExitStack() as stack:
        found = [("sqlite", stack.enter_context(sqlite_database()))]
        pg = os.environ.get(TEST_DATABASE_URL_ENV)
        if pg:
            found.append(("postgresql", stack.enter_context(postgres_database(pg))))
        yield found


def run() -> dict[str, Any]:
    interval = sensor_interval_s()
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if not os.environ.get(TEST_DATABASE_URL_ENV):
        skipped["postgresql"] = f"${TEST_DATABASE_URL_ENV} not set"
    with local_receiver() as rx, _backends() as backends, \
            tempfile.TemporaryDirectory(prefix="alert-jobs-bench-rec-") as tmp:
        for backend, url in backends:
            print(f"running recovery: kill -9 mid-batch on {backend} (waits one lease) …",
                  file=sys.stderr, flush=True)
            results.append(crash_and_recover(rx, url, backend, Path(tmp), interval))
    return {"results": results, "skipped": skipped, "target_s": TARGET_S}


def format_table(report: dict[str, Any]) -> str:
    header = ("recovery after kill -9", "backend", "kill→due", "rerun", "best", "mean", "worst",
              "baseline worst", "speed-up", "dup")
    rows = [header]
    for r in report["results"]:
        base = r["baseline"]
        rows.append((f"lease {r['lease_s']:g} s, tick {r['sensor_interval_s']:g} s",
                     r["backend"], f"{r['due_after_s']:.1f} s", f"{r['rerun_s']:.1f} s",
                     *(f"{r['recovery_s'][k]:.0f} s" for k in ("best", "mean", "worst")),
                     f"{base['recovery_s']['worst']:,.0f} s",
                     f"{base['recovery_s']['worst'] / r['recovery_s']['worst']:.1f}x",
                     f"{r['duplicates']}"))
    out = aligned_table(rows, {2, 3, 4, 5, 6, 7, 8, 9})
    out.append("")
    out.append(f"{MESSAGES} messages to a receiver answering after {DELAY_MS:g} ms; "
               f"`alert-jobs deliver` killed with SIGKILL after {KILL_AFTER} sends; kill→due "
               "and the rerun (a new process) are measured, the sensor tick is modelled "
               "(0 / half / one interval after the rows are due); target: worst under "
               f"{report['target_s']:g} s")
    for r in report["results"]:
        base = r["baseline"]
        out.append(
            f"[{r['backend']}] at the kill: {r['sent_before_kill']} sent, "
            f"{r['marked_before_kill']} already marked, {r['left_leased_at_kill']} left "
            f"leased (lease ran out {r['lease_ran_out_s_after_kill']:.1f} s after the kill); "
            f"rerun: {r['rerun_output']}; receiver: {r['duplicates']} duplicates, at most "
            f"{r['max_per_message']} per message. Baseline \"{base['name']}\" "
            f"({base['formula']} = {base['lease_s']:,.0f} s from the claim, "
            f"{base['claim_to_kill_s']:.1f} s before the kill): due after "
            f"{base['due_after_s']:,.0f} s, {base['resent']} resent"
            + ("" if r["ok"] else " — FAILED: " + "; ".join(r["problems"])))
    for name, why in report["skipped"].items():
        out.append(f"{name}: skipped ({why})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not write results")
    args = parser.parse_args(argv)
    report = run()
    print(format_table(report))
    if not args.no_write:
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS_FILE}")
    return 0 if all(r["ok"] for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
