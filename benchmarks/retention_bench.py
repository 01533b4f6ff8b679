"""Retention at scale: a year of a 1,000-rule installation trimmed while evaluations run.

Issue #20, point 4. A timeline is seeded (bulk inserts, oldest first, so ids follow
time as they do in a real install) with a *scaled* year of 1,000 rules:

* events: 2 per rule per day over 420 days (so 20 days are older than the 400-day
  setting);
* evaluations: one per rule every 30 minutes over 45 days (10 days older than 35);
* notifications: 2 per rule per day over 30 days, most delivered, some failed for
  good, some never delivered (those must stay, however old);
* heartbeat pings: 200 checks × 300 pings (each must keep its newest 100).

A real 1,000-rules-every-minute install writes 1.44 M evaluations a day (50 M kept at
35 days), so one daily trim in steady state removes about three times the
evaluations removed here; the per-batch figures (rows per transaction are fixed by
``batch``) are what carry over, the totals scale linearly.

Measured, with the default :class:`RetentionConfig` (batch 5,000) at ``now``:
``store.retention.trim`` with the installed families' hooks: rows removed per table,
batches, seconds, rows/s, and every batch transaction timed (the timeline is wrapped
so each ``tx()`` is timed; nothing in ``alert_jobs`` is changed). Checked: nothing at
or after a cutoff removed (counts before and after equal), nothing older left,
undelivered notifications kept, every check left with its newest ``min(300, 100)``
pings.

"Without blocking evaluations": while trim runs in one thread, another runs
``timeline.alerts.process`` (20 live rules, alert and ok alternating, one
transaction each) in a loop and records each one's latency; baseline, same run,
same database: the same loop for the same duration without the trim. On SQLite an
evaluation waits for the batch holding the writer lock, so its worst case is about
one batch: the table shows p99/max latency against the longest batch. Both threads
share one Python process (the GIL), which adds a little to both sides; in production
the trim is its own run (process).

On SQLite (temp file, WAL) and, with ``$TEST_DATABASE_URL``, PostgreSQL (a scratch
schema). Run alone: ``python -m benchmarks.retention_bench [--quick]`` (quick: 100
rules, sizes about 1/50).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.config.retention import RetentionConfig
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.store import heartbeat_pings
from alert_jobs.runtime.family import family_trims
from alert_jobs.store import Timeline, schema
from alert_jobs.store.retention import trim
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json
from benchmarks.timeline_bench import aligned_table

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "retention.json"
CHUNK = 10_000
LIVE_RULES = 20
LIVE_PREFIX = "live_"
WARMUP_EVALUATIONS = 2 * LIVE_RULES
#: An evaluation's p99 during the trim counts as "not blocked" when it stays under
#: the baseline's p99 plus this many mean batch transactions.
BATCH_MULTIPLE = 3.0


@dataclass(frozen=True)
class Scale:
    rules: int
    event_days: int
    events_per_day: int
    evaluation_days: int
    evaluation_minutes: int
    outbox_days: int
    outbox_per_day: int
    checks: int
    pings: int


SCALES = {
    "full": Scale(rules=1000, event_days=420, events_per_day=2, evaluation_days=45,
                  evaluation_minutes=30, outbox_days=30, outbox_per_day=2, checks=200,
                  pings=300),
    "quick": Scale(rules=100, event_days=420, events_per_day=1, evaluation_days=45,
                   evaluation_minutes=120, outbox_days=30, outbox_per_day=1, checks=20,
                   pings=300),
}


@dataclass
class TableCheck:
    """One table's rows around its cutoff, before and after the trim."""

    table: str
    rows_before: int
    old_before: int  # what the settings say must go
    young_before: int  # what must stay (the live loop's rows left out)
    removed: int
    batches: int
    old_after: int = 0
    young_after: int = 0
    median_batch_ms: float = 0.0
    longest_batch_ms: float = 0.0
    last_batch_ms: float = 0.0  # the short one that ends the loop

    @property
    def correct(self) -> bool:
        return (self.old_after == 0 and self.young_after == self.young_before
                and self.removed == self.old_before)


