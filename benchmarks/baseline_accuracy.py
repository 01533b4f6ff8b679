"""Accuracy of learned baselines on labelled series, against the rolling z-score detector.

**Data** (:func:`generate`, fixed seed :data:`SEED`): :data:`N_SERIES` series of
5-minute points over :data:`WARMUP_WEEKS` + :data:`SCORED_WEEKS` weeks in the rule's
timezone (:data:`TIMEZONE`; the scored weeks hold the end of summer time, so "the same
hour of the week" must follow wall-clock time), each one of five kinds a shop watches:

* ``orders_hour``: orders in the last hour, evaluated every 5 minutes (a rolling sum of
  twelve 5-minute Poisson counts), 150–3,000 an hour at the daily peak;
* ``orders_5m``: orders per 5 minutes, 20–250 at the peak (Poisson);
* ``errors_30m``: errors in the last 30 minutes (the ``sql_metric`` default window),
  evaluated every 5 minutes: a rolling sum of six 5-minute Poisson counts of 8–40 at
  the peak, following traffic. Not errors per 5 minutes: a 5-minute count of ~10
  cannot show a halving (z ≈ 1.6), and no rule is written that way;
* ``latency``: a p95-like latency in ms, 120–800, a little higher under load,
  log-normal noise of 4–8 %;
* ``gauge``: active sessions / queue depth, 500–20,000, slow AR(1) noise of 2–4 %.

Every series has a daily curve (night at 10–45 % of the peak for traffic, peak hour
11:00–20:00 local, sharper or flatter), a weekly one (weekends at 45–130 % of weekdays,
peaking 1.5 h later), a slow trend (−10 % … +20 % over the eight weeks) and, on top of
the Poisson noise of counts, over-dispersion of 2–5 % of the level (days are not all
alike). These are ordinary values for the metrics above; nothing is tuned to a detector.

**Anomalies**, each a labelled event ``[start, end)`` in the metric's own points
(windowed metrics see a 5-minute anomaly for a window longer, an hour or 30 minutes,
so their label ends a window later): :data:`EVENTS_PER_SERIES` per series in the scored
weeks, at random times at least 12 h apart, kinds drawn per series kind
(:data:`KINDS_OF`; errors get only spikes and upward level shifts: errors falling is
not news, and their rules watch ``direction: above``):

* ``spike``: the underlying rate × 2–4 for 10 min – 2 h;
* ``dip``: × 0.2–0.5 for 30 min – 4 h;
* ``zero``: the value is 0 (a broken pipeline) for 15 min – 3 h;
* ``level_shift``: × 0.5–0.7 or × 1.5–2.0 (errors: × 1.5–2.0 only; latency: + 30–80 %
  of its mean, in ms) from
  ``start`` to the end of the series; the label is the first day (news for a day, the
  new normal after that; alerting beyond the label is a false alert).

Two transient anomalies per series also sit in the warm-up weeks, unlabelled: the
backfilled history a new rule learns from holds past incidents too.

**Detectors**, over the same points, each watching errors above only (the baseline
rule with ``direction: above``, the z-score alerting only above its rolling mean):

* **baseline** (the product): exactly :class:`alert_jobs.core.baseline.Learner`, the
  runtime's evaluation in memory (what ``rules backtest`` uses too): it learns the
  warm-up weeks as backfilled points (history, nothing judged), then evaluates each
  scored point: ``assess(value, now)`` (the slot's points without the alerting ones,
  today's level from the last 6 h, the Poisson floor for counts, adoption of a new
  level by the sign test over ``adopt_after``) and ``record(now, value, expected,
  alerting=<it crossed>)``. Learning never alerts. Default settings (hour_of_week,
  28 d, width 4, min_points 20, adopt_after 1 d).
* **z-score**: the python guide's ``AnomalyDetector`` (window 60, threshold 3): the
  point joins the last-60 window, alert when ``|x − mean| / std > 3`` (population std,
  at least 10 points, never when std is 0). It runs over the warm-up weeks too, so its
  window is full when scoring starts.

Both detectors' observations go through the engine's states (:class:`Engine`: ``for``
and ``keep_firing_for``), which decide what pages. The headline (:data:`BASELINE`,
:data:`ZSCORE`) is a typical baseline rule, the defaults with the recommended ``for:
10m`` (a single 5-minute blip is 1 in 370 at 3 sigma, on 8,064 points a month) and
``keep_firing_for: 1h``, against the z-score with the same two settings.

**Scoring**, per event, over the scored weeks: an *episode* is a run of consecutive
paging points (firing or recovering; with the engine's defaults, alerting points); one
that overlaps an event, or starts within :data:`TOLERANCE` after its end, is a true
episode and detects it; any other is a false alert. Recall =
detected events / events, precision = true episodes / episodes, F1 of both; detection
delay = first alerting point of a matching episode − event start (0 when the episode
began earlier). Per detector and per anomaly kind. Targets (reported): baseline
F1 ≥ 0.9 and at most half the false alerts of the z-score at equal or better recall.
:data:`VARIANTS` scores other settings on the same points (both detectors per point,
without ``for``; width 3 and 5); false alerts are broken down by :func:`cause`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from alert_jobs.core.baseline import Learner, Point, Settings
from benchmarks.results_file import write_json

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "baseline_accuracy.json"
SEED = 14
N_SERIES = 20
WARMUP_WEEKS = 4
SCORED_WEEKS = 4
EVENTS_PER_SERIES = 4
WARMUP_EVENTS_PER_SERIES = 2
STEP = timedelta(minutes=5)
#: A Monday; the scored weeks (from 5 October) hold Europe's end of summer time (25 Oct).
START = datetime(2026, 9, 7, tzinfo=UTC)
TIMEZONE = "Europe/Berlin"
TOLERANCE = timedelta(minutes=15)
LEVEL_SHIFT_LABEL = timedelta(days=1)
Z_WINDOW = 60
Z_THRESHOLD = 3.0
Z_MIN_POINTS = 10
TARGET_F1 = 0.9
KINDS = ("spike", "dip", "zero", "level_shift")
SERIES_KINDS = ("orders_hour", "orders_5m", "errors_30m", "latency", "gauge")
#: Anomaly kinds each series kind gets (errors dropping to zero at night is no news;
#: a latency does not drop to zero, it stops being reported).
KINDS_OF = {
    "orders_hour": KINDS,
    "orders_5m": KINDS,
    "errors_30m": ("spike", "level_shift"),
    "latency": ("spike", "dip", "level_shift"),
    "gauge": KINDS,
}
#: Series watched above only (both detectors): errors falling is not news.
ABOVE_ONLY = ("errors_30m",)
DEFAULT = Settings()


@dataclass(frozen=True)
class Event:
    """One labelled anomaly: the points in ``[start, end)`` are anomalous."""

    kind: str
    start: datetime
    end: datetime


@dataclass
class Series:
    name: str
    kind: str
    times: list[datetime]
    values: list[float]
    scored_from: int  # index of the first scored point (the warm-up is before it)
    events: list[Event] = field(default_factory=list)  # scored ones only


# ----- the generator ----------------------------------------------------------------------


def _grid(weeks: int) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """The 5-minute UTC times, their local hour of the day (fractional) and whether the
    local day is a weekend."""
    n = weeks * 7 * 24 * 12
    times = [START + i * STEP for i in range(n)]
    zone = ZoneInfo(TIMEZONE)
    local = [t.astimezone(zone) for t in times]
    hours = np.array([t.hour + t.minute / 60 for t in local])
    weekend = np.array([t.weekday() >= 5 for t in local])
    return times, hours, weekend


def _profile(hours: np.ndarray, weekend: np.ndarray, rng: random.Random,
             night: tuple[float, float]) -> np.ndarray:
    """Daily and weekly shape, 1.0 at a weekday's peak."""
    floor = rng.uniform(*night)
    peak = rng.uniform(11, 20)
    sharp = rng.uniform(1.0, 2.5)
    weekend_factor = rng.uniform(0.45, 1.3)
    peak_at = np.where(weekend, peak + 1.5, peak)
    bump = ((1 + np.cos(2 * np.pi * (hours - peak_at) / 24)) / 2) ** sharp
    return (floor + (1 - floor) * bump) * np.where(weekend, weekend_factor, 1.0)


