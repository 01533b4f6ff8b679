"""A baseline rule's evaluation around the pure maths: read the slot, judge, adopt, backfill.

Any family judging one number over time uses it (``sql_metric`` values, the
``redis_quota`` command rate):

* :func:`assess_value`: one indexed query for the slot's history
  (:meth:`~alert_jobs.store.baselines.BaselineStore.history`), then
  :func:`alert_jobs.core.baseline.assess`; when the value has been outside the band
  for ``adopt_after`` it adopts the new level (reads the streak's residuals, stores the
  :class:`~alert_jobs.core.baseline.Shift`) and judges again;
* :func:`backfill`: on a new rule's first runs, compute its value over past windows
  (most useful first, :func:`alert_jobs.core.baseline.backfill_times`), bounded per run
  by a number of queries and seconds, with a progress line for the run log
  ("backfill orders_last_hour: 1,000 of 8,064 points").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alert_jobs.config import Baseline
from alert_jobs.core.baseline import Assessment, Settings
from alert_jobs.store import Timeline
from alert_jobs.store.baselines import BaselineState

#: Per run and rule: at most this many backfill queries …
BACKFILL_QUERIES = 1_000
#: … and this many seconds of them; the next run goes on where this one stopped.
BACKFILL_SECONDS = 30.0


def settings_of(spec: Baseline) -> Settings:
    """The config model as the core's plain settings."""
    raise NotImplementedError


@dataclass(frozen=True)
class Judged:
    """An assessment and, when it adopted a new level, the state to keep."""

    assessment: Assessment
    adopted: BaselineState | None = None


def assess_value(timeline: Timeline, *, rule: str, fingerprint: str, value: float,
                 spec: Baseline, now: datetime, timezone: str,
                 state: BaselineState | None, bad_since: datetime | None) -> Judged:
    """Judge ``value`` against the baseline of ``fingerprint`` (see the module doc).
    ``bad_since``: when the alert instance's current bad streak began (its
    ``active_since`` while pending/firing), None when it is not active. An adoption is
    saved here (``timeline.baselines.save``) and returned."""
    raise NotImplementedError


@dataclass(frozen=True)
class BackfillProgress:
    """What one run's backfill did, for the run log."""

    rule: str
    computed: int  # this run
    done: int  # in all
    total: int
    failed: str | None = None  # the source's error, when the backfill stopped on one

    def line(self) -> str:
        """"backfill orders_last_hour: 1,000 of 8,064 points (this run 1,000)"."""
        raise NotImplementedError


def backfill(timeline: Timeline, *, rule: str, fingerprint: str, spec: Baseline,
             step: timedelta, now: datetime, timezone: str, state: BaselineState | None,
             query: Callable[[datetime, datetime], float | None], window: timedelta,
             max_queries: int = BACKFILL_QUERIES, max_seconds: float = BACKFILL_SECONDS,
             clock: Callable[[], float] | None = None) -> BackfillProgress | None:
    """Compute up to ``max_queries`` past values (``query(window_end - window,
    window_end)``) within ``max_seconds``, store them and the progress; None when there
    is nothing (left) to backfill or ``spec.backfill`` is off. The first call fixes
    ``backfill_before = now`` (evaluations cover the time from then on). A source error
    stops this run's backfill (the points so far are kept) and is reported, not raised."""
    raise NotImplementedError


def cadence(cron: str, timezone: str, now: datetime) -> timedelta:
    """The time between two ticks of ``cron`` around ``now`` (the backfill's step: a
    backfilled point per evaluation the rule would have made)."""
    raise NotImplementedError
