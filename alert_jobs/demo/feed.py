"""The demo's live data: fresh scores, orders and requests, appended while ``make run`` runs.

Why: the demo rules look at the last hour. On data seeded once, the windows empty out
as the clock moves on, so after about 25 minutes churn-v1's *volume* check sees fewer
than half the scores its reference expects (a warning), and within half an hour
``orders_last_hour`` sees far fewer orders than the same hour of past weeks and fires.
Neither is the story the demo tells. The feed keeps both coming at the seeded rates
(orders follow their day/night and weekday/weekend curve, :func:`order_rate`); the
deliberately bad parts stay bad: fraud-v3 keeps flagging half of its cases as high
risk, and no dead letters are added (the seeded burst leaves its window and
``dead_letters`` resolves, as the README says).
Checkout requests (``http_requests``, for the SLO) keep coming at 120 a minute; their
error burst was written ahead by the seed, and the feed leaves those minutes alone.

Rows sit on a fixed grid (a score every 15 s per model, a minute's orders stamped with
that minute, in UTC epoch seconds), and what a grid point holds is seeded by the point
itself, so appending ``(a, b]`` and then ``(b, c]`` writes each row exactly once, however
irregular the ticks are. The seeded history is written by the same generators.
"""

from __future__ import annotations

import math
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

FMT = "%Y-%m-%d %H:%M:%S"
MODELS = ("fraud-v3", "churn-v1")
SCORES_PER_HOUR = 240  # per model; the demo rule's min_samples is 100 an hour
SCORE_STEP = 3600 // SCORES_PER_HOUR  # seconds between two scores of one model
ORDER_STEP = 60  # orders are stamped with their minute: a minute's orders share one time
#: The seasonal order rate (orders_last_hour learns it, ``expect.baseline``): orders a
#: minute at the weekday peak (16:00 UTC, 1,200 an hour), the night trough's share of
#: it (04:00 UTC, about 140 an hour) and the weekend's share of a weekday.
ORDERS_PEAK_PER_MINUTE = 20.0
NIGHT_SHARE = 0.12
WEEKEND_SHARE = 0.7
REQUESTS_PER_MINUTE = 120  # checkout requests, one row per minute in http_requests
REQUEST_STEP = 60
ERROR_EVERY = 40  # one failed request every 40 minutes: ~0.02 %, a fifth of a 99.9 % budget
BURST_ERRORS = 36  # 30 % of a minute's requests fail during the demo's burst
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Row = tuple[str, str, float, float | None]


def _grid(start: datetime, end: datetime, step: int) -> list[datetime]:
    """Grid points in ``(start, end]``, ``step`` seconds apart from the epoch."""
    first = math.floor((start - EPOCH).total_seconds() / step) + 1
    last = math.floor((end - EPOCH).total_seconds() / step)
    return [EPOCH + timedelta(seconds=i * step) for i in range(first, last + 1)]


def score_rows(start: datetime, end: datetime, *, surge_from: datetime | None = None
               ) -> list[Row]:
    """Scores of both models in ``(start, end]``: Beta(2, 8) (about 1 % above 0.9),
    except fraud-v3 from ``surge_from`` on (``None``: always), where every other case
    scores in [0.9, 1.0]: the silent model failure the demo pages about."""
    rng = random.Random(int(start.timestamp()))
    rows: list[Row] = []
    for at in _grid(start, end, SCORE_STEP):
        slot = int(at.timestamp()) // SCORE_STEP
        for model in MODELS:
            surging = (model == "fraud-v3" and slot % 2 == 0
                       and (surge_from is None or at >= surge_from))
            score = rng.uniform(0.9, 1.0) if surging else rng.betavariate(2, 8)
            amount = None if rng.random() < 0.01 else round(rng.uniform(5, 500), 2)
            rows.append((at.strftime(FMT), model, score, amount))
    return rows