def _spans(rng: random.Random, lo: int, hi: int, n: int, gap: int) -> list[int]:
    """``n`` start indexes in ``[lo, hi)`` at least ``gap`` apart."""
    for _ in range(1000):
        starts = sorted(rng.randrange(lo, hi) for _ in range(n))
        if all(b - a >= gap for a, b in itertools.pairwise(starts)):
            return starts
    raise RuntimeError("could not place the events")


def _duration(rng: random.Random, kind: str) -> int:
    """Points an anomaly lasts."""
    minutes = {"spike": (10, 120), "dip": (30, 240), "zero": (15, 180)}[kind]
    return max(1, round(rng.uniform(*minutes) / 5))


def generate(n_series: int = N_SERIES, *, seed: int = SEED, warmup_weeks: int = WARMUP_WEEKS,
             scored_weeks: int = SCORED_WEEKS, events_per_series: int = EVENTS_PER_SERIES
             ) -> list[Series]:
    """The labelled series (deterministic for a seed; see the module doc)."""
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    times, hours, weekend = _grid(warmup_weeks + scored_weeks)
    n = len(times)
    scored_from = warmup_weeks * 7 * 288
    day = 288
    out = []
    for s in range(n_series):
        kind = SERIES_KINDS[s % len(SERIES_KINDS)]
        traffic = kind != "latency"
        profile = _profile(hours, weekend, rng, (0.10, 0.45) if traffic else (0.6, 0.85))
        trend = 1 + rng.uniform(-0.10, 0.20) * np.arange(n) / n
        level = {"orders_hour": rng.uniform(150, 3000) / 12, "orders_5m": rng.uniform(20, 250),
                 "errors_30m": rng.uniform(8, 40), "latency": rng.uniform(120, 800),
                 "gauge": rng.uniform(500, 20_000)}[kind]
        rate = level * profile * trend
        factor = np.ones(n)
        zero = np.zeros(n, dtype=bool)
        add = np.zeros(n)
        events: list[Event] = []
        # scored events: kinds drawn from the series kind, at most one level shift
        kinds = [rng.choice(KINDS_OF[kind]) for _ in range(events_per_series)]
        while kinds.count("level_shift") > 1:  # the extra ones become transient ones
            kinds[kinds.index("level_shift")] = rng.choice(
                [k for k in ("spike", "dip") if k in KINDS_OF[kind]])
        # a level shift goes last (it lasts to the end), with a week after it to show
        # what follows its adoption
        shift_at = rng.randrange(n - 10 * day, n - 7 * day)
        if "level_shift" in kinds:
            kinds.remove("level_shift")
            starts = [*_spans(rng, scored_from + day // 4, shift_at - day // 2,
                              len(kinds), day // 2), shift_at]
            kinds.append("level_shift")
        else:
            starts = _spans(rng, scored_from + day // 4, n - day // 2, len(kinds), day // 2)
        # a windowed metric sees an anomaly for a window longer: an hour, 30 minutes
        window_extra = {"orders_hour": 11, "errors_30m": 5}.get(kind, 0)
        for k, start in zip(kinds, starts, strict=True):
            if k == "level_shift":
                end = n
                label_end = start + LEVEL_SHIFT_LABEL // STEP
                if kind == "latency":
                    add[start:] += float(np.mean(rate)) * rng.uniform(0.3, 0.8)
                else:
                    # errors only shift upwards (fewer errors is not news)
                    factor[start:] *= (rng.uniform(0.5, 0.7)
                                       if rng.random() < 0.5 and kind != "errors_30m"
                                       else rng.uniform(1.5, 2.0))
            else:
                end = start + _duration(rng, k)
                label_end = end + window_extra
                if k == "spike":
                    factor[start:end] *= rng.uniform(2, 4)
                elif k == "dip":
                    factor[start:end] *= rng.uniform(0.2, 0.5)
                else:
                    zero[start:end] = True
            events.append(Event(k, times[start], times[min(label_end, n - 1)]))
        # warm-up incidents, unlabelled: the backfilled history is not clean either
        for start in _spans(rng, day, scored_from - day, WARMUP_EVENTS_PER_SERIES, day):
            k = rng.choice(("spike", "dip", "zero"))
            end = start + _duration(rng, k)
            if k == "zero":
                zero[start:end] = True
            else:
                factor[start:end] *= rng.uniform(2, 4) if k == "spike" else rng.uniform(0.2, 0.5)
        values = _noisy(kind, rate * factor + add, nprng, rng)
        if kind == "orders_hour":
            counts = np.where(zero, 0.0, values)
            values = np.convolve(counts, np.ones(12))[:n]  # the last hour's orders
        elif kind == "errors_30m":
            counts = np.where(zero, 0.0, values)
            values = np.convolve(counts, np.ones(6))[:n]  # the last 30 minutes' errors
        else:
            values = np.where(zero, 0.0, values)
        out.append(Series(f"{kind}_{s:02d}", kind, times, [float(v) for v in values],
                          scored_from, events))
    return out


def _noisy(kind: str, rate: np.ndarray, nprng: np.random.Generator, rng: random.Random
           ) -> np.ndarray:
    """Noise of the kind: Poisson counts with 2–5 % over-dispersion; log-normal latency;
    AR(1) gauges."""
    if kind in ("orders_hour", "orders_5m", "errors_30m"):
        dispersion = nprng.lognormal(0.0, rng.uniform(0.02, 0.05), rate.size)
        return nprng.poisson(rate * dispersion).astype(float)
    if kind == "latency":
        return np.round(rate * nprng.lognormal(0.0, rng.uniform(0.04, 0.08), rate.size), 1)
    phi, sd = 0.8, rng.uniform(0.02, 0.04)
    shocks = nprng.normal(0.0, sd * math.sqrt(1 - phi * phi), rate.size)
    ar = np.zeros(rate.size)
    for i in range(1, rate.size):
        ar[i] = phi * ar[i - 1] + shocks[i]
    return np.round(rate * (1 + ar))


# ----- the detectors ------------------------------------------------------------------------


@dataclass
class Engine:
    """The engine's states for one alert instance (DESIGN.md §3, ``core.engine``): a
    bad observation starts ``pending`` (``firing`` at once when ``for`` is 0) and sets
    ``active_since``; pending that clears is dropped; firing that clears goes
    ``recovering`` for ``keep_firing_for`` (bad again: firing, same ``active_since``)
    or resolves. A page lasts from firing to resolve."""

    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    state: str = "inactive"
    active_since: datetime | None = None
    recovering_since: datetime | None = None

    def step(self, bad: bool, now: datetime) -> bool:
        """One evaluation; True while the alert pages (firing or recovering)."""
        if bad:
            if self.state == "inactive":
                self.state, self.active_since = "pending", now
            if self.state == "pending" and self.active_since is not None \
                    and now - self.active_since >= self.for_:
                self.state = "firing"
            elif self.state == "recovering":
                self.state, self.recovering_since = "firing", None
        elif self.state == "pending":
            self.state, self.active_since = "inactive", None
        elif self.state == "firing":
            if self.keep_firing_for > timedelta(0):
                self.state, self.recovering_since = "recovering", now
            else:
                self.state, self.active_since = "inactive", None
        elif self.state == "recovering" and self.recovering_since is not None \
                and now - self.recovering_since >= self.keep_firing_for:
            self.state, self.active_since, self.recovering_since = "inactive", None, None
        return self.state in ("firing", "recovering")


def engine_pages(series: Series, bad: Sequence[bool], engine: Engine) -> list[bool]:
    """Run observations (one per scored point) through the engine: what pages."""
    times = series.times[series.scored_from:]
    return [engine.step(b, t) for b, t in zip(bad, times, strict=True)]


def rule_settings(series: Series, settings: Settings = DEFAULT) -> Settings:
    """The rule's baseline settings for a series: errors are watched above only (a
    rule on errors says ``direction: above``; fewer errors is not news)."""
    return replace(settings, direction="above") if series.kind in ABOVE_ONLY else settings


def baseline_observations(series: Series, settings: Settings = DEFAULT,
                          timezone: str = TIMEZONE) -> list[bool]:
    """The product's judgement of every scored point: True = the value is outside the
    band (the observation alerts). Exactly :class:`~alert_jobs.core.baseline.Learner`,
    the runtime's evaluation in memory: the warm-up weeks are learned as backfilled
    points, then each scored point is :meth:`~alert_jobs.core.baseline.Learner.evaluate`
    d (assessed, adopting a level when due, and recorded with whether it alerted)."""
    learner = Learner(rule_settings(series, settings), timezone)
    start = series.scored_from
    learner.learn([Point(t, v) for t, v in zip(series.times[:start], series.values[:start],
                                               strict=True)])
    return [learner.evaluate(value, now).is_alert
            for now, value in zip(series.times[start:], series.values[start:], strict=True)]


def baseline_alerts(series: Series, settings: Settings = DEFAULT, timezone: str = TIMEZONE,
                    *, engine: Engine | None = None) -> list[bool]:
    """What the baseline rule pages at every scored point: its observations
    (:func:`baseline_observations`) through ``engine`` (default: ``for`` and
    ``keep_firing_for`` 0, so what pages is what is outside)."""
    return engine_pages(series, baseline_observations(series, settings, timezone),
                        engine or Engine())


def zscore_alerts(series: Series, window: int = Z_WINDOW, threshold: float = Z_THRESHOLD
                  ) -> list[bool]:
    """The python guide's ``AnomalyDetector.observe`` over every point (the point is in
    its own window; population std; at least 10 points; std 0 never alerts), returned for
    the scored points. For errors only above the rolling mean, as the baseline rule
    watches them (:func:`rule_settings`): the same direction for both detectors."""
    above = series.kind in ABOVE_ONLY
    x = np.asarray(series.values, dtype=float)
    flags = np.zeros(x.size, dtype=bool)
    for i in range(min(window - 1, x.size)):  # the window is still filling
        if i + 1 >= Z_MIN_POINTS:
            w = x[:i + 1]
            std = w.std()
            d = x[i] - w.mean()
            flags[i] = std > 0 and (d if above else abs(d)) / std > threshold
    if x.size >= window:
        views = np.lib.stride_tricks.sliding_window_view(x, window)
        mean, std = views.mean(axis=1), views.std(axis=1)
        d = x[window - 1:] - mean
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (d if above else np.abs(d)) / std
        flags[window - 1:] = (std > 0) & (z > threshold)
    return [bool(f) for f in flags[series.scored_from:]]


# ----- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    start: datetime  # first alerting point
    end: datetime  # last alerting point


def episodes(times: Sequence[datetime], alerts: Sequence[bool]) -> list[Episode]:
    """Runs of consecutive alerting points."""
    out, first = [], None
    for i, alert in enumerate(alerts):
        if alert and first is None:
            first = i
        elif not alert and first is not None:
            out.append(Episode(times[first], times[i - 1]))
            first = None
    if first is not None:
        out.append(Episode(times[first], times[len(alerts) - 1]))
    return out


def matches(episode: Episode, event: Event, step: timedelta = STEP,
            tolerance: timedelta = TOLERANCE) -> bool:
    """The episode overlaps the event, or starts within the tolerance after it."""
    overlaps = episode.start < event.end and episode.end + step > event.start
    return overlaps or event.end <= episode.start <= event.end + tolerance


@dataclass
class Score:
    """Event-based scores of one detector (overall, or of one anomaly kind: then
    ``episodes``/``false_alerts`` are the overall ones, not the kind's)."""

    events: int = 0
    detected: int = 0
    episodes: int = 0
    true_episodes: int = 0
    delays_min: list[float] = field(default_factory=list)

    @property
    def false_alerts(self) -> int:
        return self.episodes - self.true_episodes

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 1.0

    @property
    def precision(self) -> float:
        return self.true_episodes / self.episodes if self.episodes else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def delay(self, q: float) -> float | None:
        if not self.delays_min:
            return None
        ordered = sorted(self.delays_min)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "detected": self.detected, "episodes": self.episodes,
                "true_episodes": self.true_episodes, "false_alerts": self.false_alerts,
                "recall": self.recall, "precision": self.precision, "f1": self.f1,
                "median_delay_min": self.delay(0.5), "p90_delay_min": self.delay(0.9)}


@dataclass
class DetectorScore:
    detector: str
    overall: Score
    by_kind: dict[str, Score]
    by_series_kind: dict[str, Score]
    #: per series: (false alerts, missed event kinds), for the report of what misses
    misses: dict[str, tuple[int, list[str]]]
    seconds: float
    #: false alerts by :func:`cause`
    causes: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"detector": self.detector, **self.overall.as_json(),
                "by_kind": {k: s.as_json() for k, s in self.by_kind.items()},
                "by_series_kind": {k: s.as_json() for k, s in self.by_series_kind.items()},
                "misses": {k: {"false_alerts": f, "missed": m}
                           for k, (f, m) in self.misses.items() if f or m},
                "false_alert_causes": self.causes,
                "seconds": self.seconds}


def score_series(series: Series, alerts: Sequence[bool], into: list[Score]) -> dict[str, Any]:
    """Add one series' episodes to every score in ``into``; returns the per-event outcome
    (event, delay in minutes or None) and the false episodes."""
    times = series.times[series.scored_from:]
    eps = episodes(times, alerts)
    true_eps = [e for e in eps if any(matches(e, ev) for ev in series.events)]
    outcome = []
    for ev in series.events:
        hits = [e for e in eps if matches(e, ev)]
        delay = (max(timedelta(0), min(e.start for e in hits) - ev.start).total_seconds() / 60
                 if hits else None)
        outcome.append((ev, delay))
    for s in into:
        s.episodes += len(eps)
        s.true_episodes += len(true_eps)
    return {"episodes": len(eps), "true": len(true_eps), "events": outcome,
            "false": [e for e in eps if e not in true_eps]}


#: Why a false alert happened, as far as the data tells.
CAUSES = ("after a level shift", "one point", "longer")


def cause(series: Series, episode: Episode) -> str:
    """``after a level shift``: in a series with a level shift, after its start (the
    adopted level still alerts); ``one point``: a single 5-minute blip; ``longer``."""
    if any(ev.kind == "level_shift" and episode.start >= ev.start for ev in series.events):
        return CAUSES[0]
    return CAUSES[1] if episode.start == episode.end else CAUSES[2]


def score(detector: str, series: list[Series], alerts: list[list[bool]], seconds: float
          ) -> DetectorScore:
    overall = Score()
    by_kind = {k: Score() for k in KINDS}
    by_series_kind = {k: Score() for k in SERIES_KINDS}
    misses: dict[str, tuple[int, list[str]]] = {}
    causes = dict.fromkeys(CAUSES, 0)
    for one, flags in zip(series, alerts, strict=True):
        seen = score_series(one, flags, [overall, by_series_kind[one.kind]])
        for episode in seen["false"]:
            causes[cause(one, episode)] += 1
        missed = []
        for ev, delay in seen["events"]:
            for s in (overall, by_kind[ev.kind], by_series_kind[one.kind]):
                s.events += 1
                if delay is not None:
                    s.detected += 1
                    s.delays_min.append(delay)
            if delay is None:
                missed.append(ev.kind)
        misses[one.name] = (seen["episodes"] - seen["true"], missed)
    for s in by_kind.values():  # the kind rows repeat the overall episode counts
        s.episodes, s.true_episodes = overall.episodes, overall.true_episodes
    return DetectorScore(detector, overall, by_kind, by_series_kind, misses, seconds, causes)


# ----- running it --------------------------------------------------------------------------


@dataclass
class AccuracyResult:
    series: int
    points: int
    scored_points: int
    events: int
    baseline: DetectorScore
    zscore: DetectorScore
    variants: dict[str, DetectorScore]  # other settings, same points
    peak_rss_mb: float

    @property
    def f1_ok(self) -> bool:
        return self.baseline.overall.f1 >= TARGET_F1

    @property
    def half_false_ok(self) -> bool:
        b, z = self.baseline.overall, self.zscore.overall
        return b.false_alerts * 2 <= z.false_alerts and b.recall >= z.recall

    def as_json(self) -> dict[str, Any]:
        return {"name": "baseline accuracy", "series": self.series, "points": self.points,
                "scored_points": self.scored_points, "events": self.events,
                "seed": SEED, "timezone": TIMEZONE, "tolerance_min": TOLERANCE / timedelta(
                    minutes=1),
                "baseline": self.baseline.as_json(), "zscore": self.zscore.as_json(),
                "variants": {k: v.as_json() for k, v in self.variants.items()},
                "f1_at_least_0_9": self.f1_ok, "half_the_false_alerts": self.half_false_ok,
                "peak_rss_mb": self.peak_rss_mb}


@dataclass(frozen=True)
class Variant:
    """A detector with its rule's settings. ``for_`` and ``keep_firing_for`` are the
    engine's, applied to either detector alike after its observations (which they do not
    change: the baseline's adoption reads the evaluations, not the alert's state)."""

    detector: str  # "baseline" | "z-score"
    settings: Settings = DEFAULT
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)

    @property
    def name(self) -> str:
        parts = [f"{k} {_text(getattr(self.settings, k))}" for k in
                 ("season", "width", "min_points", "adopt_after")
                 if getattr(self.settings, k) != getattr(DEFAULT, k)]
        if self.for_:
            parts.append(f"for {_text(self.for_)}")
        if self.keep_firing_for:
            parts.append(f"keep_firing_for {_text(self.keep_firing_for)}")
        return self.detector + (f", {', '.join(parts)}" if parts else "")


