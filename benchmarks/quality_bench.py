"""Alert-quality rollup of 1 million timeline events: SQL GROUP BY against pandas.

Generates a realistic timeline (1,000 rules, one alert instance each, 30 days; per
episode: firing, first notification, delivery, sometimes an ack with an outcome, a
flap now and then, resolve, resolve notification and delivery) with the
``alert_episodes`` rows the timeline keeps alongside, bulk-loaded (``executemany`` on
SQLite, ``COPY`` on PostgreSQL). Then, in the same run and on the same database:

* **measured**: :func:`alert_jobs.families.quality.rollup.quality_rows` for the whole 30 days
  (two SQL statements over ``alert_episodes``), per day, rule and severity (the daily
  assets' grouping, all 30 days at once) and per rule and severity (the monthly one);
* **baseline**: what you would do without it: ``pd.read_sql`` of every event, rebuild
  the episodes in pandas, and group by day, rule and severity.

Both produce the same numbers (checked: fired, actionable and median time to resolve
per group). Medians over repeats; peak RSS growth (``getrusage`` high-water mark) of
each phase, SQL first. ``--events N`` for a smaller run (the test uses 5,000).
Target: SQL rollup under 2 s for 1 M events.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alert_jobs.families.quality.rollup import quality_rows
from alert_jobs.store import Timeline, make_engine, schema
from benchmarks.pg_schema import drop_schema, scratch_schema
from benchmarks.results_file import write_json

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "quality.json"
EVENTS = 1_000_000
RULES = 1_000
DAYS = 30
T0 = datetime(2026, 9, 1, tzinfo=UTC)
SEED = 7
SQL_REPS = 5
PANDAS_REPS = 3
OUTCOMES = ("actionable", "actionable", "false-positive", "noise", "duplicate")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n_events: int) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]],
                                    dict[str, str]]:
    """(event rows, episode rows, fingerprint → severity), deterministic."""
    rng = random.Random(SEED)
    fps = [f"{i:016x}" for i in range(RULES)]
    severity = {fp: ("critical" if i % 5 == 0 else "warning") for i, fp in enumerate(fps)}
    span = DAYS * 86400
    events: list[tuple[Any, ...]] = []
    episodes: list[dict[str, Any]] = []
    cursor = {fp: rng.uniform(0, 3600) for fp in fps}
    number = dict.fromkeys(fps, 0)
    last_resolved: dict[str, float] = {}
    # ~6.45 events per episode; space episodes so every instance's month fills up a
    # little before the event budget is spent (episodes of one instance never overlap).
    per_fp = n_events / 6.45 / RULES
    mean_gap = 0.6 * span / max(per_fp, 1.0)
    active = list(fps)
    while len(events) < n_events and active:
        fp = active[rng.randrange(len(active))]
        start = cursor[fp] + rng.expovariate(1 / mean_gap)
        if rng.random() < 0.15 and fp in last_resolved:  # a flap
            start = last_resolved[fp] + rng.uniform(60, 3000)
        start = max(start, cursor[fp] + 2)
        if start + 86400 >= span:
            active.remove(fp)  # this instance's month is full
            continue
        number[fp] += 1
        rule, sev = f"rule_{fp[-4:]}", severity[fp]
        fired = T0 + timedelta(seconds=start)
        resolve_s = float(int(rng.lognormvariate(6.5, 1.2)) + 60)
        resolved = fired + timedelta(seconds=resolve_s)
        ep: dict[str, Any] = {
            "fingerprint": fp, "episode": number[fp], "rule": rule, "severity": sev,
            "day": fired.strftime("%Y-%m-%d"), "fired_at": fired, "first_notified_at": fired,
            "first_ack_at": None, "first_response_at": None, "resolved_at": resolved,
            "ack_seconds": None, "response_seconds": None, "resolve_seconds": resolve_s,
            "outcome": None, "outcome_by": None, "notifications": 1,
            "pages": 1 if sev == "critical" else 0,
            "flap": fp in last_resolved and start - last_resolved[fp] <= 3600,
            "updated_at": resolved}
        evs = [(fired, "firing", "{}"), (fired, "notify", '{"reason": "first"}'),
               (fired + timedelta(seconds=1), "notification_sent", "{}")]
        if rng.random() < 0.45:
            ack_s = float(int(min(resolve_s - 1, rng.expovariate(1 / 600))) + 1)
            outcome = rng.choice((*OUTCOMES, None))
            acked = fired + timedelta(seconds=ack_s)
            ep.update(first_ack_at=acked, first_response_at=acked, ack_seconds=ack_s,
                      response_seconds=ack_s, outcome=outcome,
                      outcome_by="alice" if outcome else None)
            evs.append((acked, "acked", json.dumps({"outcome": outcome})))
        evs += [(resolved, "resolved", "{}"), (resolved, "notify", "{}"),
                (resolved + timedelta(seconds=1), "notification_sent", "{}")]
        for at, kind, payload in evs:
            events.append((at, fp, rule, kind, "", "system", "engine", None, payload))
        episodes.append(ep)
        cursor[fp] = resolved.timestamp() - T0.timestamp()
        last_resolved[fp] = cursor[fp]
    return events, episodes, severity


def load(url: str, events: list[tuple[Any, ...]], episodes: list[dict[str, Any]],
         severity: dict[str, str]) -> None:
    timeline = Timeline(url)
    timeline.upgrade()
    engine = timeline.engine
    alerts = [{"fingerprint": fp, "rule": f"rule_{fp[-4:]}", "labels": {}, "state": "resolved",
               "severity": sev, "episode": 0, "notified_firing": False, "notify_seq": 0,
               "escalation_step": 0, "last_summary": "", "updated_at": T0}
              for fp, sev in severity.items()]
    with engine.begin() as conn:
        conn.execute(schema.alerts.insert(), alerts)
        if engine.dialect.name == "postgresql":
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(
                    "COPY alert_events (at, fingerprint, rule, kind, reason, actor, source, "
                    "run_id, payload) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
            cols = [c.name for c in schema.episodes.c]
            with raw.cursor() as cur, cur.copy(
                    f"COPY alert_episodes ({', '.join(cols)}) FROM STDIN") as copy:
                for ep in episodes:
                    copy.write_row([ep[c] for c in cols])
        else:
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.executemany(
                "INSERT INTO alert_events (at, fingerprint, rule, kind, reason, actor, source, "
                "run_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r[0].replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
                  *r[1:]) for r in events])
            conn.execute(schema.episodes.insert(), episodes)
    # Steady state of a live database (autovacuum has run): statistics, and on PostgreSQL
    # a visibility map, so index-only scans need no heap fetches.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE alert_events")
            conn.exec_driver_sql("VACUUM ANALYZE alert_episodes")
        else:
            conn.exec_driver_sql("ANALYZE")
    timeline.dispose()


# (name, grouping): the daily assets' grouping over the whole month at once (a backfill
# of 30 daily partitions in one query), and the monthly asset's.
GROUPINGS = (("per day, rule, severity", ("day", "rule", "severity")),
             ("per rule, severity (month)", ("rule", "severity")))
Result = dict[tuple[str, ...], tuple[int, int, float | None]]


def sql_rollup(url: str, by: tuple[str, ...]) -> Result:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = quality_rows(conn, T0, T0 + timedelta(days=DAYS + 1), by=by)
    finally:
        engine.dispose()
    return {tuple(str(getattr(r, k)) for k in by): (r.fired, r.actionable, r.resolve_p50)
            for r in rows}


def pandas_rollup(url: str, by: tuple[str, ...]) -> Result:
    """The load-everything baseline: read every event, rebuild episodes, group."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ev = pd.read_sql("SELECT id, at, fingerprint, rule, kind, payload FROM alert_events",
                             conn)
            sev = pd.read_sql("SELECT fingerprint, severity FROM alert_alerts", conn)
    finally:
        engine.dispose()
    ev["at"] = pd.to_datetime(ev["at"], utc=True, format="ISO8601")
    ev = ev.sort_values(["fingerprint", "at", "id"], kind="stable")
    ev["episode"] = (ev["kind"] == "firing").astype(int).groupby(ev["fingerprint"]).cumsum()
    key = ["fingerprint", "episode"]
    fired = ev[ev["kind"] == "firing"].groupby(key)["at"].min().rename("fired_at")
    resolved = ev[ev["kind"] == "resolved"].groupby(key)["at"].min().rename("resolved_at")
    acks = ev[ev["kind"] == "acked"].copy()
    acks["outcome"] = [(p if isinstance(p, dict) else json.loads(p)).get("outcome")
                       for p in acks["payload"]]
    acks = acks.groupby(key).agg(first_ack=("at", "min"), outcome=("outcome", "last"))
    rule = ev[ev["kind"] == "firing"].groupby(key)["rule"].first()
    eps = pd.concat([fired, resolved, acks, rule], axis=1).reset_index()
    eps = eps.merge(sev, on="fingerprint")
    eps["day"] = eps["fired_at"].dt.strftime("%Y-%m-%d")
    eps["actionable"] = (eps["outcome"] == "actionable") | (
        eps["outcome"].isna() & eps["first_ack"].notna())
    eps["resolve_s"] = (eps["resolved_at"] - eps["fired_at"]).dt.total_seconds()

    def p50(values: pd.Series) -> float | None:
        v = values.dropna().to_numpy()
        return float(np.quantile(v, 0.5, method="inverted_cdf")) if len(v) else None

    grouped = eps.groupby(list(by)).agg(
        fired=("episode", "size"), actionable=("actionable", "sum"), resolve_p50=("resolve_s", p50))
    return {tuple(str(k) for k in key): (int(row.fired), int(row.actionable), row.resolve_p50)
            for key, row in grouped.iterrows()}