@dataclass
class Latencies:
    """Evaluation latencies of one loop (seconds)."""

    samples: list[float] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {"n": len(self.samples), "p50_ms": self.quantile(0.5) * 1000,
                "p99_ms": self.quantile(0.99) * 1000,
                "max_ms": max(self.samples, default=float("nan")) * 1000}


@dataclass
class RetentionResult:
    name: str
    scale: dict[str, int]
    seed_seconds: float
    trim_seconds: float
    batches: int
    removed: int
    longest_batch_ms: float
    longest_batch_table: str
    mean_batch_ms: float
    during: dict[str, float]
    baseline: dict[str, float]
    tables: list[TableCheck]
    pings_ok: bool
    problems: list[str]

    @property
    def rows_per_second(self) -> float:
        return self.removed / self.trim_seconds if self.trim_seconds else float("nan")

    @property
    def p99_ratio(self) -> float:
        return self.during["p99_ms"] / self.baseline["p99_ms"]

    @property
    def correct(self) -> bool:
        return not self.problems

    @property
    def not_blocked(self) -> bool:
        """p99 during the trim within the baseline's plus a few mean batches."""
        bound = self.baseline["p99_ms"] + BATCH_MULTIPLE * self.mean_batch_ms
        return self.during["p99_ms"] <= bound

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["tables"] = [{**asdict(t), "correct": t.correct} for t in self.tables]
        return {**body, "rows_per_second": self.rows_per_second, "p99_ratio": self.p99_ratio,
                "correct": self.correct, "not_blocked": self.not_blocked,
                "batch_multiple": BATCH_MULTIPLE}


class TimedTimeline(Timeline):
    """The timeline the trim is given: the same engine, each write transaction timed
    with the table its statement deleted from."""

    def __init__(self, timeline: Timeline):
        super().__init__(timeline.url, engine=timeline.engine)
        self.batches: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def tx(self) -> Iterator[Connection]:
        conn_proxy = _Recorder()
        started = time.perf_counter()
        with super().tx() as conn:
            conn_proxy.conn = conn
            yield cast(Connection, conn_proxy)
        self.batches.append((conn_proxy.table, time.perf_counter() - started))


