"""What resolving vanished alert instances costs when the timeline holds many open alerts.

After each complete evaluation of a ``redis_quota`` target or a ``score_drift`` segment,
``runtime.evaluate.resolve_vanished`` looks for the rule's open alerts that the
evaluation no longer produced (an edited label, a check turned off) and resolves them.
A tick of 200 targets does that 200 times. It used to read **every** open alert of the
timeline and keep the rule's; now it reads the rule's open alerts by the rule index
(``AlertStore.active_of``).

Workload: ``--open`` open (firing) alerts of another rule (default 5,000) plus one open
alert for each of ``--targets`` rules (default 200), on SQLite (temp file) and, with
``$TEST_DATABASE_URL``, PostgreSQL (a scratch schema). Measured, interleaved, median
of ``--reps`` (3): ``resolve_vanished`` for every target with its alert produced (so
nothing to resolve: the lookup is the whole cost), against the baseline in the same
run, the old lookup (every open alert read, the rule's kept) for every target. Checked:
both find the same alerts for every target. Writes ``results/open_alerts.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.evaluate import resolve_vanished
from alert_jobs.store import Timeline
from benchmarks.timeline_bench import (
    TEST_DATABASE_URL_ENV,
    BenchmarkError,
    aligned_table,
    postgres_database,
    sqlite_database,
)

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "open_alerts.json"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RULES = ("version: 1\nreceivers: [{name: console, type: console}]\n"
         "defaults: {receivers: [console]}\n")


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with sqlite_database() as url:
            yield url
        return
    with postgres_database(os.environ[TEST_DATABASE_URL_ENV]) as url:
        yield url


def _policy(rule: str) -> RulePolicy:
    return RulePolicy(rule=rule, severity=Severity.WARNING, receivers=("console",))


def _seed(timeline: Timeline, others: int, targets: list[str]) -> dict[str, str]:
    """``others`` firing alerts of rule ``other`` and one per target; each target's
    fingerprint."""
    obs = [(Observation("other", Status.ALERT, {"i": str(i)}, 1.0, summary="x"),
            _policy("other"), None) for i in range(others)]
    for start in range(0, len(obs), 1000):
        timeline.alerts.process_many(obs[start:start + 1000], now=NOW, flush=False)
    mine = [(Observation(t, Status.ALERT, {"check": "quota"}, 1.0, summary="x"), _policy(t),
             None) for t in targets]
    results = timeline.alerts.process_many(mine, now=NOW, flush=False)
    return {t: r.decision.record.fingerprint for t, r in zip(targets, results, strict=True)}


def bench(backend: str, others: int, n_targets: int, reps: int) -> dict[str, Any]:
    targets = [f"t{i:03d}" for i in range(n_targets)]
    rules = parse_rules(RULES + "checks:\n  sql_metric:\n" + "".join(
        f"    - {{name: {t}, database: 'sqlite://', query: SELECT 1, expect: {{max: 0}}}}\n"
        for t in targets))
    by_name = {rule.name: rule for rule in rules.rules_of(SqlMetricRule)}
    with _database(backend) as url:
        timeline = Timeline(url)
        timeline.upgrade()
        try:
            fingerprints = _seed(timeline, others, targets)

            def by_index() -> None:
                for t in targets:
                    resolved = resolve_vanished(rules, by_name[t], timeline, {fingerprints[t]},
                                                now=NOW, run_id="bench", flush=False)
                    if resolved:
                        raise BenchmarkError(f"{t}: resolved {len(resolved)}, expected none")

            def every_open_alert() -> None:
                for t in targets:
                    [a for a in timeline.alerts.list() if a.rule == t]

            for t in targets[:5]:  # both lookups find the same alerts
                old = sorted(a.fingerprint for a in timeline.alerts.list() if a.rule == t)
                if old != [a.fingerprint for a in timeline.alerts.active_of(t)] or \
                        old != [fingerprints[t]]:
                    raise BenchmarkError(f"{t}: the two lookups differ")
            times: dict[str, list[float]] = {"index": [], "scan": []}
            for _ in range(reps):
                for name, work in (("index", by_index), ("scan", every_open_alert)):
                    started = time.perf_counter()
                    work()
                    times[name].append(time.perf_counter() - started)
        finally:
            timeline.dispose()
    index, scan = statistics.median(times["index"]), statistics.median(times["scan"])
    return {"name": f"resolve_vanished for {n_targets} targets with {others:,} other open "
                    f"alerts [{backend}]", "backend": backend, "targets": n_targets,
            "open_alerts": others + n_targets, "seconds": index, "runs_s": times["index"],
            "baseline": {"name": "every open alert read per target (before)",
                         "seconds": scan, "runs_s": times["scan"]},
            "speed_up": scan / index}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    backends = ["sqlite"] + (["postgresql"] if os.environ.get(TEST_DATABASE_URL_ENV) else [])
    results = [bench(b, args.open, args.targets, args.reps) for b in backends]
    rows = [("resolve vanished instances", "rule index", "every open alert (before)",
             "speed-up")]
    rows += [(r["name"], f"{r['seconds'] * 1000:,.0f} ms",
              f"{r['baseline']['seconds'] * 1000:,.0f} ms", f"{r['speed_up']:,.0f}x")
             for r in results]
    print("\n".join(aligned_table(rows, {1, 2, 3})))
    print(f"medians of {args.reps} interleaved repetitions; per target: the lookup of its "
          "rule's open alerts after a complete evaluation (nothing to resolve)")
    if len(backends) == 1:
        print(f"postgresql: skipped (${TEST_DATABASE_URL_ENV} not set)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