def _time(fn: Any, url: str, by: tuple[str, ...], reps: int) -> tuple[list[float], Any, float]:
    before = _rss_mb()
    seconds, result = [], None
    for _ in range(reps):
        started = time.perf_counter()
        result = fn(url, by)
        seconds.append(time.perf_counter() - started)
    return seconds, result, _rss_mb() - before


def bench_backend(name: str, url: str, data: tuple[Any, ...], sql_reps: int,
                  pandas_reps: int) -> list[dict[str, Any]]:
    started = time.perf_counter()
    load(url, *data)
    load_s = time.perf_counter() - started
    out = []
    for label, by in GROUPINGS:
        sql_s, sql_result, sql_rss = _time(sql_rollup, url, by, sql_reps)
        pd_s, pd_result, pd_rss = _time(pandas_rollup, url, by, pandas_reps)
        if sql_result != pd_result:
            diff = [k for k in set(sql_result) | set(pd_result)
                    if sql_result.get(k) != pd_result.get(k)][:5]
            raise AssertionError(f"{name} {label}: SQL and pandas rollups differ, e.g. {diff}")
        sql_median, pd_median = statistics.median(sql_s), statistics.median(pd_s)
        out.append({
            "backend": name, "grouping": label, "events": len(data[0]),
            "episodes": len(data[1]), "groups": len(sql_result), "load_s": load_s,
            "sql_median_s": sql_median, "sql_runs_s": sql_s,
            "pandas_median_s": pd_median, "pandas_runs_s": pd_s,
            "speedup": pd_median / sql_median if sql_median else float("inf"),
            "sql_peak_rss_growth_mb": sql_rss, "pandas_peak_rss_growth_mb": pd_rss,
            "under_2s": sql_median < 2.0})
    return out


