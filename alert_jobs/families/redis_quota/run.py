"""One Redis quota target checked end to end, and many targets checked concurrently.

source (INFO or Upstash API) → sample folded into the window's usage (timeline DB)
→ judgements (quota, hit rate, memory, evictions, rejections, clients, keys)
→ engine decisions. A target that cannot be read yields one ``error`` observation
naming it (never its password); the other targets are checked all the same.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alert_jobs.config import RulesFile, SecretMissingError, resolve
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import (
    Observation,
    error_observation,
    fingerprint,
    worst_observation,
)
from alert_jobs.families.redis_quota import check as q
from alert_jobs.families.redis_quota.config import RedisQuotaDefaults, RedisQuotaTarget
from alert_jobs.families.redis_quota.source import InfoSnapshot, RedisEndpoint, read_info
from alert_jobs.families.redis_quota.store import RedisUsageStore
from alert_jobs.families.redis_quota.upstash import UpstashUsage, read_usage
from alert_jobs.runtime.baseline import assess_value
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations, resolve_vanished
from alert_jobs.store import Timeline, utcnow

log = logging.getLogger("alert_jobs.redis")


@dataclass
class TargetResult:
    """What one target's check saw and decided; ``metrics`` are plain numbers for Dagster."""

    target: str
    outcomes: list[RuleOutcome] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)  # e.g. how the rate is known
    error: str | None = None
    commands_spent: int = 0

    @property
    def observations(self) -> list[Observation]:
        return [o.observation for o in self.outcomes]

    def worst(self) -> Observation | None:
        return worst_observation(self.observations)


def endpoint(target: RedisQuotaTarget) -> RedisEndpoint:
    assert target.url is not None
    return RedisEndpoint(
        url=resolve(target.url),
        username=resolve(target.username) if target.username is not None else None,
        password=resolve(target.password) if target.password is not None else None,
        timeout=target.timeout.total_seconds(),
        ca_file=target.tls.ca_file,
        verify_tls=target.tls.verify,
    )


@dataclass(frozen=True)
class SourceReading:
    """What one target's source returned (or why it could not be read). Network only."""

    at: datetime
    snapshot: InfoSnapshot | None = None
    usage: UpstashUsage | None = None
    error: str | None = None


def read_source(target: RedisQuotaTarget, now: datetime) -> SourceReading:
    """The only part of a check that waits on the network; safe to run in threads."""
    try:
        if target.source == "upstash":
            assert target.upstash is not None
            api = target.upstash
            usage = read_usage(api.api_url, api.database_id, resolve(api.email),
                               resolve(api.api_key), timeout=target.timeout.total_seconds())
            return SourceReading(now, usage=usage)
        return SourceReading(now, snapshot=read_info(endpoint(target), now=now))
    except (SourceError, SecretMissingError) as exc:
        return SourceReading(now, error=f"{target.name}: {exc}")
    except Exception as exc:  # a bug must not hide this target's problem, nor the others'
        log.exception("reading %s failed", target.name)
        return SourceReading(now, error=f"{target.name}: internal error: {type(exc).__name__}")


#: Where a target's readings come from: :func:`read_source` (its Redis or the Upstash API);
#: a rule test gives its INFO series instead (:mod:`alert_jobs.families.redis_quota.simulate`).
#: A reader never raises: a failure is a :class:`SourceReading` with ``error``.
Reader = Callable[[RedisQuotaTarget, datetime], SourceReading]


def check_target(rules: RulesFile, target: RedisQuotaTarget, timeline: Timeline, *,
                 now: datetime | None = None, run_id: str | None = None,
                 read: Reader = read_source) -> TargetResult:
    """Check one target once and persist every decision."""
    now = now or utcnow()
    return record_and_judge(rules, target, read(target, now), timeline, run_id=run_id,
                            flush=True)


