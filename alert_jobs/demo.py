"""Demo data for ``make run``: a small SQLite database the demo rules query.

``dead_letters`` gets a burst of 1,000 rows in the last minutes (so the demo rule
fires, then resolves by itself once the burst leaves its 30-minute window);
``orders`` gets a steady trickle (so its rule stays green).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    return target


if __name__ == "__main__":  # pragma: no cover - used by `make run`
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else ".dagster_home/demo.db"
    print(f"demo data written to {seed(target)}")