def run(n_events: int = EVENTS, *, sql_reps: int = SQL_REPS, pandas_reps: int = PANDAS_REPS,
        workdir: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    import tempfile

    data = generate(n_events)
    results, skipped = [], {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        results += bench_backend("sqlite", f"sqlite:///{Path(tmp) / 'quality.db'}", data,
                                 sql_reps, pandas_reps)
    pg_url, pg_schema = scratch_schema("bench_quality")
    if pg_url is None:
        skipped["quality rollup postgresql"] = pg_schema
        print(f"skipping PostgreSQL: {pg_schema}", file=sys.stderr)
    else:
        try:
            results += bench_backend("postgresql", pg_url, data, sql_reps, pandas_reps)
        finally:
            drop_schema(pg_schema)
    return results, skipped


def format_table(results: list[dict[str, Any]], skipped: dict[str, str]) -> str:
    lines = ["alert-quality rollup over 30 days: SQL (alert_episodes) vs pandas (all events)",
             f"{'backend':<11}{'grouping':<27}{'events':>10}{'episodes':>9}{'groups':>7}"
             f"{'SQL median':>11}{'pandas':>9}{'speedup':>8}{'SQL RSS+':>9}{'pd RSS+':>9}"
             "  <2s"]
    for r in results:
        lines.append(
            f"{r['backend']:<11}{r['grouping']:<27}{r['events']:>10,}{r['episodes']:>9,}"
            f"{r['groups']:>7,}{r['sql_median_s']:>10.3f}s{r['pandas_median_s']:>8.2f}s"
            f"{r['speedup']:>7.1f}x{r['sql_peak_rss_growth_mb']:>7.0f}MB"
            f"{r['pandas_peak_rss_growth_mb']:>7.0f}MB  {'yes' if r['under_2s'] else 'NO'}")
    for name, why in skipped.items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)


def write_results(results: list[dict[str, Any]], skipped: dict[str, str],
                  path: Path = RESULTS_FILE) -> None:
    write_json(path, results, skipped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 2 repeats")
    parser.add_argument("--no-write", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    n, reps = (20_000, 2) if args.quick else (args.events, None)
    results, skipped = run(n, sql_reps=reps or SQL_REPS, pandas_reps=reps or PANDAS_REPS)
    print(format_table(results, skipped))
    if not args.no_write:
        write_results(results, skipped)
        print(f"wrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