def evaluate(rules: RulesFile, target: RedisQuotaTarget, timeline: Timeline, *,
             now: datetime, run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: one target, now."""
    return check_target(rules, target, timeline, now=now, run_id=run_id).outcomes


def check_targets(rules: RulesFile, targets: Sequence[RedisQuotaTarget], timeline: Timeline, *,
                  now: datetime | None = None, run_id: str | None = None,
                  concurrency: int = 16, read: Reader = read_source) -> list[TargetResult]:
    """Check many targets: read every source concurrently (the waiting is on the
    network), then record and decide one target at a time (the database serializes
    writes anyway, and SQLite's busy-wait makes contending writers slower than a queue).
    One slow or broken target delays the others by at most its own timeout.
    Results come back in the order of ``targets``."""
    now = now or utcnow()
    if concurrency <= 1 or len(targets) <= 1:
        readings = [read(t, now) for t in targets]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(targets)),
                                thread_name_prefix="redis-read") as pool:
            readings = list(pool.map(lambda t: read(t, now), targets))
    results = [record_and_judge(rules, t, r, timeline, run_id=run_id, flush=False)
               for t, r in zip(targets, readings, strict=True)]
    # One message per group, not per target.
    timeline.outbox.flush_due(router=rules.router(), now=now, run_id=run_id)
    return results


def record_and_judge(rules: RulesFile, target: RedisQuotaTarget, reading: SourceReading,
                     timeline: Timeline, *, run_id: str | None = None,
                     flush: bool = True) -> TargetResult:
    """Fold the reading into the window's usage, judge it, and let the engine decide."""
    result = TargetResult(target.name)
    if reading.error is not None:
        result.error = reading.error
        observations = [error_observation(target.name, reading.error,
                                          {**target.labels, "check": "quota"})]
    else:
        try:
            observations = _judge(target, reading, timeline, run_id, result,
                                  rules.section(RedisQuotaDefaults))
        except Exception as exc:  # e.g. the timeline database is down: say so, per target
            log.exception("recording %s failed", target.name)
            result.error = f"{target.name}: internal error: {type(exc).__name__}"
            observations = [error_observation(target.name, result.error,
                                              {**target.labels, "check": "quota"})]
    items = [(obs, q.WHY_QUOTA if obs.labels.get("check") in ("quota", "state") else "")
             for obs in observations]
    result.outcomes = process_observations(rules, target, timeline, items, now=reading.at,
                                           run_id=run_id, flush=flush)
    if result.error is None:  # a complete evaluation: instances not produced are gone
        resolve_vanished(rules, target, timeline, {o.fingerprint for o in observations},
                         now=reading.at, run_id=run_id, flush=flush)
    return result


def _judge(target: RedisQuotaTarget, reading: SourceReading, timeline: Timeline,
           run_id: str | None, result: TargetResult,
           defaults: RedisQuotaDefaults) -> list[Observation]:
    now = reading.at
    window = q.window_at(now, target.quota.window or "day", target.quota.timezone)
    store = RedisUsageStore(timeline)
    snapshot = reading.snapshot
    state_obs: list[Observation] = []
    if reading.usage is not None:
        usage = reading.usage
        used_now = usage.used(window.kind)
        sample = q.CounterSample(now, used_now, server_id=f"upstash:{window.start.isoformat()}")
        recorded = store.record(target.name, window, sample, source="upstash",
                                rate_span=target.rate_window,
                                estimate_after=target.project_after, run_id=run_id)
        used, partial = used_now, False
        result.metrics["upstash_suspended"] = float(usage.state == "suspended")
        if usage.request_limit is not None:
            result.metrics["upstash_request_limit"] = usage.request_limit
        state_obs = [q.judge_database_state(target.name, usage.state, labels=target.labels)]
    else:
        assert snapshot is not None
        result.commands_spent = snapshot.commands_spent
        sample = q.CounterSample(now, snapshot.num("total_commands_processed"),
                                 snapshot.server_id, snapshot.num("uptime_in_seconds"))
        counters = {k: snapshot.num(k) for k in ("keyspace_hits", "keyspace_misses",
                                                 "evicted_keys", "rejected_connections")}
        recorded = store.record(target.name, window, sample, source="info", counters=counters,
                                commands_spent=snapshot.commands_spent,
                                rate_span=target.rate_window,
                                estimate_after=target.project_after, run_id=run_id)
        used, partial = recorded.step.usage.used, recorded.step.usage.partial

    # The rate comes from this window's samples only, and is projected only once they
    # span project_after: the first check of a window has one sample and no rate (not
    # used ÷ seconds since midnight), and two samples seconds apart are not a rate to
    # extrapolate to a whole day.
    points = recorded.rate_points
    rate = q.measure_rate(points, now, target.rate_window, since=window.start)
    restarts = store.restarts(target.name, window) if snapshot is not None else []
    estimated = sum(n.estimated for n in restarts)
    limit = int(target.quota.limit or 1)
    quota_reading = q.project_reading(
        target.name, used, limit, window, now, rate, project_after=target.project_after,
        samples=max(1, q.samples_since(points, window.start)), partial=partial,
        estimated=estimated, restarts=restarts)
    projected = quota_reading.projected
    quota_obs = q.judge_quota(quota_reading, warn_percent=target.warn_percent,
                              critical_percent=target.critical_percent, labels=target.labels,
                              page_on_projection=target.page_on_projection)
    observations = [*state_obs, quota_obs]
    result.metrics.update({
        "used": float(used), "limit": float(limit), "percent": 100.0 * used / limit,
        "window_seconds_left": max(0.0, (window.end - now).total_seconds()),
        "resets_in_window": float(recorded.step.usage.resets),
        "estimated_commands": float(min(estimated, used)),
        "used_counted": float(used - min(estimated, used)),
        "restarts": float(len(restarts)),
        "used_is_lower_bound": float(partial),
        "rate_span_seconds": rate.span.total_seconds() if rate is not None else 0.0,
        "rate_samples": float(rate.samples if rate is not None else quota_reading.samples),
    })
    result.text["rate_basis"] = quota_reading.rate_basis
    note = q.estimate_note(quota_reading)
    if note:
        result.text["estimate"] = note
    if rate is not None:
        result.metrics["rate_ops_per_sec"] = float(rate.rate)
    if projected is not None:
        result.metrics["projected"] = float(projected)
        result.metrics["projected_percent"] = 100.0 * projected / limit
    if snapshot is not None:
        result.metrics["monitor_commands"] = float(snapshot.commands_spent)
        observations += _info_observations(target, snapshot, recorded.previous, result,
                                           counted=recorded.step.counted)
    observations += _bands(target, store, now, result, defaults, info=snapshot is not None)
    if target.command_rate is not None:
        # Over the last rate_window whatever the quota window: a rate is a rate across
        # midnight, and the baseline compares it with the same hour of past weeks.
        trailing = q.measure_rate(points, now, target.rate_window)
        observations.append(_command_rate(target, trailing.rate if trailing else None,
                                          timeline, now, result))
    return observations


def _bands(target: RedisQuotaTarget, store: RedisUsageStore, now: datetime,
           result: TargetResult, defaults: RedisQuotaDefaults, *,
           info: bool) -> list[Observation]:
    """The hit-rate bands and the sustained ops/s levels, both from the target's own
    samples (one history query): the hit rate over the last ``hit_rate.window``, and
    how long the rate between samples has stayed at or above each level. The engine's
    ``for`` is one per target, shared by every check, so it cannot hold "dangerous" for
    10 minutes while the quota alerts at once; the samples can."""
    hit_spec = target.hit_rate_spec(defaults) if info else None  # Upstash: no keyspace
    ops_spec = target.ops_spec(defaults)
    levels = [lv for lv in (ops_spec.high, ops_spec.dangerous) if lv is not None] \
        if ops_spec is not None else []
    if hit_spec is None and not levels:
        return []
    spans = [lv.for_ for lv in levels] + ([hit_spec.window] if hit_spec is not None else [])
    history = store.history(target.name, until=now, back_to=now - max(spans))
    out: list[Observation] = []
    if hit_spec is not None:
        reads = q.hit_window(history, now, hit_spec.window)
        obs = q.judge_hit_rate(target.name, reads, hit_spec, labels=target.labels)
        out.append(obs)
        if reads is not None:
            result.metrics["hit_rate_reads"] = float(reads.reads)
            result.metrics["hit_rate_window_seconds"] = reads.span.total_seconds()
            if reads.percent is not None:
                result.metrics["hit_rate_percent"] = float(reads.percent)
        result.text["hit_rate"] = obs.summary
    if ops_spec is not None and levels:
        obs = q.judge_ops_rate(target.name, history, ops_spec, labels=target.labels)
        out.append(obs)
        if obs.value is not None:
            result.metrics["ops_rate_per_sec"] = float(obs.value)
        held = obs.details.get("held_seconds")
        if isinstance(held, float):
            result.metrics["ops_rate_held_seconds"] = held
        result.text["ops_rate"] = obs.summary
    return out


def _command_rate(target: RedisQuotaTarget, rate: float | None, timeline: Timeline,
                  now: datetime, result: TargetResult) -> Observation:
    """The command rate judged against its learned baseline (one history query)."""
    assert target.command_rate is not None
    labels = {**target.labels, "check": "command_rate"}
    if rate is None:
        return q.judge_command_rate(target.name, None, None, window=target.rate_window,
                                    labels=target.labels)
    fp = fingerprint(target.name, labels)
    state = timeline.baselines.states([fp]).get(fp)
    judged = assess_value(timeline, rule=target.name, fingerprint=fp, value=rate,
                          spec=target.command_rate.baseline, now=now,
                          timezone=target.quota.timezone, state=state)
    band = judged.assessment.band
    if band is not None:
        result.metrics["command_rate_expected"] = float(band.expected)
        for name, bound in (("command_rate_lower", band.lower),
                            ("command_rate_upper", band.upper)):
            if math.isfinite(bound):
                result.metrics[name] = float(bound)
    return q.judge_command_rate(target.name, rate, judged.assessment, window=target.rate_window,
                                labels=target.labels)


def _info_observations(target: RedisQuotaTarget, snap: InfoSnapshot,
                       previous: dict[str, Any] | None, result: TargetResult, *,
                       counted: bool = True) -> list[Observation]:
    labels = target.labels
    out: list[Observation] = []
    used_memory, maxmemory = snap.num("used_memory"), snap.num("maxmemory")
    result.metrics.update({"memory_used_bytes": used_memory, "keys": snap.keys,
                           "connected_clients": snap.num("connected_clients"),
                           "latency_ms": float(snap.latency_ms)})
    if maxmemory > 0:
        result.metrics["memory_percent"] = 100.0 * used_memory / maxmemory
    if target.memory_max_percent is not None:
        out.append(q.judge_memory(target.name, used_memory, maxmemory,
                                  max_percent=target.memory_max_percent, labels=labels))
    maxclients = snap.num("maxclients")
    if target.clients_max_percent is not None and maxclients > 0:
        out.append(q.judge_clients(target.name, snap.num("connected_clients"), maxclients,
                                   max_percent=target.clients_max_percent, labels=labels))
    if target.keys_max is not None:
        out.append(q.judge_keys(target.name, snap.keys, target.keys_max, labels=labels))
    if previous is None or not counted:
        return out  # counters need two samples, in order
    same_server = previous["server_id"] == snap.server_id

    def delta(name: str) -> float:
        cur, prev = snap.num(name), previous.get(name)
        if prev is None or not same_server or cur < prev:
            return cur  # reset: the new value is growth from zero
        return cur - float(prev)

    deltas = q.InfoDeltas(delta("keyspace_hits"), delta("keyspace_misses"),
                          delta("evicted_keys"), delta("rejected_connections"),
                          snap.at - previous["at"])
    if target.evicted_keys_max is not None:
        out.append(q.judge_counter(target.name, "evicted_keys", "evicted keys", deltas.evicted,
                                   target.evicted_keys_max, deltas.interval, labels=labels))
    if target.rejected_connections_max is not None:
        out.append(q.judge_counter(target.name, "rejected_connections", "rejected connections",
                                   deltas.rejected, target.rejected_connections_max,
                                   deltas.interval, labels=labels))
    return out