class _Recorder:
    """A connection that remembers which table its DELETE was on."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.table = "?"

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        table = getattr(statement, "table", None)
        if table is not None:
            self.table = table.name
        assert self.conn is not None
        return self.conn.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


# ----- seeding ------------------------------------------------------------------------

def _fp(rule: int) -> str:
    return f"{rule:032x}"


def _insert(timeline: Timeline, table: sa.Table, rows: Iterator[dict[str, Any]]) -> int:
    count, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            with timeline.engine.begin() as conn:
                conn.execute(table.insert(), chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        with timeline.engine.begin() as conn:
            conn.execute(table.insert(), chunk)
        count += len(chunk)
    return count


def _events(s: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    step = timedelta(days=1) / s.events_per_day
    for k in range(s.event_days * s.events_per_day):
        at = now - timedelta(days=s.event_days) + k * step
        kind = ("fired", "resolved")[k % 2]
        for r in range(s.rules):
            yield {"at": at + timedelta(seconds=r), "fingerprint": _fp(r), "rule": f"rule_{r}",
                   "kind": kind, "reason": "seeded", "actor": "system", "source": "engine",
                   "run_id": f"run-{k}", "payload": {}}


def _evaluations(s: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    step = timedelta(minutes=s.evaluation_minutes)
    for k in range(s.evaluation_days * 24 * 60 // s.evaluation_minutes):
        at = now - timedelta(days=s.evaluation_days) + k * step
        for r in range(s.rules):
            yield {"at": at + timedelta(seconds=r % 60), "rule": f"rule_{r}",
                   "fingerprint": _fp(r), "status": "ok", "value": float(r),
                   "expected": "under 100", "summary": "Expected under 100, got 3",
                   "state_after": "inactive", "run_id": f"run-{k}", "details": {}}


def _outbox(s: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    """Delivered a few seconds after queueing; every 10th failed for good; every 50th
    never delivered (queued, retrying: must stay at any age)."""
    step = timedelta(days=1) / s.outbox_per_day
    n = 0
    for k in range(s.outbox_days * s.outbox_per_day):
        created = now - timedelta(days=s.outbox_days) + k * step
        for r in range(s.rules):
            n += 1
            at = created + timedelta(seconds=r)
            done = at + timedelta(seconds=3)
            undelivered, failed = n % 50 == 0, n % 10 == 0
            yield {"created_at": at, "receiver": "console", "fingerprint": _fp(r),
                   "rule": f"rule_{r}", "kind": "firing", "dedup_key": f"d{n}",
                   "payload": {}, "attempts": 1, "next_attempt_at": at,
                   "claimed_until": None, "claim_token": None,
                   "delivered_at": None if undelivered or failed else done,
                   "failed_at": done if failed and not undelivered else None,
                   "last_error": "410 Gone" if failed and not undelivered else None,
                   "run_id": f"run-{k}"}


def _pings(s: Scale, now: datetime) -> Iterator[dict[str, Any]]:
    for k in range(s.pings):  # interleaved across checks, as they arrive
        at = now - timedelta(minutes=s.pings - k)
        for c in range(s.checks):
            yield {"slug": f"check-{c}", "at": at, "kind": "success", "exit_code": 0,
                   "rid": None, "duration_seconds": 1.0, "body": "", "remote_addr": "",
                   "user_agent": ""}


def seed(timeline: Timeline, s: Scale, now: datetime) -> dict[str, int]:
    """The scaled year (see the module docstring); rows per table."""
    return {"alert_events": _insert(timeline, schema.events, _events(s, now)),
            "alert_evaluations": _insert(timeline, schema.evaluations, _evaluations(s, now)),
            "alert_outbox": _insert(timeline, schema.outbox, _outbox(s, now)),
            "alert_heartbeat_pings": _insert(timeline, heartbeat_pings, _pings(s, now))}


# ----- what must go and what must stay ------------------------------------------------

def _splits(policy: RetentionConfig,
            now: datetime) -> dict[str, tuple[sa.Table, Any, Any]]:
    """Each core table with what must go and what must stay (of the seeded rows: the
    live loop's are left out), written independently of ``store.retention``."""
    e, v, o = schema.events, schema.evaluations, schema.outbox
    done = now - policy.delivered_notifications

    def seeded(table: sa.Table, *where: Any) -> Any:
        return sa.and_(table.c.rule.notlike(f"{LIVE_PREFIX}%"), *where)

    return {
        "alert_events": (e, e.c.at < now - policy.events,
                         seeded(e, e.c.at >= now - policy.events)),
        "alert_evaluations": (v, v.c.at < now - policy.evaluations,
                              seeded(v, v.c.at >= now - policy.evaluations)),
        "alert_outbox": (o, sa.or_(o.c.delivered_at < done, o.c.failed_at < done),
                         seeded(o, sa.or_(o.c.delivered_at.is_(None), o.c.delivered_at >= done),
                                sa.or_(o.c.failed_at.is_(None), o.c.failed_at >= done))),
    }


def _count(conn: Connection, table: sa.Table, where: Any) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where))
               .scalar() or 0)


def _before(timeline: Timeline, policy: RetentionConfig, now: datetime) -> list[TableCheck]:
    checks = []
    with timeline.engine.connect() as conn:
        for name, (table, old, young) in _splits(policy, now).items():
            checks.append(TableCheck(name, _count(conn, table, sa.true()),
                                     _count(conn, table, old), _count(conn, table, young), 0, 0))
    return checks


def _newest_pings(timeline: Timeline, keep: int) -> set[int]:
    p = heartbeat_pings
    ranked = sa.select(p.c.id, sa.func.row_number().over(
        partition_by=p.c.slug, order_by=p.c.id.desc()).label("n")).subquery()
    with timeline.engine.connect() as conn:
        return set(conn.execute(sa.select(ranked.c.id).where(ranked.c.n <= keep)).scalars())