def _text(value: Any) -> str:
    if isinstance(value, timedelta):
        minutes = int(value.total_seconds() // 60)
        return f"{minutes // 60}h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes}m"
    return f"{value:g}" if isinstance(value, float) else str(value)


_10M, _1H = timedelta(minutes=10), timedelta(hours=1)
#: The headline: a typical baseline rule (the defaults, width 4, with the recommended
#: ``for: 10m`` and ``keep_firing_for: 1h``) against the z-score with the same engine.
BASELINE = Variant("baseline", for_=_10M, keep_firing_for=_1H)
ZSCORE = Variant("z-score", for_=_10M, keep_firing_for=_1H)
VARIANTS: tuple[Variant, ...] = (
    Variant("baseline"),  # per point: what is outside the band
    Variant("z-score"),
    Variant("baseline", for_=_10M),
    Variant("baseline", replace(DEFAULT, width=3.0), for_=_10M, keep_firing_for=_1H),
    Variant("baseline", replace(DEFAULT, width=5.0), for_=_10M, keep_firing_for=_1H),
    Variant("baseline", replace(DEFAULT, adopt_after=timedelta(days=1)), for_=_10M,
            keep_firing_for=_1H),
)


def run(n_series: int = N_SERIES, *, seed: int = SEED, warmup_weeks: int = WARMUP_WEEKS,
        scored_weeks: int = SCORED_WEEKS, events_per_series: int = EVENTS_PER_SERIES,
        variants: Sequence[Variant] = VARIANTS) -> AccuracyResult:
    """Generate, judge with both detectors (the headline and each variant), score. The
    observations of a detector and its settings are computed once; the engine settings
    only decide what pages (``seconds`` include the observations the first time)."""
    series = generate(n_series, seed=seed, warmup_weeks=warmup_weeks,
                      scored_weeks=scored_weeks, events_per_series=events_per_series)
    observed: dict[tuple[str, Settings], list[list[bool]]] = {}

    def scored(v: Variant) -> DetectorScore:
        started = time.perf_counter()
        key = (v.detector, v.settings)
        if key not in observed:
            observed[key] = [zscore_alerts(s) if v.detector == "z-score"
                             else baseline_observations(s, v.settings) for s in series]
        alerts = [engine_pages(s, flags, Engine(v.for_, v.keep_firing_for))
                  for s, flags in zip(series, observed[key], strict=True)]
        return score(v.name, series, alerts, time.perf_counter() - started)

    base, z = scored(BASELINE), scored(ZSCORE)
    others = {v.name: scored(v) for v in variants}
    return AccuracyResult(len(series), sum(len(s.times) for s in series),
                          sum(len(s.times) - s.scored_from for s in series),
                          sum(len(s.events) for s in series), base, z, others,
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _min(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}m"


def _row(label: str, s: Score, *, episodes: bool = True) -> str:
    eps = (f"{s.episodes:>6}{s.false_alerts:>7}{s.precision:>7.2f}" if episodes
           else f"{'':>6}{'':>7}{'':>7}")
    f1 = f"{s.f1:>6.2f}" if episodes else f"{'':>6}"
    return (f"  {label:<46}{s.events:>5}{s.detected:>5}{s.recall:>7.2f}{eps}{f1}"
            f"{_min(s.delay(0.5)):>8}{_min(s.delay(0.9)):>8}")


def format_table(r: AccuracyResult) -> str:
    lines = [f"Baseline accuracy: {r.series} labelled series, {r.scored_points:,} scored "
             f"5-minute points, {r.events} events (seed {SEED}, {TIMEZONE}); event-based, "
             f"tolerance {TOLERANCE // timedelta(minutes=1)} min",
             f"  {'detector / kind':<46}{'evts':>5}{'det':>5}{'recall':>7}{'eps':>6}"
             f"{'false':>7}{'prec':>7}{'F1':>6}{'delay50':>8}{'delay90':>8}"]
    for d in (r.baseline, r.zscore, *r.variants.values()):
        lines.append(_row(d.detector, d.overall) + f"   ({d.seconds:.0f}s)  false: " + ", ".join(
            f"{n} {c}" for c, n in d.causes.items()))
        if d in (r.baseline, r.zscore):
            for kind, s in d.by_kind.items():
                lines.append(_row(f"  {kind}", s, episodes=False))
            for kind, s in d.by_series_kind.items():
                lines.append(_row(f"  {kind}", s))
    b, z = r.baseline.overall, r.zscore.overall
    lines.append(f"targets: baseline F1 {b.f1:.3f} >= {TARGET_F1}: "
                 f"{'yes' if r.f1_ok else 'NO'}; false alerts {b.false_alerts} vs z-score "
                 f"{z.false_alerts} (<= half), recall {b.recall:.2f} vs {z.recall:.2f} "
                 f"(>=): {'yes' if r.half_false_ok else 'NO'}; peak RSS "
                 f"{r.peak_rss_mb:.0f} MB")
    missed = {k: v for k, v in r.baseline.misses.items() if v[0] or v[1]}
    if missed:
        lines.append("baseline misses per series (false alerts; missed events): " + "; ".join(
            f"{k} {f}" + (f" {','.join(m)}" if m else "") for k, (f, m) in missed.items()))
    return "\n".join(lines)


def write_results(result: AccuracyResult, path: Path = RESULTS_FILE) -> None:
    write_json(path, [result.as_json()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=N_SERIES)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-variants", action="store_true",
                        help="score the default settings only")
    parser.add_argument("--no-write", action="store_true", help="do not write results/")
    args = parser.parse_args(argv)
    result = run(args.series, seed=args.seed, variants=() if args.no_variants else VARIANTS)
    print(format_table(result))
    if not args.no_write:
        write_results(result)
        print(f"wrote {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
