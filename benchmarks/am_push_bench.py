"""Prometheus-style pushes of 10,000 active alerts to ``POST /api/v2/alerts`` (issue #19).

Prometheus sends its firing alerts to Alertmanager in batches of 64 per POST (its
notifier's fixed batch size up to 3.3, the Debian 2.42 here; ``--alertmanager.
notification-batch-size``, default 256, from 3.4), one batch after another, and sends
every still-firing alert again at each evaluation (at most every
``--rules.alert.resend-delay``, 1 m) with a new ``endsAt`` (now + 4 × max(evaluation
interval, resend delay)). This benchmark plays that: 10,000 firing alerts (10 alert
names × 10 teams, one instance each, Prometheus's labels and annotations), pushed as
157 POSTs of up to 64 alerts, then pushed again in the next cycles ("every 30 s": the
cycles follow each other at once — what is measured is whether a cycle's pushes take
well under the 30 s between two, and the engine's timers do not depend on the gap).

Served as ``alert-jobs serve`` serves it: the app (``create_app``, a bearer token) by
uvicorn on 127.0.0.1, real HTTP with keep-alive, over SQLite and, with
``$TEST_DATABASE_URL``, PostgreSQL. Baseline, same run, same payloads: a null endpoint
(a Starlette app that reads the body and answers 200) served the same way; each batch
is POSTed to both in turn (alternating which goes first), so both see the same machine
load. Reported per cycle kind (the first push of new alerts, and the re-sends): POSTs
per second, alerts per second, p50 and p99 latency per POST, our p50 over the null
endpoint's, and the longest cycle against the 30 s budget. A POST's time is the
server's whole answer to it (the push through the engine); the delivery the push then
runs in the background (``push.Deliveries``) shares the process, as it does in
``alert-jobs serve``, so what it costs slows the next POSTs and shows in their times.

Checked (a failure stops the benchmark; timings would be meaningless): every alert is
in the timeline, firing, after each cycle; one firing notification per group as
routing says (``group_by: [alertname, team]``, 100 groups: exactly 100 outbox rows,
one per group key, after the first cycle, and none more after the re-sends); the
webhook receiver (``benchmarks/webhook_receiver.py``, its own process) gets each of
them exactly once; ``GET /api/v2/alerts`` lists all 10,000 firing and
``/api/v2/alerts/groups`` 100 groups (their time is reported too).
``group_interval`` is 1 h so that a slow run (PostgreSQL, a busy machine) cannot
legitimately send a group's update between cycles and blur the count.

Run alone: ``python -m benchmarks.am_push_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alert_jobs.config import parse_rules
from alert_jobs.core.model import AlertState
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.http.alertmanager.shapes import format_time
from alert_jobs.http.app import create_app
from alert_jobs.http.auth import AuthSettings
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline, schema, utcnow
from benchmarks.delivery_bench import local_receiver, quiet_log
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json
from benchmarks.timeline_bench import BenchmarkError, aligned_table

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "am_push.json"
SIZES = {"full": (10_000, 3), "quick": (500, 2)}  # alerts, cycles (the first + re-sends)
BATCH = 64  # Prometheus's alerts per POST (fixed up to 3.3; 256 by default from 3.4)
CYCLE_S = 30.0  # the budget: a cycle's pushes must take well under the gap between two
NAMES, TEAMS = 10, 10  # alert names × teams = the groups of group_by [alertname, team]
TOKEN = "prometheus-bench-token-0123456789"
PATH = "/api/v2/alerts"
USER_HEADER = "x-forwarded-user"
DELIVERY_TIMEOUT_S = 120.0
RULES = """
defaults:
  receivers: [hook]
  group_by: [alertname, team]
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - {{name: hook, type: webhook, url: "{url}"}}
"""


# ----- the workload -----------------------------------------------------------------


def alert(i: int, starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    """The ``i``-th alert as Prometheus's notifier sends it (``postableAlert``)."""
    name, team = f"Alert{i % NAMES:02d}", f"team{(i // NAMES) % TEAMS:02d}"
    instance = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}:9100"
    return {
        "labels": {"alertname": name, "team": team, "instance": instance, "job": "node",
                   "severity": "critical" if i % NAMES == 0 else "warning"},
        "annotations": {"summary": f"{name} on {instance}",
                        "description": f"{instance} of {team} has been over its threshold "
                                       "for 5 minutes (value 0.97).",
                        "runbook_url": f"https://runbooks.example.com/{name}"},
        "startsAt": format_time(starts_at),
        "endsAt": format_time(ends_at),
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=node_load1+%3E+0.9"
                        "&g0.tab=1",
    }


def cycle_bodies(n_alerts: int, starts_at: datetime, now: datetime) -> list[bytes]:
    """One cycle's POST bodies: every alert firing, ``endsAt`` = now + 4 × the 1 m resend
    delay, in batches of :data:`BATCH` (serialized once, as Prometheus caches them)."""
    ends_at = now + timedelta(minutes=4)
    alerts = [alert(i, starts_at, ends_at) for i in range(n_alerts)]
    return [json.dumps(alerts[i:i + BATCH], separators=(",", ":")).encode()
            for i in range(0, n_alerts, BATCH)]


