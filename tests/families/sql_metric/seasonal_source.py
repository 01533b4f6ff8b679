"""A real SQLite source with seasonal orders: daily and weekly rhythm plus fixed-seed noise.

``orders(at, n)`` holds one row per 5 minutes (``at``: UTC text, the format the window
parameters are bound in on SQLite); :data:`QUERY` sums a window. An hour of orders is
about 1,800 on a weekday at 14:00 UTC, 600 at 02:00, and 60 % of that at weekends.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

BUCKET = timedelta(minutes=5)
QUERY = "SELECT sum(n) FROM orders WHERE at >= :window_start AND at < :window_end"
#: Tuesday 14:00 UTC: the busiest hour of the day, about 1,800 orders.
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)

Change = Callable[[datetime, float], float]


def level(at: datetime) -> float:
    """Orders per 5 minutes expected at ``at``: a day curve peaking mid-afternoon, and
    weekends at 60 %."""
    hour = at.hour + at.minute / 60
    day = 1 + 0.5 * math.sin(2 * math.pi * (hour - 8) / 24)
    week = 0.6 if at.weekday() >= 5 else 1.0
    return 100 * day * week


def write_orders(path: Path, start: datetime, end: datetime, *, seed: int = 14,
                 change: Change | None = None) -> Path:
    """Fill ``path`` with the orders of ``[start, end)`` (replacing what was there);
    ``change(at, n)`` alters a bucket (a dip, a level shift)."""
    rng = random.Random(seed)
    rows = []
    at = start
    while at < end:
        n = level(at) * (1 + rng.uniform(-0.05, 0.05))
        rows.append((at.strftime("%Y-%m-%d %H:%M:%S"), change(at, n) if change else n))
        at += BUCKET
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (at TEXT PRIMARY KEY, n REAL)")
        db.execute("DELETE FROM orders")
        db.executemany("INSERT INTO orders VALUES (?, ?)", rows)
    return path


def seasonal_db(tmp: Path, now: datetime = NOW, change: Change | None = None) -> Path:
    """Five weeks of orders up to a day after ``now``."""
    return write_orders(tmp / "orders.db", now - timedelta(days=35), now + timedelta(days=1),
                        change=change)
