"""A real SQLite traffic table (one row per minute: ok and failed requests), an SLO rules
file over it, and a counter of the queries the SLO issues against it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.runtime.sql_source import engine_for

MIN = timedelta(minutes=1)
QUERY = ("SELECT sum(ok) AS good, sum(ok + failed) AS total FROM traffic "
         "WHERE at >= :window_start AND at < :window_end")


def text(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Traffic:
    """The service's requests per minute, in a SQLite file the SLO reads."""

    url: str
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url)
        with self.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS traffic "
                                 "(at TEXT PRIMARY KEY, ok INTEGER, failed INTEGER)"))

    def add(self, start: datetime, end: datetime, *, ok: int = 100, failed: int = 0) -> None:
        """One row per minute in ``[start, end)``."""
        rows, at = [], start
        while at < end:
            rows.append({"at": text(at), "ok": ok, "failed": failed})
            at += MIN
        with self.engine.begin() as conn:
            conn.execute(sa.text("INSERT OR REPLACE INTO traffic VALUES (:at, :ok, :failed)"),
                         rows)

    def totals(self, start: datetime, end: datetime) -> tuple[int, int]:
        """Good and total requests in ``[start, end)``, summed by SQLite (the truth)."""
        with self.engine.connect() as conn:
            good, total = conn.execute(sa.text(QUERY), {"window_start": text(start),
                                                        "window_end": text(end)}).one()
        return int(good or 0), int(total or 0)

    @contextmanager
    def queries(self) -> Iterator[list[tuple[str, str]]]:
        """The ``(window_start, window_end)`` of every SLO query issued inside the block."""
        seen: list[tuple[str, str]] = []
        engine = engine_for(self.url, 30.0)

        def count(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "FROM traffic" in statement:
                seen.append(tuple(params))  # type: ignore[arg-type]

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            yield seen
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)


def slo_yaml(database: str, *, name: str = "checkout", more: str = "",
             pairs: Iterable[str] = ("{long: 1h, short: 5m, factor: 14.4, severity: page}",),
             query: str = QUERY, timeout: str = "30s") -> str:
    pair_lines = "".join(f"        - {p}\n" for p in pairs)
    return (f"    - name: {name}\n"
            f"      service: Checkout availability\n"
            f"      objective: 99.9\n"
            f"      period: 1d\n"
            f"      min_events: 10\n"
            f"      pairs:\n{pair_lines}"
            f"      sli:\n"
            f"        sql:\n"
            f"          database: '{database}'\n"
            f"          query: \"{query}\"\n"
            f"          query_timeout: {timeout}\n"
            + "".join(f"      {line}\n" for line in more.splitlines() if line))


def rules_file(*slos: str, receivers: str = "[{name: console, type: console}]",
               defaults: str = "{receivers: [console]}") -> str:
    return (f"version: 1\nreceivers: {receivers}\ndefaults: {defaults}\n"
            "checks:\n  slo:\n" + "".join(slos))


def parse(text_: str) -> RulesFile:
    return parse_rules(text_)


def write(path: Path, text_: str) -> Path:
    path.write_text(text_, encoding="utf-8")
    return path