def groups_of(n_alerts: int) -> int:
    return len({(i % NAMES, (i // NAMES) % TEAMS) for i in range(n_alerts)})


# ----- servers ----------------------------------------------------------------------


def null_app() -> Starlette:
    """The baseline: reads the body, answers 200, nothing else."""

    async def post(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    return Starlette(routes=[Route(PATH, post, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port (in a thread); its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise BenchmarkError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# ----- measuring --------------------------------------------------------------------


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    cycles: list[float] = field(default_factory=list)  # seconds of POSTs per cycle


@dataclass(frozen=True)
class PushResult:
    name: str
    cycle: str  # "first" (new alerts) or "resend"
    alerts: int
    cycles: int
    batch: int
    posts: int
    posts_per_s: float
    alerts_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # this process's CPU per POST (client, server and its threads)
    null_posts_per_s: float
    null_p50_ms: float
    null_p99_ms: float
    null_cpu_ms: float
    longest_cycle_s: float
    firing: int
    groups: int
    notifications: int  # firing outbox rows after this kind of cycle
    delivered: int
    list_ms: float  # GET /api/v2/alerts with every alert, after the last cycle
    groups_ms: float  # GET /api/v2/alerts/groups

    @property
    def ratio(self) -> float:
        return self.p50_ms / self.null_p50_ms if self.null_p50_ms else float("nan")

    @property
    def within_budget(self) -> bool:
        return self.longest_cycle_s < CYCLE_S

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio_p50": self.ratio, "cycle_budget_s": CYCLE_S,
                "within_budget": self.within_budget}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _post(client: httpx.Client, body: bytes, timings: Timings) -> None:
    w, c = time.perf_counter(), time.process_time()
    answer = client.post(PATH, content=body)
    timings.wall.append(time.perf_counter() - w)
    timings.cpu.append(time.process_time() - c)
    if answer.status_code != 200:
        raise BenchmarkError(f"POST {client.base_url}{PATH} answered {answer.status_code}: "
                             f"{answer.text[:300]}")


def firing_notifications(timeline: Timeline) -> Counter[str]:
    """Firing outbox rows per group key (a group message's dedup_key is ``key#seq``)."""
    t = schema.outbox
    with timeline.read() as conn:
        keys = conn.execute(sa.select(t.c.dedup_key).where(t.c.kind == "firing")).scalars()
        return Counter(key.rpartition("#")[0] for key in keys)


def _check_alerts(timeline: Timeline, n_alerts: int, when: str) -> int:
    states = Counter(a.state for a in timeline.alerts.list())
    if states != Counter({AlertState.FIRING: n_alerts}):
        raise BenchmarkError(f"{when}: expected {n_alerts} firing alerts in the timeline, "
                             f"found {dict(states)}")
    return n_alerts


def _check_notifications(timeline: Timeline, n_groups: int, when: str) -> int:
    per_group = firing_notifications(timeline)
    if len(per_group) != n_groups or set(per_group.values()) != {1}:
        raise BenchmarkError(f"{when}: expected one firing notification for each of "
                             f"{n_groups} groups, found {sum(per_group.values())} over "
                             f"{len(per_group)} groups")
    return sum(per_group.values())


def _wait_delivered(receiver: Any, rules: Any, timeline: Timeline, n_groups: int) -> int:
    """Deliveries run after pushes in the background; wait for them (and run one more
    round ourselves, as the outbox sensor would), then check each arrived once."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    stats = receiver.stats()
    while stats["ok"] < n_groups and time.monotonic() < deadline:
        deliver(rules, timeline)
        time.sleep(0.2)
        stats = receiver.stats()
    time.sleep(0.5)  # anything more would be a duplicate: give it time to show
    stats = receiver.stats()
    if (stats["ok"], stats["distinct_ok"], stats["duplicates_ok"]) != (n_groups, n_groups, 0):
        raise BenchmarkError(f"the receiver expected {n_groups} distinct notifications, "
                             f"saw {stats}")
    return int(stats["ok"])


def measure(name: str, url: str, n_alerts: int, cycles: int) -> list[PushResult]:
    timeline = Timeline(url)
    timeline.ensure_schema()
    n_groups = groups_of(n_alerts)
    ours: dict[str, Timings] = {"first": Timings(), "resend": Timings()}
    null: dict[str, Timings] = {"first": Timings(), "resend": Timings()}
    notified: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        with local_receiver() as receiver:
            rules = parse_rules(RULES.format(url=receiver.url))
            app = create_app(lambda: timeline, lambda: rules,
                             auth=AuthSettings(user_header=USER_HEADER),
                             api_auth=ApiAuth(tokens={TOKEN: "prometheus"}))
            with served(app) as base, served(null_app()) as null_base, \
                    httpx.Client(base_url=base, headers=headers, timeout=120) as client, \
                    httpx.Client(base_url=null_base, headers=headers, timeout=120) as baseline:
                gc.collect()
                gc.freeze()  # as `alert-jobs serve` does after start-up
                try:
                    starts_at = utcnow() - timedelta(minutes=10)
                    for cycle in range(cycles):
                        kind = "first" if cycle == 0 else "resend"
                        bodies = cycle_bodies(n_alerts, starts_at, utcnow())
                        spent = len(ours[kind].wall)
                        for i, body in enumerate(bodies):
                            pair = ((client, ours[kind]), (baseline, null[kind]))
                            for target, timings in (pair if i % 2 == 0 else pair[::-1]):
                                _post(target, body, timings)
                        ours[kind].cycles.append(sum(ours[kind].wall[spent:]))
                        null[kind].cycles.append(sum(null[kind].wall[spent:]))
                        when = f"{name}, after cycle {cycle + 1}"
                        _check_alerts(timeline, n_alerts, when)
                        notified[kind] = _check_notifications(timeline, n_groups, when)
                    delivered = _wait_delivered(receiver, rules, timeline, n_groups)
                    _check_notifications(timeline, n_groups, f"{name}, after delivery")
                    w = time.perf_counter()
                    listed = client.get(PATH).json()
                    list_s = time.perf_counter() - w
                    w = time.perf_counter()
                    grouped = client.get(PATH + "/groups").json()
                    groups_s = time.perf_counter() - w
                finally:
                    gc.unfreeze()
            if len(listed) != n_alerts or {a["status"]["state"] for a in listed} != {"active"}:
                raise BenchmarkError(f"{name}: GET {PATH} listed {len(listed)} alerts, "
                                     f"not {n_alerts} active ones")
            if len(grouped) != n_groups or sum(len(g["alerts"]) for g in grouped) != n_alerts:
                raise BenchmarkError(f"{name}: GET {PATH}/groups gave {len(grouped)} groups")
    finally:
        timeline.dispose()
    ms = 1000.0
    results = []
    for kind, timings in ours.items():
        if not timings.wall:
            continue
        base_t = null[kind]
        results.append(PushResult(
            name, kind, n_alerts, len(timings.cycles), BATCH, len(timings.wall),
            len(timings.wall) / sum(timings.wall),
            n_alerts * len(timings.cycles) / sum(timings.wall),
            statistics.median(timings.wall) * ms, _quantile(timings.wall, 0.99) * ms,
            statistics.mean(timings.cpu) * ms,
            len(base_t.wall) / sum(base_t.wall),
            statistics.median(base_t.wall) * ms, _quantile(base_t.wall, 0.99) * ms,
            statistics.mean(base_t.cpu) * ms,
            max(timings.cycles), n_alerts, n_groups, notified[kind], delivered,
            list_s * ms, groups_s * ms))
    return results


@contextlib.contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="alert-jobs-am-push-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'timeline.db'}"


def run(quick: bool = False) -> tuple[list[PushResult], dict[str, str]]:
    n_alerts, cycles = SIZES["quick" if quick else "full"]
    results: list[PushResult] = []
    skipped: dict[str, str] = {}
    with quiet_log("alert_jobs"), _sqlite_url() as url:
        results += measure("am_push_sqlite", url, n_alerts, cycles)
    pg_url, schema_name = scratch_schema("am_push")
    if pg_url is None:
        skipped["am_push_postgresql"] = schema_name
    else:
        try:
            with quiet_log("alert_jobs"):
                results += measure("am_push_postgresql", pg_url, n_alerts, cycles)
        finally:
            drop_schema(schema_name)
    return results, skipped


def format_table(results: list[PushResult], skipped: dict[str, str]) -> str:
    rows = [[r.name, r.cycle, f"{r.posts:,}", f"{r.posts_per_s:,.0f}", f"{r.alerts_per_s:,.0f}",
             f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.null_p50_ms:.1f}",
             f"{r.null_p99_ms:.1f}", f"{r.ratio:.1f}×", f"{r.longest_cycle_s:.1f}",
             "yes" if r.within_budget else "NO", f"{r.firing:,}",
             f"{r.notifications}/{r.groups}"]
            for r in results]
    header = ["case", "cycle", "POSTs", "POST/s", "alerts/s", "p50 ms", "p99 ms",
              "null p50", "null p99", "p50/null", "cycle s", f"< {CYCLE_S:.0f} s",
              "firing", "notified/groups"]
    first = results[0] if results else None
    out = [f"Alertmanager pushes: {first.alerts if first else 0:,} alerts in POSTs of "
           f"{BATCH}, vs the same payloads to a null endpoint (medians, p99)",
           *aligned_table([header, *rows], set(range(2, len(header))))]
    out += [f"{r.name}: GET {PATH} {r.list_ms:.0f} ms, /groups {r.groups_ms:.0f} ms "
            f"({r.alerts:,} alerts); {r.delivered} notifications delivered"
            for r in results if r.cycle == "first"]
    out += [f"skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{SIZES['quick'][0]} alerts, {SIZES['quick'][1]} cycles")
    args = parser.parse_args(argv)
    results, skipped = run(quick=args.quick)
    print(format_table(results, skipped))
    write_json(RESULTS_FILE, [r.as_json() for r in results], skipped)
    return 0 if args.quick or all(r.within_budget for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
