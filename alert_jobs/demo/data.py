"""Demo data for ``make run``: a small SQLite database the demo rules query.

``dead_letters`` gets a burst of 1,000 rows in the last minutes (so the demo rule
fires, then resolves by itself once the burst leaves its 30-minute window);
``orders`` gets :data:`ORDER_DAYS` days of orders following a day/night and
weekday/weekend curve with noise (:func:`alert_jobs.demo.feed.order_rate`; 1,200 an
hour on a weekday afternoon, about 140 an hour at night), so ``orders_last_hour``, a
baseline rule, has learned the same hour of the last 4 weeks on its first run (its
backfill runs its query over those weeks; ``ix_orders_created_at`` keeps that cheap);
``http_requests`` gets 30 days of checkout requests per minute (about 0.02 % errors)
and, 3 minutes after ``make run``, 10 minutes of 30 % errors: the checkout SLO pages;
``model_scores`` gets a week of ML scores of two models, where ``fraud-v3`` flags half
of its cases as high risk in the last hour (the ML guide's silent model failure).
:mod:`alert_jobs.demo.feed` then keeps orders and scores coming at the same rates while
the demo runs (the same generators write both), so nothing turns red only because the
seeded data grew old. The timeline gets 35 days of past alerts once, so the
alert-quality assets and the monthly review have something to show.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_jobs.demo.feed import FMT, order_rows, request_rows, score_rows

__all__ = ["FMT", "seed", "seed_quality_history", "seed_requests", "seed_scores"]

#: Days of orders before ``make run``: the rule's 28 days of history plus a day, so the
#: oldest backfilled window (an hour, 28 days ago) is full.
ORDER_DAYS = 29
#: The checkout SLO's error burst, from the demo's start: 30 % errors for 10 minutes.
BURST_AFTER = timedelta(minutes=3)
BURST_FOR = timedelta(minutes=10)
#: How far ahead the seed writes the request minutes (the burst and a little after).
AHEAD = timedelta(minutes=20)


def seed(path: str | Path, *, now: datetime | None = None, slo_burst: bool = True) -> Path:
    """(Re)create the demo database at ``path``; returns its path. ``slo_burst`` false:
    the checkout requests have no error burst (the tests' negative control)."""
    now = now or datetime.now(UTC)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(target) as db:
        seed_dead_letters(db, now)
        db.executescript(
            """
            DROP TABLE IF EXISTS orders;
            CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL, created_at TEXT);
            CREATE INDEX ix_orders_created_at ON orders (created_at);
            """
        )
        db.executemany("INSERT INTO orders (amount, created_at) VALUES (?, ?)",
                       order_rows(now - timedelta(days=ORDER_DAYS), now))
        seed_scores(db, now)
        seed_requests(db, now, burst=slo_burst)
    return target


def seed_dead_letters(db: sqlite3.Connection, now: datetime) -> None:
    """1,000 dead letters of the payments queue in the five minutes before ``now``: the
    burst ``dead_letters`` fires on (the one table a test of that rule alone needs)."""
    db.executescript(
        """
        DROP TABLE IF EXISTS dead_letters;
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, queue TEXT, created_at TEXT);
        CREATE INDEX ix_dead_letters_created_at ON dead_letters (created_at);
        """
    )
    db.executemany(
        "INSERT INTO dead_letters (queue, created_at) VALUES (?, ?)",
        [("payments", (now - timedelta(seconds=i % 300)).strftime(FMT)) for i in range(1000)],
    )


def seed_requests(db: sqlite3.Connection, now: datetime, *, burst: bool = True) -> None:
    """30 days of checkout requests per minute (the SLO's whole period, so its budget is
    known from the first run), and the next :data:`AHEAD` minutes with the error burst
    from :data:`BURST_AFTER` on: written now, so the story does not depend on when the
    feed process starts; the SLI query only counts a minute once its time has come."""
    db.executescript(
        """
        DROP TABLE IF EXISTS http_requests;
        CREATE TABLE http_requests (minute TEXT PRIMARY KEY, requests INTEGER,
                                    errors INTEGER);
        """
    )
    window = (now + BURST_AFTER, now + BURST_AFTER + BURST_FOR) if burst else None
    db.executemany("INSERT INTO http_requests VALUES (?, ?, ?)",
                   request_rows(now - timedelta(days=30), now + AHEAD, burst=window))


def seed_scores(db: sqlite3.Connection, now: datetime) -> None:
    """A week of scores of ``fraud-v3`` and ``churn-v1``; fraud-v3's last hour drifts."""
    db.executescript(
        """
        DROP TABLE IF EXISTS model_scores;
        CREATE TABLE model_scores (scored_at TEXT, model TEXT, score REAL, amount REAL);
        CREATE INDEX ix_model_scores_model_time ON model_scores (model, scored_at);
        """
    )
    db.executemany("INSERT INTO model_scores VALUES (?, ?, ?, ?)",
                   score_rows(now - timedelta(days=7), now, surge_from=now - timedelta(hours=1)))


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
