"""A heartbeat check in a rule test: its pings from the test file, on the test's clock.

The input is ``pings:``, when the job pinged and how (``docs/heartbeat.md``, "Rule
tests"). Each step does what production does between two sensor ticks: every ping in
``(since, now]`` goes through the ping path (:meth:`HeartbeatStore.ping_many`, at the
ping's own time, creating the declared row as the endpoint does), a ping that opens or
closes an alert is evaluated at once (:func:`evaluate_slug`, as the endpoint's
background task), then the sensor's tick (:func:`evaluate_due`) looks at the check at
``now``. Nothing but the HTTP request and the wall clock is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.families.heartbeat.check import Signal
from alert_jobs.families.heartbeat.config import HeartbeatCheck, HeartbeatSettings
from alert_jobs.families.heartbeat.run import declared_spec, evaluate_due, evaluate_slug
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.simulation import InputError, KeyPath, TestClock, offset_of
from alert_jobs.store import Timeline

KINDS = ("success", "start", "fail")
_HINT = ("write a ping as {at: 5m, kind: success|start|fail} (kind defaults to success; "
         "exit_code: 0-255 instead of kind, as /ping/<slug>/<code>), or all of them as "
         "one string: \"0m 5m fail@12m start@20m 3@30m\"")


@dataclass(frozen=True)
class SimPing:
    """One ping of the test: when, which signal, and its exit code if it gave one."""

    at: datetime
    signal: Signal
    exit_code: int | None = None
    rid: str | None = None


def _signal(kind: Any, path: KeyPath) -> tuple[Signal, int | None]:
    text = str(kind).strip().lower()
    if text in KINDS:
        return Signal(text), None
    if text.isdigit() and int(text) <= 255:
        code = int(text)
        return (Signal.SUCCESS if code == 0 else Signal.FAIL), code
    raise InputError(path, f"unknown ping kind {kind!r}: use success, start, fail or an "
                     "exit code 0-255 (the heartbeat endpoint's signals)")


def _term(term: str, clock: TestClock, path: KeyPath) -> SimPing:
    kind, _, at = term.rpartition("@")
    signal, code = _signal(kind, path) if kind else (Signal.SUCCESS, None)
    return SimPing(clock.at(offset_of(at, path, signed=True)), signal, code)


def _item(raw: Any, clock: TestClock, path: KeyPath) -> list[SimPing]:
    if isinstance(raw, str):
        return [_term(term, clock, path) for term in raw.split()]
    if not isinstance(raw, Mapping):
        raise InputError(path, f"a ping is a mapping or a string; {_HINT}")
    unknown = sorted(set(raw) - {"at", "kind", "exit_code", "rid"})
    if unknown:
        raise InputError((*path, unknown[0]), f"unknown key: a ping has at, kind, "
                         f"exit_code and rid; {_HINT}")
    if "at" not in raw:
        raise InputError(path, f"a ping needs at (an offset from the test's start); {_HINT}")
    at = clock.at(offset_of(raw["at"], (*path, "at"), signed=True))
    if "kind" in raw and "exit_code" in raw:
        raise InputError((*path, "exit_code"), "give kind or exit_code, not both")
    if "exit_code" in raw:
        code = raw["exit_code"]
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise InputError((*path, "exit_code"), f"exit_code must be 0-255, got {code!r}")
        signal, exit_code = _signal(code, (*path, "exit_code"))
    else:
        signal, exit_code = _signal(raw.get("kind", "success"), (*path, "kind"))
    rid = raw.get("rid")
    if rid is not None and (not isinstance(rid, str | int) or len(str(rid)) > 64):
        raise InputError((*path, "rid"), "rid is a run id of at most 64 characters")
    return [SimPing(at, signal, exit_code, None if rid is None else str(rid))]


def pings_of(raw: Any, clock: TestClock, path: KeyPath = ("pings",)) -> list[SimPing]:
    """The test's pings in time order (the order given among pings at the same time)."""
    if raw is None:
        return []
    items: Sequence[Any] = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, Sequence):
        raise InputError(path, f"pings is a list or a string; {_HINT}")
    out: list[SimPing] = []
    for i, item in enumerate(items):
        out += _item(item, clock, path if isinstance(raw, str) else (*path, i))
    return sorted(out, key=lambda p: p.at)


@dataclass
class HeartbeatSimulator:
    """Drives one declared check: pings in, the sensor's evaluation out."""

    check: HeartbeatCheck
    pings: list[SimPing]

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        slug = self.check.ping_slug
        due = [p for p in self.pings if p.at <= now and (since is None or p.at > since)]
        outcomes: list[RuleOutcome] = []
        if due:
            spec = declared_spec(self.check, rules.defaults.timezone)
            keep = rules.section(HeartbeatSettings).ping_log_keep
            store = HeartbeatStore(timeline)
            for p in due:  # one at a time: each may open or close an alert at its time
                result = store.ping(slug, p.signal, p.at, rid=p.rid, exit_code=p.exit_code,
                                    user_agent="alert-jobs rules test", keep=keep,
                                    create=spec)
                if result is not None and result.needs_engine:
                    outcomes += evaluate_slug(rules, timeline, slug, now=p.at).outcomes
        outcomes += evaluate_due(rules, timeline, now=now, slugs={slug}).outcomes
        return outcomes


def simulate(rule: HeartbeatCheck, inputs: Mapping[str, Any], clock: TestClock
             ) -> HeartbeatSimulator:
    """The family's ``simulate`` hook: ``pings`` (required; ``[]`` for none)."""
    if not isinstance(rule, HeartbeatCheck):
        raise InputError((), f"{getattr(rule, 'name', rule)!r} is not a heartbeat check")
    unknown = sorted(set(inputs) - {"pings"})
    if unknown:
        raise InputError((unknown[0],), "unknown key: a heartbeat check's input is pings "
                         "(when the job pinged)")
    if "pings" not in inputs:
        raise InputError((), f"a heartbeat check's input needs pings ([] for none); {_HINT}")
    return HeartbeatSimulator(rule, pings_of(inputs["pings"], clock))
