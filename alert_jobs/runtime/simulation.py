"""What a check family gives ``alert-jobs rules test``: its rules evaluated on a
simulated clock from the test's synthetic inputs instead of their real source.

A rule test (``alert_jobs.runtime.ruletest``) runs the real path — the family's own
judging, the engine, routing, grouping, inhibition, silences, acks, escalation and the
outbox — on a private, throwaway SQLite timeline, and replaces only two things: the
clock (every evaluation gets ``now`` from the test) and the source (the family reads
the test's ``input`` for the rule instead of its database, Redis, Prometheus, …).

A family opts in with ``Family.simulate``: ``simulate(rule, inputs, clock)`` checks the
rule's ``input`` mapping from the test file (raising :class:`InputError` with the key
path and reason for anything it cannot use, so the user gets file and line) and returns
a :class:`RuleSimulator`; the test calls its ``step`` once per evaluation time, in
order. Each family documents its input keys in ``docs/rule-tests.md``; the values are
series in promtool's notation (:mod:`alert_jobs.core.series`), read with
:func:`series_of`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from alert_jobs.core.durations import parse_duration
from alert_jobs.core.series import SeriesSyntaxError, Value, expand

if TYPE_CHECKING:
    from alert_jobs.config import RulesFile
    from alert_jobs.runtime.evaluate import RuleOutcome
    from alert_jobs.store import Timeline

#: A key path inside one rule's ``input`` mapping, e.g. ``("values",)`` or
#: ``("info", "used_memory")``: the test file's loader turns it into a line number.
KeyPath = tuple[str | int, ...]


class InputError(ValueError):
    """A rule's test input that the family cannot use: ``path`` (inside the rule's
    ``input`` mapping) and the reason, which says what to write instead."""

    def __init__(self, path: KeyPath, reason: str):
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class TestClock:
    """The simulated time of one test: evaluations at ``start + k × interval``."""

    __test__ = False  # not a pytest test class

    start: datetime
    interval: timedelta

    def at(self, offset: timedelta) -> datetime:
        return self.start + offset


@dataclass(frozen=True)
class Point:
    at: datetime
    value: Value


@dataclass(frozen=True)
class Series:
    """One input series: points in time order, one per ``interval`` from ``start``.

    A source read at time ``t`` sees the newest point at or before ``t`` (so a series
    with a coarser interval than the test holds its value, as a scrape would), and
    nothing once ``t`` is past the last point plus one interval (the series ended: the
    source has nothing).
    """

    points: tuple[Point, ...]
    interval: timedelta
    _times: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_times", tuple(p.at for p in self.points))

    def at(self, when: datetime) -> Value:
        """The point a read at ``when`` sees (missing before the first and after the last)."""
        i = bisect.bisect_right(self._times, when) - 1
        if i < 0 or when >= self.points[i].at + self.interval:
            return Value()
        return self.points[i].value

    def between(self, start: datetime, end: datetime) -> list[Point]:
        """The points with ``start <= at < end``, in order."""
        lo = bisect.bisect_left(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        return list(self.points[lo:hi])

    @property
    def end(self) -> datetime | None:
        """Just after the last point (``None`` for an empty series)."""
        return self.points[-1].at + self.interval if self.points else None


def series_of(raw: Any, clock: TestClock, path: KeyPath) -> Series:
    """A series from the test file: a string in promtool's notation (one point per test
    interval from the test's start), or a mapping ``{values: "…", start: -28d,
    interval: 5m}`` for a series that starts before or after the test (an offset from
    its start) or has its own interval (a baseline's history, say)."""
    start, interval, values = clock.start, clock.interval, raw
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"values", "start", "interval"}
        if unknown:
            raise InputError((*path, sorted(unknown)[0]), "unknown key: a series mapping "
                             "has values, start (an offset such as -28d) and interval")
        if "values" not in raw:
            raise InputError(path, "a series mapping needs values (e.g. values: 0+10x30)")
        values = raw["values"]
        if "start" in raw:
            start = clock.start + _duration(raw["start"], (*path, "start"), signed=True)
        if "interval" in raw:
            interval = _duration(raw["interval"], (*path, "interval"))
            if interval <= timedelta(0):
                raise InputError((*path, "interval"), "the interval must be positive")
        path = (*path, "values")
    if isinstance(values, Sequence) and not isinstance(values, str):
        values = " ".join(str(v) for v in values)
    try:
        expanded = expand(values)
    except SeriesSyntaxError as exc:
        raise InputError(path, str(exc)) from None
    return Series(tuple(Point(start + i * interval, v) for i, v in enumerate(expanded)),
                  interval)


def offset_of(raw: Any, path: KeyPath, *, signed: bool = False) -> timedelta:
    """A duration from the test file (``90s``, ``5m``, ``-28d`` where ``signed``)."""
    return _duration(raw, path, signed=signed)


def _duration(raw: Any, path: KeyPath, *, signed: bool = False) -> timedelta:
    text = str(raw).strip()
    negative = signed and text.startswith("-")
    try:
        value = parse_duration(text[1:] if negative else text)
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"{raw!r} is not a duration ({exc}); write e.g. 90s, 5m, "
                         "1h, 28d" + (", or -28d for before the test's start" if signed
                                      else "")) from None
    return -value if negative else value


class RuleSimulator(Protocol):
    """One rule of a test, evaluated from its inputs (see the module docstring)."""

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        """Evaluate the rule at ``now`` as its scheduled run would, through the real
        engine (``process_batch`` / the family's own run code) with ``run_id=None``.

        ``since`` is the previous evaluation time of this test (``None`` at the first):
        inputs that are events rather than samples (heartbeat pings) happen in
        ``(since, now]`` and are recorded before judging.
        """
        ...


class Simulate(Protocol):
    def __call__(self, rule: Any, inputs: Mapping[str, Any], clock: TestClock
                 ) -> RuleSimulator: ...
