"""What a baseline rule's evaluation adds: the slot's history read and the judgement.

Data: ``--rules`` rules (default 1,000), each with ``--days`` (28) of 5-minute
evaluations in ``alert_evaluations`` (8,064 per rule and a day more, 8.4 M in all; 1 %
alerting, left out by the read), bulk-loaded (``executemany`` on SQLite, ``COPY`` on PostgreSQL).

Measured per rule, in batches of :data:`BATCH` rules as a run evaluates its batch (the
time per rule is the batch's over its size), medians over ``--repeat`` passes, each rule
at a different time of the week:

* **read**: :meth:`BaselineStore.read` of the ``hour_of_week`` slot (4 ranges, 48 rows)
  and the evaluations of the last 6 hours (72 rows, today's level), one statement,
  counted;
* **assess**: :func:`alert_jobs.runtime.baseline.assess_value` (slot ranges + read +
  median/MAD band at today's level), what :mod:`alert_jobs.families.sql_metric.run`
  calls per rule.

Target (issue #14): under 10 ms per rule. Run::

    .venv/bin/python -m benchmarks.baseline_store_bench [--db sqlite|postgresql]
        [--url URL] [--rules 1000] [--days 28]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alert_jobs.config import Baseline
from alert_jobs.core.baseline import RECENT, slot_ranges
from alert_jobs.core.model import fingerprint
from alert_jobs.runtime.baseline import assess_value
from alert_jobs.store import Timeline

NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
BATCH = 200
SPEC = Baseline()  # hour_of_week, 28 days, width 4, 20 points


def rows(rule: str, days: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    fp = fingerprint(rule, {})
    at = NOW - timedelta(days=days + 1, hours=1)  # every measured slot is complete
    while at < NOW:
        hour = at.hour + at.minute / 60
        value = 1000 * (1 + 0.5 * math.sin(2 * math.pi * (hour - 8) / 24)) * rng.uniform(0.95,
                                                                                          1.05)
        status = "alert" if rng.random() < 0.01 else "ok"
        details = f'{{"expected_value": {value * rng.uniform(0.97, 1.03):.1f}}}'
        yield at, rule, fp, status, value, "", "", "inactive", None, details
        at += STEP


def load(timeline: Timeline, n: int, days: int) -> None:
    timeline.upgrade()
    names = [f"rule_{i:04d}" for i in range(n)]
    raw = timeline.engine.raw_connection()
    try:
        cur = raw.cursor()
        if timeline.dialect == "sqlite":
            sql = ("INSERT INTO alert_evaluations (at, rule, fingerprint, status, value, "
                   "expected, summary, state_after, run_id, details) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            cur.execute("BEGIN")
            for i, name in enumerate(names):
                cur.executemany(sql, [(at.replace(tzinfo=None).strftime(
                    "%Y-%m-%d %H:%M:%S.%f"), *rest) for at, *rest in rows(name, days, i)])
            cur.execute("COMMIT")
        else:
            with cur.copy("COPY alert_evaluations (at, rule, fingerprint, status, value, "
                          "expected, summary, state_after, run_id, details) FROM STDIN") as cp:
                for i, name in enumerate(names):
                    for row in rows(name, days, i):
                        cp.write_row(row)
            raw.commit()
            cur.execute("ANALYZE alert_evaluations")
            raw.commit()
    finally:
        raw.close()


def measure(timeline: Timeline, n: int, repeat: int) -> dict[str, float]:
    names = [f"rule_{i:04d}" for i in range(n)]
    fps = [fingerprint(name, {}) for name in names]
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    history_ms: list[float] = []
    assess_ms: list[float] = []
    rows_read: list[int] = []
    recent_read: list[int] = []
    for r in range(repeat):
        for start in range(0, n, BATCH):
            part = list(range(start, min(n, start + BATCH)))
            # each rule at another time of the week (the last day of the history)
            nows = [NOW - timedelta(minutes=5 * ((i * 37 + r * 11) % 288)) for i in part]
            ranges = [slot_ranges(at, SPEC.season, SPEC.history, "UTC") for at in nows]
            sa.event.listen(timeline.engine, "before_cursor_execute", count)
            statements = 0
            began = time.perf_counter()
            for i, rr, at in zip(part, ranges, nows, strict=True):
                read = timeline.baselines.read(names[i], fps[i], rr, recent=(at - RECENT, at))
                rows_read.append(len(read.points))
                recent_read.append(len(read.recent))
            history_ms.append((time.perf_counter() - began) * 1000 / len(part))
            sa.event.remove(timeline.engine, "before_cursor_execute", count)
            assert statements == len(part), (statements, len(part))
            began = time.perf_counter()
            for i, at in zip(part, nows, strict=True):
                judged = assess_value(timeline, rule=names[i], fingerprint=fps[i], value=1000.0,
                                      spec=SPEC, now=at, timezone="UTC", state=None)
                assert judged.assessment.band is not None
            assess_ms.append((time.perf_counter() - began) * 1000 / len(part))
    return {"history_ms": statistics.median(history_ms),
            "assess_ms": statistics.median(assess_ms),
            "rows_per_read": statistics.median(rows_read),
            "recent_per_read": statistics.median(recent_read)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'alerts.db'}"
            schema = None
        else:
            schema = f"bench_baseline_{int(time.time())}"
            admin = sa.create_engine(args.url.replace("postgresql://",
                                                      "postgresql+psycopg://", 1))
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            url = f"{args.url}?options=-csearch_path%3D{schema}"
        try:
            timeline = Timeline(url)
            began = time.perf_counter()
            load(timeline, args.rules, args.days)
            loaded = time.perf_counter() - began
            figures = measure(timeline, args.rules, args.repeat)
            timeline.dispose()
        finally:
            if schema is not None:
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                admin.dispose()
    stored = args.rules * ((args.days + 1) * 288 + 12)
    print(f"{args.db}: {args.rules} rules × {args.days} days of 5-minute evaluations "
          f"({stored:,} rows, loaded in {loaded:.0f} s)")
    print(f"  read (1 statement, {figures['rows_per_read']:.0f} slot rows + "
          f"{figures['recent_per_read']:.0f} recent): "
          f"{figures['history_ms']:.3f} ms per rule (median of batches of {BATCH})")
    print(f"  assess_value (ranges + read + band): {figures['assess_ms']:.3f} ms per rule")


if __name__ == "__main__":
    main()
