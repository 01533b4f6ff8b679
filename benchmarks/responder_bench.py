"""How fast the responder's alerts page renders with 5,000 active alerts and 500 silences.

Target (issue #17): ``GET /alerts`` under 200 ms server-side. The page computes every
alert's row (what mutes it, its links) and the counts of all 5,000, and shows the first
500 rows (critical firing first) with a filter and a "show all" link; the same run also
times ``/alerts?all=1`` (all 5,000 rows, 2.3 MB of HTML) and a filtered page
(``team="team7"``, 100 alerts), for the record. Measured in-process
through the ASGI app (``httpx.ASGITransport``: the request goes through sign-in, the
queries, muting and the template, but no socket), signed in as a trusted-proxy user.

Baseline, same run, same data: what ``alert-jobs status`` does for the same alerts —
read them from the timeline and format the CLI's table (``runtime.commands.table``).
The page does more per alert (what mutes it and until when against 500 silences, the
inhibitions, the runbook, dashboard and run links, HTML escaping), so the ratio says
what those cost. Wall and CPU time, medians of interleaved repetitions (page, table,
page, …), on SQLite and, with ``$TEST_DATABASE_URL``, PostgreSQL.

Run alone: ``python -m benchmarks.responder_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from alert_jobs.config import parse_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Matcher, Observation, Severity, Status
from alert_jobs.http.app import create_app
from alert_jobs.http.auth import AuthSettings
from alert_jobs.runtime.commands import table
from alert_jobs.store import Timeline, utcnow
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json
from benchmarks.timeline_bench import aligned_table

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "responder.json"
SIZES = {"full": (5000, 500, 15), "quick": (600, 30, 3)}  # alerts, silences, repetitions
TARGET_MS = 200.0
USER_HEADER = "x-forwarded-user"
RULES = """
defaults: {receivers: [console], dagster_url: "http://127.0.0.1:3000"}
inhibit_rules:
  - source_matchers: ["alertname=rule_0"]
    target_matchers: ["alertname=rule_1"]
    equal: [team]
