"""What delivering from the outbox costs: messages per second, peak memory, and 429s.

A local webhook receiver (``benchmarks/webhook_receiver.py``, its own process on
127.0.0.1: asyncio, HTTP/1.1 keep-alive, parses every JSON body and counts its
``dedup_key``) takes the messages. Every figure is set against the named baseline
"sequential httpx loop": the same rendered bodies (``WebhookReceiver.render``) POSTed
one after another over one ``httpx.Client``, no database, measured in the same run.

1. Throughput, median of 3 repetitions run in this process, the variants' order
   rotating from one repetition to the next:

   * ``deliver_due(timeline, {"hook": WebhookReceiver(...)}, limit=500,
     concurrency=16)`` on a fresh SQLite timeline whose rows were queued (untimed) with
     ``timeline.outbox.enqueue(receiver, "firing", dedup_key, sample_group(...))``: claim →
     send → mark, end to end;
   * ``send_all`` alone (concurrency 16), no database: the sending part of
     ``deliver_due``, so the database's share shows separately;
   * the baseline.

   Twice: a receiver that answers at once (500 messages per repetition: what our side
   costs) and one that answers after 5 ms (200: a realistic webhook endpoint, what
   concurrency is for). This process's CPU time is recorded next to the wall time.
2. One full 10,000-message run each of ``deliver_due`` (batches of 500 until the outbox
   is empty) and of the baseline, each in a fresh spawned process: peak RSS growth
   (the process's own high-water mark, VmHWM — what ``ru_maxrss`` reports, minus the
   parent's RSS that ``ru_maxrss`` carries into a spawned child — reset to the current
   RSS before each phase; plain ``ru_maxrss`` where Linux's /proc is missing).
3. 429s: the receiver answers ``429`` with ``Retry-After: 2`` to its first 750
   deliveries; 500 queued messages are delivered by repeated ``deliver_due`` calls on
   an injected clock (a simulated delivery sensor ticking every second, idle ticks
   skipped; nothing sleeps). Checked: every dedup_key reaches the receiver exactly
   once, nothing is lost or given up, every 429 is recorded as ``notification_failed``,
   and no retry is scheduled or made earlier than ``Retry-After`` after its 429.
   Reported: the total simulated wait with a backoff base far below Retry-After (so
   Retry-After decides), and with the default 30 s base (100 messages, first 150
   answers 429).

No timing is asserted; the benchmark fails only if the workload misbehaves (a message
lost, duplicated or retried early, a send that errs).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import importlib.util
import itertools
import logging
import math
import multiprocessing
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from alert_jobs.config import WebhookReceiverConfig
from alert_jobs.notify.base import Receiver
from alert_jobs.notify.contract import sample_group
from alert_jobs.notify.send import BACKOFF_BASE, DEFAULT_DEADLINE, send_all
from alert_jobs.notify.webhook import WebhookReceiver
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.store import OutboxItem, Timeline
from benchmarks.timeline_bench import (
    BenchmarkError,
    Comparison,
    _maxrss_mib,
    _spread,
    aligned_table,
)

RECEIVER = "hook"
KIND = "firing"
BATCH = 500  # deliver_due's default limit: what one delivery-sensor tick claims
CONCURRENCY = 16
REPS = 3
REP_MESSAGES = 500  # per repetition at the fast receiver: one deliver_due batch
SLOW_DELAY_MS = 5.0
SLOW_MESSAGES = 200  # per repetition at the 5 ms receiver (the baseline waits 5 ms each)
WARMUP_MESSAGES = 50
FULL_MESSAGES = 10_000
RETRY_AFTER_S = 2
# (backoff base, messages queued, first answers that are 429). A base far below
# Retry-After lets Retry-After decide every wait; the default base (30 s) shows what
# the product does. The second is smaller: it needs ~50 deliver_due calls, not 3.
RETRY_SCENARIOS = ((timedelta(seconds=0.1), 500, 750), (BACKOFF_BASE, 100, 150))
SENSOR_TICK = timedelta(seconds=1)
MAX_ROUNDS = 1_000
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
RECEIVER_START_TIMEOUT_S = 10.0
CHILD_TIMEOUT_S = 900.0
RECEIVER_SCRIPT = Path(__file__).resolve().parent / "webhook_receiver.py"

BASELINE = "sequential httpx loop"
DELIVER = f"deliver_due (limit {BATCH}, concurrency {CONCURRENCY})"


def _send_all_name(concurrency: int) -> str:
    return f"send_all alone (concurrency {concurrency}, no DB)"


PARAMETERS: dict[str, Any] = {
    "delivery_batch": BATCH, "delivery_concurrency": CONCURRENCY,
    "delivery_repetitions": REPS, "delivery_rep_messages": REP_MESSAGES,
    "delivery_slow_delay_ms": SLOW_DELAY_MS, "delivery_slow_messages": SLOW_MESSAGES,
    "delivery_warmup_messages": WARMUP_MESSAGES, "delivery_full_messages": FULL_MESSAGES,
    "delivery_retry_scenarios": [{"base_delay_s": b.total_seconds(), "messages": m,
                                  "reject_first": r} for b, m, r in RETRY_SCENARIOS],
    "delivery_retry_after_s": RETRY_AFTER_S,
    "delivery_sensor_tick_s": SENSOR_TICK.total_seconds(),
}


class ReceiverStartError(RuntimeError):
    """The local webhook receiver did not come up."""


# ----- the local receiver --------------------------------------------------------


@dataclass
class LocalReceiver:
    """The receiver process and a separate keep-alive client for its control paths."""

    process: subprocess.Popen[bytes]
    port: int
    control: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def reset(self, *, delay_ms: float = 0.0, reject_first: int = 0) -> None:
        """Zero the counters and set how the receiver answers."""
        self.control.post("/reset", json={"delay_ms": delay_ms, "reject_first": reject_first,
                                          "retry_after": RETRY_AFTER_S}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.control.get("/stats")
        response.raise_for_status()
        return dict(response.json())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def local_receiver() -> Iterator[LocalReceiver]:
    """Start ``webhook_receiver.py`` on a free loopback port; always stopped at the end."""
    process = subprocess.Popen([sys.executable, str(RECEIVER_SCRIPT)], stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], RECEIVER_START_TIMEOUT_S)
        line = process.stdout.readline().decode(errors="replace").split() if ready else []
        if len(line) != 2 or line[0] != "PORT":
            raise ReceiverStartError(f"{RECEIVER_SCRIPT.name} did not report its port within "
                                     f"{RECEIVER_START_TIMEOUT_S:g} s (exit code "
                                     f"{process.poll()}, said {line!r})")
        port = int(line[1])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as control:
            yield LocalReceiver(process, port, control)
    finally:
        _stop(process)


def _check_receiver(stats: dict[str, Any], ok: int, rejected: int = 0) -> None:
    """The receiver saw exactly ``ok`` distinct deliveries (no duplicates) and ``rejected``."""
    if (stats["ok"], stats["distinct_ok"], stats["duplicates_ok"], stats["rejected"]) != (
            ok, ok, 0, rejected):
        raise BenchmarkError(f"receiver expected {ok} distinct deliveries and {rejected} "
                             f"rejections, saw {stats}")


# ----- the workload --------------------------------------------------------------


def _receivers(url: str) -> dict[str, Receiver[Any]]:
    return {RECEIVER: WebhookReceiver(WebhookReceiverConfig(name=RECEIVER, type="webhook",
                                                            url=url))}


def _keys(tag: str, n: int) -> list[str]:
    return [f"{RECEIVER}:{tag}:{i:05d}" for i in range(n)]


def _payload(key: str) -> dict[str, Any]:
    """A realistic one-alert group (``sample_group``) with its own dedup_key."""
    return dict(sample_group(dedup_key=key))


def _item(key: str, i: int) -> OutboxItem:
    return OutboxItem(i, RECEIVER, KIND, key, _payload(key), 0, None, None, "bench")


def _bodies(receivers: dict[str, Receiver[Any]], keys: list[str]) -> list[Any]:
    receiver = receivers[RECEIVER]
    return [receiver.render(_payload(key)) for key in keys]  # type: ignore[arg-type]


def _timeline(path: Path) -> Timeline:
    timeline = Timeline(f"sqlite:///{path}")
    timeline.upgrade()
    return timeline


def _enqueue(timeline: Timeline, keys: list[str], now: datetime | None = None) -> float:
    """Queue one outbox row per key (payloads built one at a time); returns seconds."""
    start = time.perf_counter()
    for key in keys:
        if timeline.outbox.enqueue(RECEIVER, KIND, key, _payload(key), now=now) is None:
            raise BenchmarkError(f"enqueue of {key} was dropped as a duplicate")
    return time.perf_counter() - start


def _clocked(work: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of ``work()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _deliver_batch(timeline: Timeline, receivers: dict[str, Receiver], expected: int) -> None:
    """One ``deliver_due`` call (one claim of up to BATCH rows); it must send ``expected``."""
    report = deliver_due(timeline, receivers, limit=BATCH, concurrency=CONCURRENCY)
    if report.sent != expected or report.retrying or report.failed or report.skipped:
        raise BenchmarkError(f"deliver_due: expected {expected} sent, got {report} "
                             f"{report.errors[:3]}")


def _send_all(items: list[OutboxItem], receivers: dict[str, Receiver],
              concurrency: int) -> None:
    outcomes = send_all(items, receivers, concurrency=concurrency, deadline=DEFAULT_DEADLINE)
    problems = [str(error) for _, error, skipped in outcomes if error is not None or skipped]
    if problems:
        raise BenchmarkError(f"send_all: {len(problems)} not sent, e.g. {problems[:3]}")


def _post_sequentially(client: httpx.Client, url: str, bodies: list[Any]) -> None:
    """The baseline: one POST after another over one keep-alive ``httpx.Client``."""
    for body in bodies:
        response = client.post(url, json=body)
        if response.status_code != 200:
            raise BenchmarkError(f"sequential loop: HTTP {response.status_code}")


def _drain(timeline: Timeline, receivers: dict[str, Receiver]) -> tuple[int, int]:
    """``deliver_due`` in batches until the outbox is empty: (calls, sent)."""
    calls = sent = 0
    while True:
        report = deliver_due(timeline, receivers, limit=BATCH, concurrency=CONCURRENCY)
        calls += 1
        if report.retrying or report.failed or report.skipped:
            raise BenchmarkError(f"deliver_due: {report} {report.errors[:3]}")
        if not report.sent:
            return calls, sent
        sent += report.sent


# ----- 1. throughput, interleaved ------------------------------------------------


def bench_throughput(rx: LocalReceiver, tmp: Path, delay_ms: float, messages: int,
                     send_all_concurrencies: tuple[int, ...]) -> list[Comparison]:
    """deliver_due and send_all against the sequential loop, ``REPS`` interleaved repetitions
    of ``messages`` each, at a receiver that answers after ``delay_ms``."""
    receivers = _receivers(rx.url)
    label = f"receiver {delay_ms:g} ms"
    names = [DELIVER, *(_send_all_name(c) for c in send_all_concurrencies), BASELINE]

    rx.reset(delay_ms=delay_ms)  # warm-up, untimed: imports, pools, the SQLite file
    warm = _timeline(tmp / f"warm-{delay_ms:g}.db")
    try:
        _enqueue(warm, _keys(f"warm-{delay_ms:g}-d", WARMUP_MESSAGES))
        _drain(warm, receivers)
    finally:
        warm.dispose()
    for c in send_all_concurrencies:
        _send_all([_item(k, i) for i, k in enumerate(_keys(f"warm-{delay_ms:g}-s{c}",
                                                                 WARMUP_MESSAGES))],
                       receivers, c)
    with httpx.Client(timeout=DEFAULT_DEADLINE) as client:
        _post_sequentially(client, rx.url, _bodies(receivers, _keys(f"warm-{delay_ms:g}-q",
                                                                    WARMUP_MESSAGES)))

    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_s: dict[str, list[float]] = {name: [] for name in names}
    enqueue_s: list[float] = []
    receiver_cpu_s = receiver_sys_s = 0.0
    blocks = -(-messages // BATCH)
    for rep in range(REPS):
        tag = f"{delay_ms:g}ms-r{rep}"
        timeline = _timeline(tmp / f"{tag}.db")
        try:
            enqueue_s.append(_enqueue(timeline, _keys(f"{tag}-d", messages)))
            items = {c: [_item(k, i) for i, k in enumerate(_keys(f"{tag}-s{c}", messages))]
                     for c in send_all_concurrencies}
            bodies = _bodies(receivers, _keys(f"{tag}-q", messages))
            rx.reset(delay_ms=delay_ms)
            before = rx.stats()
            gc.collect()
            totals = dict.fromkeys(names, 0.0)
            cpu_totals = dict.fromkeys(names, 0.0)
            with httpx.Client(timeout=DEFAULT_DEADLINE) as client:
                for block in range(blocks):
                    start, stop = block * BATCH, min(messages, (block + 1) * BATCH)
                    runs: list[tuple[str, Callable[[], None]]] = [
                        (DELIVER, partial(_deliver_batch, timeline, receivers, stop - start)),
                        *((_send_all_name(c), partial(_send_all, items[c][start:stop],
                                                      receivers, c))
                          for c in send_all_concurrencies),
                        (BASELINE, partial(_post_sequentially, client, rx.url,
                                           bodies[start:stop])),
                    ]
                    turn = (rep * blocks + block) % len(runs)  # rotate who goes first
                    for name, work in runs[turn:] + runs[:turn]:
                        wall, cpu = _clocked(work)
                        totals[name] += wall
                        cpu_totals[name] += cpu
            stats = rx.stats()
            _check_receiver(stats, messages * len(names))
            receiver_cpu_s += stats["cpu_s"] - before["cpu_s"]
            receiver_sys_s += stats["sys_cpu_s"] - before["sys_cpu_s"]
            if timeline.outbox.rows(pending_only=True):
                raise BenchmarkError("outbox not empty after delivering every block")
        finally:
            timeline.dispose()
        for name in names:
            seconds[name].append(totals[name])
            cpu_s[name].append(cpu_totals[name])

    requests = REPS * messages * len(names)
    workload = {
        "messages_per_repetition": messages, "repetitions": REPS, "block": BATCH,
        "payload": "sample_group() (1 alert), unique dedup_key; body = "
                   "WebhookReceiver.render(group), about 3.1 KB of JSON",
        "receiver": {"delay_ms": delay_ms, "process": "benchmarks/webhook_receiver.py",
                     "cpu_us_per_request": receiver_cpu_s / requests * 1e6,
                     "sys_cpu_us_per_request": receiver_sys_s / requests * 1e6},
        "enqueue_per_s_median": messages / statistics.median(enqueue_s),
        "order": "blocks of one deliver_due batch; variants rotate which goes first",
        "client_cpu_ms_per_message_median": {
            name: statistics.median(cpu_s[name]) / messages * 1000 for name in names},
        "client_cpu_meaning": "time.process_time() of this process (sending, rendering, "
                              "SQLite) per message; the receiver runs in its own process",
    }
    out: list[Comparison] = []
    for name in names[:-1]:
        backend = "sqlite" if name == DELIVER else "none"
        where = f"sqlite, {label}" if name == DELIVER else label
        comparison = Comparison(f"{name} [{where}]", backend, messages, seconds[name], BASELINE,
                                messages, seconds[BASELINE], {"workload": workload})
        comparison.extra["speed_up"] = 1 / comparison.ratio
        comparison.extra["speed_up_meaning"] = (f"'{BASELINE}' time per message / this time "
                                                "per message (median of pairs; >1 = faster)")
        out.append(comparison)
    same = _send_all_name(CONCURRENCY)
    if same in seconds:  # the database's share: deliver_due minus the same sends alone
        pairs = [(d - s) / messages for d, s in zip(seconds[DELIVER], seconds[same],
                                                    strict=True)]
        out[0].extra["db_cost_us_per_message"] = statistics.median(pairs) * 1e6
        out[0].extra["db_cost_meaning"] = (f"'{DELIVER}' minus '{same}', per message, median "
                                           "of the paired repetitions: the claim and the "
                                           "batched marks (one transaction settles every "
                                           "send finished in the last 100 ms)")
    return out


# ----- 2. one full run per variant, each in a fresh process ----------------------


def full_run(kind: str, url: str, messages: int) -> dict[str, Any]:
    """Run in a fresh spawned process: one timed run of ``kind`` over ``messages``.

    The peak RSS is reset to the current RSS after a warm-up of the same path (floor)
    and again once the inputs are built (run start); it is read after each phase.
    """
    receivers = _receivers(url)
    result: dict[str, Any] = {"kind": kind, "messages": messages}
    with tempfile.TemporaryDirectory(prefix="alert-jobs-bench-dlv-") as tmp:
        if kind == "deliver_due":
            warm = _timeline(Path(tmp) / "warm.db")
            _enqueue(warm, _keys("full-warm", WARMUP_MESSAGES))
            _drain(warm, receivers)
            warm.dispose()
            floor = _reset_peak_rss()
            timeline = _timeline(Path(tmp) / "full.db")
            try:
                result["enqueue_s"] = _enqueue(timeline, _keys("full-d", messages))
                ready = _peak_rss_mib()
                start_rss = _reset_peak_rss()
                cpu, start = time.process_time(), time.perf_counter()
                calls, sent = _drain(timeline, receivers)
                result["seconds"] = time.perf_counter() - start
                result["cpu_s"] = time.process_time() - cpu
                peak = _peak_rss_mib()
                result.update(deliver_due_calls=calls, sent=sent,
                              pending_after=len(timeline.outbox.rows(pending_only=True)))
            finally:
                timeline.dispose()
        elif kind == "sequential":
            with httpx.Client(timeout=DEFAULT_DEADLINE) as client:
                _post_sequentially(client, url, _bodies(receivers, _keys("full-warm",
                                                                         WARMUP_MESSAGES)))
                floor = _reset_peak_rss()
                bodies = _bodies(receivers, _keys("full-q", messages))
                ready = _peak_rss_mib()
                start_rss = _reset_peak_rss()
                result["seconds"], result["cpu_s"] = _clocked(
                    partial(_post_sequentially, client, url, bodies))
                peak = _peak_rss_mib()
                result["sent"] = len(bodies)
        else:
            raise ValueError(kind)
    result["memory"] = {
        "floor_mib": floor, "inputs_peak_mib": ready, "run_start_mib": start_rss,
        "peak_mib": max(ready, peak),
        "run_growth_mib": peak - start_rss,
        "total_growth_mib": max(ready, peak) - floor,
        "method": _RSS_METHOD if _PEAK_RESETTABLE else _RSS_METHOD_FALLBACK,
        "meaning": "run_growth: peak RSS during the timed run over RSS at its start (inputs "
                   "already held); total_growth: peak RSS while building inputs or running, "
                   "over RSS after a warm-up of the same path",
    }
    return result


_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PEAK_RESETTABLE = _CLEAR_REFS.exists() and _PROC_STATUS.exists()
_RSS_METHOD = ("peak RSS = VmHWM of /proc/self/status (the high-water mark that ru_maxrss "
               "reports, without the forking parent's RSS that ru_maxrss keeps after exec), "
               "reset to the current RSS (/proc/self/clear_refs '5') before each phase, in a "
               "fresh spawned process")
_RSS_METHOD_FALLBACK = ("resource.getrusage(RUSAGE_SELF).ru_maxrss deltas in a fresh spawned "
                        "process (no reset available: growth beyond earlier peaks only, and "
                        "at least the forking parent's RSS)")


def _peak_rss_mib() -> float:
    """This process's own peak RSS: VmHWM where Linux has it, else ``ru_maxrss``.

    ``ru_maxrss`` of a spawned child is at least the RSS its parent had when it forked
    the child (Linux carries the pre-exec high-water mark over), so it is useless for a
    child of a large parent; VmHWM is the child's own.
    """
    if _PEAK_RESETTABLE:
        try:
            for line in _PROC_STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
    return _maxrss_mib()


def _reset_peak_rss() -> float:
    """Collect garbage and reset the peak to the current RSS (Linux); returns the peak."""
    global _PEAK_RESETTABLE
    gc.collect()
    if _PEAK_RESETTABLE:
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:
            _PEAK_RESETTABLE = False
    return _peak_rss_mib()


def _in_fresh_process(kind: str, url: str, messages: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(full_run, kind, url, messages).result(timeout=CHILD_TIMEOUT_S)


def bench_full(rx: LocalReceiver) -> Comparison:
    runs: dict[str, dict[str, Any]] = {}
    for kind in ("sequential", "deliver_due"):
        rx.reset()
        runs[kind] = _in_fresh_process(kind, rx.url, FULL_MESSAGES)
        _check_receiver(rx.stats(), FULL_MESSAGES + WARMUP_MESSAGES)
        if runs[kind]["sent"] != FULL_MESSAGES or runs[kind].get("pending_after"):
            raise BenchmarkError(f"{kind}: full run incomplete: {runs[kind]}")
    deliver, sequential = runs["deliver_due"], runs["sequential"]
    comparison = Comparison(
        f"{DELIVER} [sqlite, receiver 0 ms, {FULL_MESSAGES:,} messages, 1 run]", "sqlite",
        FULL_MESSAGES, [deliver["seconds"]], BASELINE, FULL_MESSAGES, [sequential["seconds"]],
        {"full_run": True, "repetitions_note": "one run per variant, each in a fresh spawned "
                                               "process (for ru_maxrss), baseline first",
         "memory": deliver["memory"], "baseline_memory": sequential["memory"],
         "enqueue_per_s": FULL_MESSAGES / deliver["enqueue_s"],
         "client_cpu_ms_per_message": {DELIVER: deliver["cpu_s"] / FULL_MESSAGES * 1000,
                                       BASELINE: sequential["cpu_s"] / FULL_MESSAGES * 1000},
         "deliver_due_calls": deliver["deliver_due_calls"]})
    comparison.extra["speed_up"] = 1 / comparison.ratio
    return comparison


# ----- 3. a receiver that answers 429 for a while --------------------------------


class SimulatedClock:
    """The ``now`` that ``deliver_due`` reads; the benchmark moves it, nothing sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def quiet_log(name: str = "alert_jobs.outbox") -> Iterator[None]:
    """Only errors from the ``name`` logger while measuring (the outbox warns once per
    failed attempt: 750 of them here), then as before."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def bench_retry_after(rx: LocalReceiver, tmp: Path, base_delay: timedelta, messages: int,
                      reject_first: int) -> dict[str, Any]:
    """``messages`` to a receiver whose first ``reject_first`` answers are 429, Retry-After: 2."""
    receivers = _receivers(rx.url)
    rx.reset(reject_first=reject_first)
    tag = f"retry-{base_delay.total_seconds():g}s"
    timeline = _timeline(tmp / f"{tag}.db")
    clock = SimulatedClock(T0)
    rounds: list[dict[str, Any]] = []
    try:
        _enqueue(timeline, _keys(tag, messages), now=T0)
        real_start = time.perf_counter()
        with quiet_log():
            while True:
                report = deliver_due(timeline, receivers, limit=BATCH, concurrency=CONCURRENCY,
                                     base_delay=base_delay, now=clock)
                rounds.append({"at_s": (clock.now - T0).total_seconds(), "sent": report.sent,
                               "retrying": report.retrying, "failed": report.failed})
                pending = timeline.outbox.rows(pending_only=True)
                if not pending or report.failed or len(rounds) >= MAX_ROUNDS:
                    break
                # the next sensor tick at which something is due (idle ticks skipped)
                due = min(row["next_attempt_at"] for row in pending)
                tick = T0 + math.ceil((due - T0) / SENSOR_TICK) * SENSOR_TICK
                clock.now = max(tick, clock.now + SENSOR_TICK)
        real_s = time.perf_counter() - real_start
        rows = timeline.outbox.rows()
        limit = 10 * (messages + reject_first)
        failures = timeline.events.list(kinds=["notification_failed"], limit=limit)
        sent_events = timeline.events.list(kinds=["notification_sent"], limit=limit)
    finally:
        timeline.dispose()
    stats = rx.stats()

    failed_at: dict[str, list[datetime]] = {}
    for event in failures:
        failed_at.setdefault(event["payload"]["dedup_key"], []).append(event["at"])
    gaps: list[float] = []  # failure → next attempt (another failure or the delivery)
    scheduled: list[float] = []  # last failure → the row's next_attempt_at
    undelivered = [row["dedup_key"] for row in rows
                   if row["delivered_at"] is None or row["failed_at"] is not None]
    for row in rows:
        times = sorted(failed_at.get(row["dedup_key"], []))
        if not times or row["delivered_at"] is None:
            continue
        gaps += [(b - a).total_seconds() for a, b in itertools.pairwise([*times,
                                                                          row["delivered_at"]])]
        scheduled.append((row["next_attempt_at"] - times[-1]).total_seconds())
    sent_keys = [event["payload"]["dedup_key"] for event in sent_events]
    problems: list[str] = []
    if len(rows) != messages or undelivered:
        problems.append(f"{len(undelivered)} of {len(rows)} rows not delivered")
    if (stats["ok"], stats["distinct_ok"], stats["duplicates_ok"]) != (
            messages, messages, 0):
        problems.append(f"receiver: {stats['ok']} deliveries, {stats['distinct_ok']} distinct, "
                        f"{stats['duplicates_ok']} duplicates (expected {messages} each, "
                        "0 duplicates)")
    if stats["rejected"] != reject_first or len(failures) != stats["rejected"]:
        problems.append(f"{stats['rejected']} answered 429 but {len(failures)} "
                        "notification_failed events")
    if len(sent_keys) != messages or len(set(sent_keys)) != messages:
        problems.append(f"{len(sent_keys)} notification_sent events, "
                        f"{len(set(sent_keys))} distinct")
    if sum(row["attempts"] for row in rows) != messages + reject_first:
        problems.append("attempts on the rows do not add up to the requests answered")
    early = [g for g in [*gaps, *scheduled] if g < RETRY_AFTER_S]
    if early:
        problems.append(f"{len(early)} retries scheduled or made less than "
                        f"{RETRY_AFTER_S} s after a 429 (shortest {min(early):.3f} s)")
    retry_rounds = -(-reject_first // messages)
    return {
        "name": f"deliver_due under 429 (Retry-After: {RETRY_AFTER_S}), base_delay "
                f"{base_delay.total_seconds():g} s",
        "backend": "sqlite",
        "messages": messages,
        "rejected_first": reject_first,
        "retry_after_s": RETRY_AFTER_S,
        "base_delay_s": base_delay.total_seconds(),
        "sensor_tick_s": SENSOR_TICK.total_seconds(),
        "deliver_due_calls": len(rounds),
        "total_simulated_wait_s": (clock.now - T0).total_seconds(),
        "retry_after_alone_wait_s": retry_rounds * RETRY_AFTER_S,
        "retry_after_alone_meaning": "every pending row retried exactly Retry-After after "
                                     "its 429, all due at once",
        "real_s": real_s,
        "receiver": {"ok": stats["ok"], "distinct_ok": stats["distinct_ok"],
                     "duplicates_ok": stats["duplicates_ok"], "rejected": stats["rejected"]},
        "rows_undelivered": len(undelivered),
        "notification_failed_events": len(failures),
        "notification_sent_events": len(sent_keys),
        "attempts_histogram": dict(sorted(
            {str(a): sum(r["attempts"] == a for r in rows)
             for a in {r["attempts"] for r in rows}}.items())),
        "wait_after_429_s": {"min": min(gaps), "median": statistics.median(gaps),
                             "max": max(gaps), "count": len(gaps)} if gaps else {},
        "scheduled_after_last_429_s": {"min": min(scheduled), "max": max(scheduled)}
        if scheduled else {},
        "rounds": rounds,
        "ok": not problems,
        "problems": problems,
    }


# ----- a note on the client ------------------------------------------------------


def client_facts() -> dict[str, Any]:
    """Versions, and what httpcore's per-lock async-library check costs in this venv."""
    facts: dict[str, Any] = {}
    for name in ("httpx", "httpcore", "anyio", "h11"):
        try:
            facts[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            facts[name] = None
    facts["sniffio_installed"] = importlib.util.find_spec("sniffio") is not None
    try:
        from httpcore._synchronization import current_async_library
    except ImportError:
        return facts

    async def probe() -> float:
        start = time.perf_counter()
        for _ in range(1_000):
            current_async_library()
        return (time.perf_counter() - start) * 1e3  # µs per call

    facts["httpcore_current_async_library_us"] = asyncio.run(probe())
    return facts


# ----- run and report ------------------------------------------------------------


@contextmanager
def _step(label: str, timings: dict[str, float]) -> Iterator[None]:
    print(f"running delivery: {label} …", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    timings[label] = round(time.perf_counter() - start, 1)


def run() -> tuple[list[Comparison], dict[str, Any], dict[str, str], bool]:
    """Run the delivery benchmark: (comparisons, report section, skipped, failed).

    The report section holds the 429 scenarios, client facts and step durations.
    """
    results: list[Comparison] = []
    scenarios: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    try:
        with local_receiver() as rx, \
                tempfile.TemporaryDirectory(prefix="alert-jobs-bench-dlv-") as tmp_name:
            tmp = Path(tmp_name)
            with _step(f"{REPS} x {REP_MESSAGES:,} messages, receiver answering at once",
                       timings):
                results += bench_throughput(rx, tmp, 0.0, REP_MESSAGES, (CONCURRENCY,))
            with _step(f"{REPS} x {SLOW_MESSAGES:,} messages, receiver answering after "
                       f"{SLOW_DELAY_MS:g} ms", timings):
                results += bench_throughput(rx, tmp, SLOW_DELAY_MS, SLOW_MESSAGES,
                                            (CONCURRENCY,))
            with _step(f"{FULL_MESSAGES:,} messages, one run each in a fresh process", timings):
                results.append(bench_full(rx))
            for base, messages, reject_first in RETRY_SCENARIOS:
                with _step(f"429 with Retry-After: {RETRY_AFTER_S}, base_delay "
                           f"{base.total_seconds():g} s", timings):
                    scenarios.append(bench_retry_after(rx, tmp, base, messages, reject_first))
    except ReceiverStartError as exc:
        return [], {}, {"delivery": str(exc)}, True
    section = {"retry_after_scenarios": scenarios, "client": client_facts(),
               "step_seconds": timings}
    return results, section, {}, not all(s["ok"] for s in scenarios)


def format_table(results: list[Comparison], section: dict[str, Any],
                 skipped: dict[str, str]) -> str:
    header = ("delivery benchmark", "msgs/s", "per msg", "spread", "baseline (same run)",
              "msgs/s", "per msg", "cost ratio", "speed-up")
    rows = [header]
    for c in results:
        rows.append((c.name, f"{1 / c.per_op:,.0f}", f"{c.per_op * 1000:.2f} ms",
                     f"{_spread(c.seconds):.0%}", c.baseline, f"{1 / c.baseline_per_op:,.0f}",
                     f"{c.baseline_per_op * 1000:.2f} ms", f"{c.ratio:.2f}x",
                     f"{c.extra['speed_up']:.2f}x"))
    out = aligned_table(rows, {1, 2, 3, 5, 6, 7, 8})
    out.append("")
    out.append(f"msgs/s end to end (deliver_due: claim → send → mark), median of {REPS} "
               f"interleaved repetitions ({REP_MESSAGES:,} messages at the 0 ms receiver, "
               f"{SLOW_MESSAGES} at the {SLOW_DELAY_MS:g} ms one) unless marked 1 run; "
               "speed-up = 1 / cost ratio (>1: faster than the sequential loop)")
    for c in results:
        if "db_cost_us_per_message" in c.extra:
            wl = c.extra["workload"]
            cpu = wl["client_cpu_ms_per_message_median"]
            out.append(f"[receiver {wl['receiver']['delay_ms']:g} ms] database share "
                       f"{c.extra['db_cost_us_per_message'] / 1000:.2f} ms per message "
                       "(deliver_due minus send_all alone); this process's CPU per message: "
                       + ", ".join(f"{name.split(' (')[0]} {ms:.2f} ms"
                                   for name, ms in cpu.items())
                       + f"; receiver CPU {wl['receiver']['cpu_us_per_request']:.0f} µs per "
                       f"request (kernel {wl['receiver']['sys_cpu_us_per_request']:.0f}); "
                       f"enqueue {wl['enqueue_per_s_median']:,.0f} rows/s")
        if c.extra.get("full_run"):
            mem, base = c.extra["memory"], c.extra["baseline_memory"]
            out.append(
                f"{FULL_MESSAGES:,} messages, peak RSS growth "
                f"({'VmHWM' if mem['method'] == _RSS_METHOD else 'ru_maxrss'}, fresh process "
                "per variant, peak reset before each phase): deliver_due "
                f"+{mem['run_growth_mib']:.1f} MiB while delivering ({c.extra['deliver_due_calls']}"
                f" calls of limit {BATCH}; +{mem['total_growth_mib']:.1f} MiB counting the "
                f"enqueue, {c.extra['enqueue_per_s']:,.0f} rows/s), sequential loop "
                f"+{base['run_growth_mib']:.1f} MiB while posting (+{base['total_growth_mib']:.1f}"
                f" MiB counting its {FULL_MESSAGES:,} rendered bodies held in memory); process "
                f"peaks {mem['peak_mib']:.0f} / {base['peak_mib']:.0f} MiB; CPU per message "
                + " / ".join(f"{ms:.2f}" for ms in c.extra["client_cpu_ms_per_message"].values())
                + " ms")
    client = section.get("client", {})
    if "httpcore_current_async_library_us" in client:
        out.append(f"client: httpx {client['httpx']}, httpcore {client['httpcore']}; sniffio "
                   f"{'installed' if client['sniffio_installed'] else 'missing'}: httpcore's "
                   "async-library check costs "
                   f"{client['httpcore_current_async_library_us']:.1f} µs per call")
    for s in section.get("retry_after_scenarios", []):
        gaps = s["wait_after_429_s"]
        rx = s["receiver"]
        out.append(
            f"[{s['name']}] {s['messages']} messages, first {s['rejected_first']} answers 429: "
            f"receiver got {rx['distinct_ok']} distinct dedup_keys, {rx['duplicates_ok']} "
            f"duplicates, {s['rows_undelivered']} undelivered; {s['notification_failed_events']}"
            f" failures recorded; wait after a 429 {gaps.get('min', 0):.1f}–"
            f"{gaps.get('max', 0):.1f} s (median {gaps.get('median', 0):.1f}); total simulated "
            f"wait {s['total_simulated_wait_s']:g} s (Retry-After alone: "
            f"{s['retry_after_alone_wait_s']} s) in {s['deliver_due_calls']} deliver_due calls, "
            f"{s['real_s']:.1f} s real"
            + ("" if s["ok"] else " — FAILED: " + "; ".join(s["problems"])))
    for name, why in skipped.items():
        out.append(f"{name}: skipped ({why})")
    return "\n".join(out)


def main() -> int:
    """The delivery benchmark alone (``python -m benchmarks`` runs them all)."""
    results, section, skipped, failed = run()
    print(format_table(results, section, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