def order_rate(at: datetime) -> float:
    """Expected orders a minute at ``at`` (UTC): a day/night curve (trough at 04:00, peak
    at 16:00) times :data:`WEEKEND_SHARE` on Saturdays and Sundays."""
    hours = at.hour + at.minute / 60
    day = 0.5 - 0.5 * math.cos(2 * math.pi * (hours - 4) / 24)  # 0 at 04:00, 1 at 16:00
    rate = ORDERS_PEAK_PER_MINUTE * (NIGHT_SHARE + (1 - NIGHT_SHARE) * day)
    return rate * WEEKEND_SHARE if at.weekday() >= 5 else rate


def order_count(at: datetime) -> int:
    """How many orders the minute ``at`` (a grid point) has: :func:`order_rate` plus
    Poisson-like noise (normal, variance = mean: an hour of 1,200 orders varies by about
    ±35). Seeded by the minute itself, so the same minute always has the same orders,
    whoever writes it and however the ticks fall."""
    mean = order_rate(at)
    slot = int(at.timestamp()) // ORDER_STEP
    return max(0, round(random.Random(slot).gauss(mean, math.sqrt(mean))))


def order_rows(start: datetime, end: datetime) -> list[tuple[float, str]]:
    """The orders of the minutes in ``(start, end]``: ``(amount, created_at)``, each
    stamped with its minute (:func:`order_count` of them)."""
    rows = []
    for at in _grid(start, end, ORDER_STEP):
        stamp, slot = at.strftime(FMT), int(at.timestamp()) // ORDER_STEP
        rows += [(10.0 + (slot + i) % 7, stamp) for i in range(order_count(at))]
    return rows


def request_rows(start: datetime, end: datetime, *,
                 burst: tuple[datetime, datetime] | None = None) -> list[tuple[str, int, int]]:
    """Checkout requests per minute in ``(start, end]``: ``(minute, requests, errors)``,
    the minute's start as its key. One error every :data:`ERROR_EVERY` minutes, and 30 %
    errors in the minutes inside ``burst`` (``[from, to)``)."""
    rows = []
    for at in _grid(start, end, REQUEST_STEP):
        slot = int(at.timestamp()) // REQUEST_STEP
        errors = 1 if slot % ERROR_EVERY == 0 else 0
        if burst is not None and burst[0] <= at < burst[1]:
            errors = BURST_ERRORS
        rows.append((at.strftime(FMT), REQUESTS_PER_MINUTE, errors))
    return rows


def append(path: str | Path, start: datetime, end: datetime) -> tuple[int, int]:
    """Append the scores, orders and requests of ``(start, end]``; returns (scores,
    orders). Request minutes the seed wrote ahead (the burst) are left as they are."""
    scores, orders = score_rows(start, end), order_rows(start, end)
    with sqlite3.connect(path, timeout=30) as db:
        db.executemany("INSERT INTO model_scores VALUES (?, ?, ?, ?)", scores)
        db.executemany("INSERT INTO orders (amount, created_at) VALUES (?, ?)", orders)
        db.executemany("INSERT OR IGNORE INTO http_requests (minute, requests, errors) "
                       "VALUES (?, ?, ?)", request_rows(start, end))
    return len(scores), len(orders)


def run(path: str | Path, *, every: float = 15.0, since: datetime | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Append every ``every`` seconds until ``should_stop()``; starts after ``since``
    (default: now, as the seed has just written everything before)."""
    last = since or datetime.now(UTC)
    print(f"demo feed: {SCORES_PER_HOUR} scores/h per model, orders (up to "
          f"{ORDERS_PEAK_PER_MINUTE:.0f} a minute, day/night and weekday/weekend) and "
          f"{REQUESTS_PER_MINUTE} checkout requests a minute into {path}", flush=True)
    while not should_stop():
        sleep(every)
        now = datetime.now(UTC)
        try:
            append(path, last, now)
        except sqlite3.Error as exc:  # busy or locked: the next tick writes the gap too
            print(f"demo feed: {exc}; retrying", file=sys.stderr, flush=True)
            continue
        last = now
    return 0
