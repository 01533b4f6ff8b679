"""Score tables for score_drift tests: the same rows on SQLite, PostgreSQL and files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday
FMT = "%Y-%m-%d %H:%M:%S"


@dataclass
class Row:
    at: datetime
    score: float | None
    model: str
    version: int = 3
    amount: float | None = 1.0


def engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url)


def write_table(url: str, rows: list[Row], table: str = "scores") -> None:
    eng = engine(url)
    pg = eng.dialect.name == "postgresql"
    with eng.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (scored_at {'TIMESTAMPTZ' if pg else 'TEXT'}, "
            "score DOUBLE PRECISION, model TEXT, version INTEGER, amount DOUBLE PRECISION)")
        conn.exec_driver_sql(f"CREATE INDEX ix_{table}_model_time ON {table} (model, scored_at)")
        if rows:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:at, :score, :model, :version, "
                                 ":amount)"),
                         [{"at": r.at if pg else r.at.strftime(FMT), "score": r.score,
                           "model": r.model, "version": r.version, "amount": r.amount}
                          for r in rows])
    eng.dispose()


def write_files(directory: Path, rows: list[Row]) -> dict[str, Path]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "scored_at": pa.array([r.at for r in rows], pa.timestamp("us", tz="UTC")),
        "score": pa.array([r.score for r in rows], pa.float64()),
        "model": [r.model for r in rows], "version": [r.version for r in rows],
        "amount": pa.array([r.amount for r in rows], pa.float64()),
    })
    parquet = directory / "scores.parquet"
    pq.write_table(table, parquet)
    csv = directory / "scores.csv"
    frame = pd.DataFrame({
        "scored_at": [r.at.strftime(FMT) for r in rows],
        "score": ["" if r.score is None else repr(r.score) for r in rows],
        "model": [r.model for r in rows], "version": [r.version for r in rows],
        "amount": ["" if r.amount is None else repr(r.amount) for r in rows]})
    frame.to_csv(csv, index=False)
    return {"parquet": parquet, "csv": csv}


def spread(start: datetime, end: datetime, n: int) -> list[datetime]:
    """``n`` times spread evenly over ``[start, end)`` (whole seconds)."""
    if n == 0:
        return []
    step = (end - start).total_seconds() / n
    return [start + timedelta(seconds=int(i * step)) for i in range(n)]


def scores(rng: np.random.Generator, n: int, a: float = 2, b: float = 8) -> list[float]:
    return [float(x) for x in rng.beta(a, b, n)]


def scenario(seed: int = 1, *, ref_per_model: int = 7000, cur_per_model: int = 2000,
             models: tuple[str, ...] = ("fraud-v3", "churn-v1"),
             current: dict[str, Any] | None = None) -> list[Row]:
    """Seven reference days and one current hour per model; ``current`` overrides a
    model's current hour: ``{"fraud-v3": {"high": 0.5, "null_amount": 0.4, "n": 0}}``."""
    rng = np.random.default_rng(seed)
    cur_start = NOW - timedelta(hours=1)
    rows: list[Row] = []
    for model in models:
        for at, s in zip(spread(cur_start - timedelta(days=7), cur_start, ref_per_model),
                         scores(rng, ref_per_model), strict=True):
            rows.append(Row(at, s, model, amount=None if rng.random() < 0.01 else 1.0))
        opts = (current or {}).get(model, {})
        n = opts.get("n", cur_per_model)
        values = scores(rng, n)
        high = int(opts.get("high", 0) * n)
        values[:high] = [float(x) for x in rng.uniform(0.9001, 1.0, high)]
        nulls = opts.get("null_amount", 0.01)
        bad = opts.get("bad", [])
        values[high:high + len(bad)] = bad
        for at, s in zip(spread(cur_start, NOW, n), values, strict=True):
            rows.append(Row(at, s, model, amount=None if rng.random() < nulls else 2.5))
    return rows


EDGE_VALUES = [0.0, 0.1, 0.3, 0.7, 0.5, 0.999, 0.9995, 1.0, 1 / 3, 2 / 3, 0.9, 0.90000001,
               *[k / 1000 for k in range(0, 1001, 7)], *[k / 7 for k in range(8)]]
BAD_VALUES = [math.nan, math.inf, -math.inf, 1.5, -0.25]
