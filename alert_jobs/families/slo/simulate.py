"""An SLO in a rule test: its good/total event counts from the test file.

The input gives the SLI's event counts per interval as series (``docs/slo.md``, "Rule
tests"): ``total`` and one of ``good`` or ``bad``. A point at time *t* holds the events
of ``[t, t + interval)``; a bucket the family reads gets the events of the points that
overlap it, prorated by the overlap (a 5-minute point of 500 events gives 100 to each
1-minute bucket). ``_`` is an interval the source has nothing for (a gap, ``nodata``).
``error`` makes the source's reads fail while it is the current point — the events of
that interval are not lost: they count as the series' previous value once the source
answers again (a failed read, not a failed service).

Each step runs the family's real evaluation (:func:`~alert_jobs.families.slo.run.
evaluate_batch`: the backfill plan, the bucket store, the burn-rate windows, the engine)
with only the bucket reader replaced.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.core.errors import SourceError
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import Sli, SloRule
from alert_jobs.families.slo.run import BucketReader, evaluate_batch
from alert_jobs.families.slo.source import bucket_edges
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, Series, TestClock, series_of
from alert_jobs.store import Timeline

KEYS = ("total", "good", "bad")
_HINT = ("an SLO's input is total with good or bad: event counts per interval, e.g. "
         "total: \"1000x60\" and bad: \"0x30 1000x30\"")


@dataclass(frozen=True)
class Counts:
    """One series as counts: each point's events (an ``error`` point holds the previous
    number) and which points fail the read."""

    series: Series
    times: tuple[datetime, ...]
    numbers: tuple[float | None, ...]

    @classmethod
    def of(cls, series: Series) -> Counts:
        numbers: list[float | None] = []
        last: float | None = None
        for p in series.points:
            if p.value.error is not None:
                numbers.append(last)
            else:
                numbers.append(p.value.number)
                last = p.value.number if p.value.number is not None else last
        return cls(series, tuple(p.at for p in series.points), tuple(numbers))

    def failure(self, now: datetime) -> str | None:
        return self.series.at(now).error

    def events(self, start: datetime, end: datetime) -> float | None:
        """Events in ``[start, end)``, prorated; None when no point with a number
        overlaps it (the source has nothing)."""
        width = self.series.interval
        lo = bisect.bisect_right(self.times, start - width)
        hi = bisect.bisect_left(self.times, end)
        total, seen = 0.0, False
        for at, number in zip(self.times[lo:hi], self.numbers[lo:hi], strict=True):
            overlap = min(at + width, end) - max(at, start)
            if number is None or overlap <= timedelta(0):
                continue
            total += number * (overlap / width)
            seen = True
        return total if seen else None


@dataclass(frozen=True)
class SloInput:
    total: Counts
    good: Counts | None
    bad: Counts | None

    def reader(self, now: datetime) -> BucketReader:
        """What reads the buckets at ``now``: fails while a series is at ``error``."""

        def read(sli: Sli, start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
            del sli  # the test's counts stand for whichever source the rule names
            for counts in (self.total, self.good, self.bad):
                why = counts.failure(now) if counts is not None else None
                if why is not None:
                    raise SourceError(f"{why} (rule test)")
            return [self.bucket(lo, hi) for lo, hi in bucket_edges(start, end, step)]

        return read

    def bucket(self, start: datetime, end: datetime) -> Bucket:
        total = self.total.events(start, end)
        if total is None:
            return Bucket(start, end, 0.0, 0.0, has_data=False)
        if self.good is not None:
            good = self.good.events(start, end) or 0.0
        else:
            assert self.bad is not None
            good = total - (self.bad.events(start, end) or 0.0)
        # prorating may leave float noise above total (or below 0): never a bad count
        return Bucket(start, end, min(max(good, 0.0), total), total)


@dataclass
class SloSimulator:
    rule: SloRule
    counts: SloInput

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        del since  # counts are read by time: the family reads what is new itself
        (result,) = evaluate_batch(rules, [self.rule], timeline, now=now, run_id=None,
                                   readers={self.rule.name: self.counts.reader(now)})
        return [result.outcome]


def _check(total: Series, part: Series, key: str) -> None:
    """Counts that cannot be: negative, or more good (bad) than total at one time."""
    for name, series in (("total", total), (key, part)):
        for i, p in enumerate(series.points):
            if p.value.number is not None and p.value.number < 0:
                raise InputError((name,), f"point {i} is {p.value.number:g}: event counts "
                                 "cannot be negative")
    for i, p in enumerate(part.points):
        whole = total.at(p.at).number
        if p.value.number is not None and whole is not None and p.value.number > whole:
            raise InputError((key,), f"point {i} has {p.value.number:g} {key} events but "
                             f"total has {whole:g} then: {key} is part of total")


def simulate(rule: SloRule, inputs: Mapping[str, Any], clock: TestClock) -> SloSimulator:
    """The family's ``simulate`` hook: ``total`` with ``good`` or ``bad`` (series)."""
    unknown = sorted(set(inputs) - set(KEYS))
    if unknown:
        raise InputError((unknown[0],), f"unknown key: {_HINT}")
    if "total" not in inputs:
        raise InputError((), f"missing total: {_HINT}")
    if ("good" in inputs) == ("bad" in inputs):
        raise InputError(("bad",) if "bad" in inputs else (),
                         f"give exactly one of good or bad, with total: {_HINT}")
    key = "good" if "good" in inputs else "bad"
    total = series_of(inputs["total"], clock, ("total",))
    part = series_of(inputs[key], clock, (key,))
    _check(total, part, key)
    counts = Counts.of(part)
    return SloSimulator(rule, SloInput(Counts.of(total), counts if key == "good" else None,
                                       counts if key == "bad" else None))