def _after(timeline: Timeline, policy: RetentionConfig, now: datetime,
           checks: list[TableCheck]) -> None:
    splits = _splits(policy, now)
    with timeline.engine.connect() as conn:
        for c in checks:
            table, old, young = splits[c.table]
            c.old_after = _count(conn, table, old)
            c.young_after = _count(conn, table, young)


# ----- evaluations meanwhile ----------------------------------------------------------

class LiveLoop:
    """Evaluations as a running install makes them: each its own transaction, alert
    and ok alternating per rule (so some notify and resolve), times moving forward."""

    def __init__(self, timeline: Timeline, now: datetime):
        self.timeline = timeline
        self.now = now
        self.i = 0

    def one(self) -> float:
        rule = f"{LIVE_PREFIX}{self.i % LIVE_RULES}"
        status = Status.ALERT if (self.i // LIVE_RULES) % 2 == 0 else Status.OK
        obs = Observation(rule, status, {"team": "bench"}, float(self.i),
                          summary=f"live evaluation {self.i}")
        policy = RulePolicy(rule=rule, receivers=("console",))
        started = time.perf_counter()
        self.timeline.alerts.process(obs, policy, now=self.now + timedelta(seconds=self.i))
        self.i += 1
        return time.perf_counter() - started

    def until(self, stop: threading.Event, latencies: Latencies) -> None:
        while not stop.is_set():
            latencies.samples.append(self.one())

    def for_seconds(self, seconds: float, latencies: Latencies) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            latencies.samples.append(self.one())


def measure(name: str, url: str, s: Scale) -> RetentionResult:
    policy = RetentionConfig()
    now = datetime.now(UTC).replace(microsecond=0)
    timeline = Timeline(url)
    timeline.ensure_schema()
    started = time.perf_counter()
    sizes = seed(timeline, s, now)
    seed_seconds = time.perf_counter() - started
    with timeline.engine.connect() as conn:  # fresh statistics, as a live database has
        conn.exec_driver_sql("ANALYZE")
        conn.commit()

    live = LiveLoop(timeline, now)
    for _ in range(WARMUP_EVALUATIONS):
        live.one()
    checks = _before(timeline, policy, now)
    kept_pings = _newest_pings(timeline, policy.pings_per_check)

    timed = TimedTimeline(timeline)
    hooks = family_trims()
    during, stop = Latencies(), threading.Event()
    runner = threading.Thread(target=live.until, args=(stop, during), daemon=True)
    runner.start()
    try:
        trimmed = trim(timed, policy, now, hooks)
    finally:
        stop.set()
        runner.join()
    baseline = Latencies()
    live.for_seconds(trimmed.seconds, baseline)

    _after(timeline, policy, now, checks)
    per_table: dict[str, list[float]] = {}
    for table, seconds in timed.batches:
        per_table.setdefault(table, []).append(seconds * 1000)
    for c in checks:
        c.removed = trimmed.rows.get(c.table, 0)
    left = _newest_pings(timeline, s.pings)  # every ping left
    pings_ok = left == kept_pings and len(left) == s.checks * min(s.pings,
                                                                  policy.pings_per_check)
    problems = [f"{c.table}: {c.old_after} old rows left, {c.young_before - c.young_after} "
                f"young rows removed, {c.removed} removed of {c.old_before}"
                for c in checks if not c.correct]
    if not pings_ok:
        problems.append(f"heartbeat pings: {len(left)} left, not the newest "
                        f"{policy.pings_per_check} of each of {s.checks} checks")
    if "heartbeat" not in hooks:
        problems.append("the heartbeat family's trim hook is not installed")
    removed_pings = trimmed.rows.get(heartbeat_pings.name, 0)
    checks.append(TableCheck(heartbeat_pings.name, sizes[heartbeat_pings.name],
                             sizes[heartbeat_pings.name] - len(kept_pings), len(kept_pings),
                             removed_pings, 0, old_after=0 if pings_ok else -1,
                             young_after=len(left)))
    for c in checks:
        ms = per_table.get(c.table, [])
        c.batches = len(ms)
        if ms:
            c.median_batch_ms, c.longest_batch_ms = statistics.median(ms), max(ms)
            c.last_batch_ms = ms[-1]
    longest_table, longest = max(timed.batches, key=lambda b: b[1])
    timeline.dispose()
    return RetentionResult(
        name=name, scale=sizes, seed_seconds=seed_seconds, trim_seconds=trimmed.seconds,
        batches=trimmed.batches, removed=trimmed.total, longest_batch_ms=longest * 1000,
        longest_batch_table=longest_table,
        mean_batch_ms=trimmed.seconds / trimmed.batches * 1000 if trimmed.batches else 0.0,
        during=during.summary(), baseline=baseline.summary(), tables=checks,
        pings_ok=pings_ok, problems=problems)


@contextlib.contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="alert-jobs-retention-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'timeline.db'}"


def run(quick: bool = False) -> tuple[list[RetentionResult], dict[str, str]]:
    s = SCALES["quick" if quick else "full"]
    results: list[RetentionResult] = []
    skipped: dict[str, str] = {}
    with _sqlite_url() as url:
        results.append(measure("retention_sqlite", url, s))
    pg_url, name = scratch_schema("retention")
    if pg_url is None:
        skipped["retention_postgresql"] = name
    else:
        try:
            results.append(measure("retention_postgresql", pg_url, s))
        finally:
            drop_schema(name)
    return results, skipped


def format_table(results: list[RetentionResult], skipped: dict[str, str]) -> str:
    header = ["case", "table", "rows", "must go", "removed", "batches", "median batch ms",
              "longest ms", "last ms", "young kept", "correct"]
    rows = [[r.name, t.table, f"{t.rows_before:,}", f"{t.old_before:,}", f"{t.removed:,}",
             f"{t.batches:,}", f"{t.median_batch_ms:.1f}", f"{t.longest_batch_ms:.0f}",
             f"{t.last_batch_ms:.0f}", f"{t.young_after:,}/{t.young_before:,}",
             "yes" if t.correct else "NO"] for r in results for t in r.tables]
    out = ["Retention: trim of a scaled year of 1,000 rules (default settings, batch "
           f"{RetentionConfig().batch:,}; each batch one transaction, timed)",
           *aligned_table([header, *rows], set(range(2, 10)))]
    header = ["case", "seed s", "trim s", "rows/s", "batches", "mean batch ms",
              "longest batch ms", "evals", "p50 ms", "p99 ms", "max ms", "baseline evals",
              "p50 ms", "p99 ms", "max ms", "p99 ratio", "p99 / mean batch", "not blocked"]
    rows = [[r.name, f"{r.seed_seconds:.0f}", f"{r.trim_seconds:.1f}",
             f"{r.rows_per_second:,.0f}", f"{r.batches:,}", f"{r.mean_batch_ms:.1f}",
             f"{r.longest_batch_ms:.0f} ({r.longest_batch_table})",
             f"{r.during['n']:,}", f"{r.during['p50_ms']:.1f}", f"{r.during['p99_ms']:.1f}",
             f"{r.during['max_ms']:.0f}", f"{r.baseline['n']:,}",
             f"{r.baseline['p50_ms']:.1f}", f"{r.baseline['p99_ms']:.1f}",
             f"{r.baseline['max_ms']:.0f}", f"{r.p99_ratio:.1f}×",
             f"{r.during['p99_ms'] / r.mean_batch_ms:.1f}",
             "yes" if r.not_blocked else "NO"] for r in results]
    out += ["", "Evaluations (timeline.alerts.process) while the trim runs vs the same loop "
            "alone for as long, same database",
            *aligned_table([header, *rows], set(range(1, len(header) - 1)))]
    out.append(f"not blocked: p99 during the trim <= baseline p99 + {BATCH_MULTIPLE:.0f} × "
               "the mean batch transaction (trim seconds / batches); p99 ratio = during / "
               "baseline")
    out += [f"PROBLEM {r.name}: {p}" for r in results for p in r.problems]
    out += [f"skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 rules, about 1/50 of "
                        "the rows")
    args = parser.parse_args(argv)
    results, skipped = run(quick=args.quick)
    print(format_table(results, skipped))
    write_json(RESULTS_FILE, [r.as_json() for r in results], skipped)
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