"""


#: What is timed: (case suffix, query string, rows the page must list).
PAGES = [("", "", lambda n: min(n, 500)),
         ("_all_rows", "?all=1", lambda n: n),
         ("_filtered", '?filter=team%3D%22team7%22', lambda n: n // 50)]


@dataclass(frozen=True)
class PageResult:
    name: str
    alerts: int
    silences: int
    page_ms: float
    page_cpu_ms: float
    table_ms: float
    table_cpu_ms: float
    page_bytes: int

    @property
    def ratio(self) -> float:
        return self.page_ms / self.table_ms if self.table_ms else float("nan")

    @property
    def has_target(self) -> bool:
        """The target is for the page as a responder opens it (not ``all=1``)."""
        return not self.name.endswith("_all_rows")

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio": self.ratio, "target_ms": TARGET_MS,
                "within_target": self.page_ms < TARGET_MS if self.has_target else None}


def seed(timeline: Timeline, n_alerts: int, n_silences: int) -> None:
    """``n_alerts`` active alerts over 200 rules, 50 teams and 3 severities (a tenth of
    them pending), and ``n_silences`` active silences: 80 % on a team and a host, 10 %
    on a rule and a host regex, 5 % on a host regex alone (which every alert must be
    checked against), 5 % that match nothing. An inhibit rule mutes ``rule_1``'s
    alerts while ``rule_0`` fires for the same team."""
    now = utcnow()
    severities = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
    items = []
    for i in range(n_alerts):
        obs = Observation(f"rule_{i % 200}", Status.ALERT,
                          {"team": f"team{i % 50}", "host": f"host{i}"}, float(i),
                          summary=f"Expected errors under 100 in the last 5 minutes, got {i}",
                          expected="under 100", severity=severities[i % 3])
        policy = RulePolicy(rule=obs.rule, receivers=("console",),
                            for_=timedelta(hours=1) if i % 10 == 9 else timedelta(0))
        items.append((obs, policy, None))
    for start in range(0, n_alerts, 500):
        timeline.alerts.process_many(items[start:start + 500], now=now - timedelta(minutes=5),
                                     run_id=f"run-{start // 500}")
    for i in range(n_silences):
        kind = i % 20
        if kind == 0:  # a regex only: checked against every alert
            matchers = [Matcher("host", "=~", f"host{i}[0-9]")]
        elif kind in (1, 2):  # a rule's alerts on some hosts
            matchers = [Matcher("alertname", "=", f"rule_{i % 200}"),
                        Matcher("host", "=~", f"host{i}.*")]
        elif kind == 3:  # matches nothing
            matchers = [Matcher("team", "=", "nobody")]
        else:  # one team's host
            matchers = [Matcher("team", "=", f"team{i % 50}"), Matcher("host", "=", f"host{i * 7}")]
        timeline.silences.add(matchers, ends_at=now + timedelta(hours=2), created_by="bench",
                              comment=f"maintenance {i}", now=now)


def cli_table(timeline: Timeline) -> str:
    """What ``alert-jobs status`` prints for the active alerts (its table)."""
    alerts = timeline.alerts.list()
    rows = [[a.fingerprint[:12], a.rule, str(a.state), str(a.severity),
             str(a.fired_at or a.active_since), a.acked_by or "-", a.last_summary[:80]]
            for a in alerts]
    return table(rows, ["FINGERPRINT", "RULE", "STATE", "SEVERITY", "SINCE", "FLAGS",
                        "LAST CHECK"])


def measure(name: str, url: str, n_alerts: int, n_silences: int,
            reps: int) -> list[PageResult]:
    timeline = Timeline(url)
    timeline.ensure_schema()
    seed(timeline, n_alerts, n_silences)
    rules = parse_rules(RULES)
    app = create_app(lambda: timeline, lambda: rules,
                     auth=AuthSettings(user_header=USER_HEADER))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    # As `alert-jobs serve` does after start-up: what is allocated so far is never freed,
    # so the collector need not walk it again on every request.
    gc.collect()
    gc.freeze()
    page_wall: dict[str, list[float]] = {case: [] for case, _, _ in PAGES}
    page_cpu: dict[str, list[float]] = {case: [] for case, _, _ in PAGES}
    size: dict[str, int] = {}
    table_wall: list[float] = []
    table_cpu: list[float] = []

    async def run() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for rep in range(reps + 1):  # the first of each is a warm-up
                for case, query, rows in PAGES:
                    w, c = time.perf_counter(), time.process_time()
                    answer = await client.get("/alerts" + query,
                                              headers={USER_HEADER: "bench"})
                    pw, pc = time.perf_counter() - w, time.process_time() - c
                    if answer.status_code != 200:
                        raise RuntimeError(f"GET /alerts{query} answered {answer.status_code}")
                    links = answer.text.count('<td><a href="/alerts/')
                    if links != rows(n_alerts):
                        raise RuntimeError(f"/alerts{query} lists {links} alerts, not "
                                           f"{rows(n_alerts)}")
                    size[case] = len(answer.content)
                    if rep:
                        page_wall[case].append(pw)
                        page_cpu[case].append(pc)
                w, c = time.perf_counter(), time.process_time()
                text = cli_table(timeline)
                tw, tc = time.perf_counter() - w, time.process_time() - c
                if text.count("\n") != n_alerts:
                    raise RuntimeError("the CLI table lost alerts")
                if rep:
                    table_wall.append(tw)
                    table_cpu.append(tc)

    asyncio.run(run())
    gc.unfreeze()
    timeline.dispose()
    ms = 1000.0
    return [PageResult(name + case, n_alerts, n_silences,
                       statistics.median(page_wall[case]) * ms,
                       statistics.median(page_cpu[case]) * ms,
                       statistics.median(table_wall) * ms, statistics.median(table_cpu) * ms,
                       size[case]) for case, _, _ in PAGES]


@contextlib.contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="alert-jobs-responder-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'timeline.db'}"


def run(quick: bool = False) -> tuple[list[PageResult], dict[str, str]]:
    n_alerts, n_silences, reps = SIZES["quick" if quick else "full"]
    results: list[PageResult] = []
    skipped: dict[str, str] = {}
    with _sqlite_url() as url:
        results += measure("alerts_page_sqlite", url, n_alerts, n_silences, reps)
    pg_url, schema = scratch_schema("responder")
    if pg_url is None:
        skipped["alerts_page_postgresql"] = schema
    else:
        try:
            results += measure("alerts_page_postgresql", pg_url, n_alerts, n_silences, reps)
        finally:
            drop_schema(schema)
    return results, skipped


def format_table(results: list[PageResult], skipped: dict[str, str]) -> str:
    rows = [[r.name, f"{r.alerts:,}", f"{r.silences:,}", f"{r.page_ms:.0f}",
             f"{r.page_cpu_ms:.0f}", f"{r.table_ms:.0f}", f"{r.ratio:.1f}×",
             f"{r.page_bytes / 1e6:.1f} MB",
             ("yes" if r.page_ms < TARGET_MS else "NO") if r.has_target else "-"]
            for r in results]
    header = ["case", "alerts", "silences", "page ms", "page CPU ms", "CLI table ms",
              "page/table", "page size", f"< {TARGET_MS:.0f} ms"]
    out = ["Responder page: GET /alerts server-side vs `alert-jobs status`'s table, same "
           "data (medians)",
           *aligned_table([header, *rows], set(range(1, len(header))))]
    out += [f"skipped {name}: {why}" for name, why in skipped.items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 alerts, 30 silences")
    args = parser.parse_args(argv)
    results, skipped = run(quick=args.quick)
    print(format_table(results, skipped))
    write_json(RESULTS_FILE, [r.as_json() for r in results], skipped)
    return 0 if args.quick or all(r.page_ms < TARGET_MS for r in results if r.has_target) \
        else 1


if __name__ == "__main__":
    sys.exit(main())
