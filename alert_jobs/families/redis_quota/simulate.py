"""``alert-jobs rules test`` for ``redis_quota``: a target's INFO (or Upstash stats) given
as series by the test, everything else the family's real check.

Each step builds the :class:`~alert_jobs.families.redis_quota.run.SourceReading` the
real source would have returned at ``now`` and hands it to
:func:`~alert_jobs.families.redis_quota.run.check_target` as its reader: counting into
the quota window (samples and windows in the timeline's tables), counter resets and
restarts, the rate and the projection, the INFO checks, the command-rate baseline and
the engine all run as in production. Nothing connects to Redis or the Upstash API; no
URL, password or API key is resolved.

Inputs (``docs/redis_quota.md#rule-tests``):

* ``info`` (``source: info``): INFO fields as series (:data:`INFO_FIELDS`). A field that
  is ``error`` at a time fails that read (the target's ``error``); a field with no value
  is left out of that INFO, except ``total_commands_processed`` (every real INFO has it):
  without it, or without any field, the read returned nothing, also an ``error``.
  ``uptime_in_seconds`` defaults to the time since the test's start (the server started
  with the test), so a drop of ``total_commands_processed`` alone is a ``CONFIG
  RESETSTAT``; give an ``uptime_in_seconds`` that drops too for a restart.
* ``upstash`` (``source: upstash``): the Developer API's ``daily_net_commands`` and
  ``total_monthly_requests`` (the one of the quota's window is required) and
  ``suspended`` (1: the database is suspended).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.families.redis_quota.config import RedisQuotaTarget
from alert_jobs.families.redis_quota.run import SourceReading, check_target
from alert_jobs.families.redis_quota.source import InfoSnapshot
from alert_jobs.families.redis_quota.upstash import UpstashUsage
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, Series, TestClock, series_of
from alert_jobs.store import Timeline

#: The INFO fields the checks read (``keys`` stands for ``db0:keys=…``).
INFO_FIELDS = ("total_commands_processed", "uptime_in_seconds", "keyspace_hits",
               "keyspace_misses", "evicted_keys", "rejected_connections", "used_memory",
               "maxmemory", "connected_clients", "maxclients", "keys")
#: The Upstash Developer API's numbers the check reads.
UPSTASH_FIELDS = ("daily_net_commands", "total_monthly_requests", "suspended")
_WINDOW_FIELD = {"day": "daily_net_commands", "month": "total_monthly_requests"}


class SimulatedTarget:
    """One ``redis_quota`` target read from the test's series."""

    def __init__(self, target: RedisQuotaTarget, fields: dict[str, Series], clock: TestClock):
        self.target, self.fields, self.clock = target, fields, clock

    def _values(self, target: RedisQuotaTarget, now: datetime
                ) -> tuple[dict[str, float], str | None]:
        values: dict[str, float] = {}
        for name, series in self.fields.items():
            point = series.at(now)
            if point.error is not None:
                return {}, f"{target.name}: {point.error}"
            if point.number is not None:
                values[name] = point.number
        if not values:
            what = "INFO" if target.source == "info" else "the Upstash API"
            return {}, (f"{target.name}: {what} answered with none of the fields the check "
                        "reads (every input series is _ or has ended here)")
        return values, None

    def read(self, target: RedisQuotaTarget, now: datetime) -> SourceReading:
        """What the real source would have returned at ``now`` (a ``Reader``)."""
        values, error = self._values(target, now)
        if error is not None:
            return SourceReading(now, error=error)
        if target.source == "upstash":
            return self._upstash(target, values, now)
        if "total_commands_processed" not in values:  # real INFO always has it: no reading
            return SourceReading(now, error=f"{target.name}: INFO has no "
                                 "total_commands_processed here (its series is _ or has "
                                 "ended)")
        fields: dict[str, Any] = {k: _int_if_whole(v) for k, v in values.items() if k != "keys"}
        if "keys" in values:
            fields["db0"] = {"keys": _int_if_whole(values["keys"])}
        if "uptime_in_seconds" not in self.fields:
            fields["uptime_in_seconds"] = int((now - self.clock.start).total_seconds())
        # One INFO and nothing else: a simulated target needs no AUTH/SELECT.
        return SourceReading(now, snapshot=InfoSnapshot(now, fields, 1, 0.0))

    def _upstash(self, target: RedisQuotaTarget, values: dict[str, float],
                 now: datetime) -> SourceReading:
        needed = _WINDOW_FIELD[target.quota.window or "day"]
        if needed not in values:  # the real API's answer without it is a source error
            return SourceReading(now, error=f"{target.name}: Upstash database "
                                 f"{_database_id(target)}: response has no number {needed!r}")
        used = values[needed]
        usage = UpstashUsage(daily_commands=values.get("daily_net_commands", used),
                             monthly_commands=values.get("total_monthly_requests", used),
                             state="suspended" if values.get("suspended") else "active",
                             plan="simulated", request_limit=None, current_storage=None)
        return SourceReading(now, usage=usage)

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        return check_target(rules, self.target, timeline, now=now, run_id=None,
                            read=self.read).outcomes


def _int_if_whole(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _database_id(target: RedisQuotaTarget) -> str:
    return target.upstash.database_id if target.upstash is not None else "?"


def simulate(target: RedisQuotaTarget, inputs: Mapping[str, Any], clock: TestClock
             ) -> SimulatedTarget:
    """The family's ``simulate`` hook (:class:`~alert_jobs.runtime.simulation.Simulate`)."""
    key, allowed = (("upstash", UPSTASH_FIELDS) if target.source == "upstash"
                    else ("info", INFO_FIELDS))
    example = ("upstash: {daily_net_commands: \"0+100x60\"}" if key == "upstash"
               else "info: {total_commands_processed: \"0+1000x60\", used_memory: …}")
    for name in inputs:
        if name != key:
            raise InputError((name,), f"unknown key {name!r}: a {target.source} target's "
                             f"input is {key}, its fields as series ({example})")
    if key not in inputs:
        raise InputError((), f"a {target.source} target's input needs {key}: its fields as "
                         f"series ({example})")
    raw = inputs[key]
    if not isinstance(raw, Mapping) or not raw:
        raise InputError((key,), f"{key} is a mapping of fields to series ({example})")
    for name in raw:
        if name not in allowed:
            raise InputError((key, str(name)), f"unknown field {name!r}: the check reads "
                             f"{', '.join(allowed)}")
    required = (_WINDOW_FIELD[target.quota.window or "day"] if key == "upstash"
                else "total_commands_processed")
    if required not in raw:
        raise InputError((key,), f"{key} needs {required} (the commands counted against the "
                         "quota), e.g. \"0+1000x60\"")
    fields = {str(name): series_of(value, clock, (key, str(name)))
              for name, value in raw.items()}
    return SimulatedTarget(target, fields, clock)
