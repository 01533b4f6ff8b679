"""Pushed alerts through the one engine: a push, and the sweep of alerts past ``endsAt``.

A push (``POST /api/v2/alerts``) first sweeps, then keeps each alert with its ``endsAt``
(:mod:`~alert_jobs.families.external.store`), then lets the engine decide every alert
instance it touched, exactly as a check's observations are decided
(:mod:`alert_jobs.runtime.evaluate`: the same policies, routes, grouping, inhibition,
messages and action links), with ``for`` and ``keep_firing_for`` of zero: Prometheus
already waited for its ``for``. The sweep (every push, and the family's sensor) resolves
instances none of whose alerts was sent again before its ``endsAt``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from alert_jobs.config import RulesFile
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status, alert_labels
from alert_jobs.core.routing import Router
from alert_jobs.families.external.check import PushedAlert, Stored, settle, stored
from alert_jobs.families.external.config import ExternalSettings
from alert_jobs.families.external.store import ExternalStore
from alert_jobs.notify.render import build_message
from alert_jobs.runtime.evaluate import BATCH_CHUNK, RuleOutcome, links_for, routed
from alert_jobs.store import Timeline
from alert_jobs.store.events import event_row, write_events

#: ``source`` of the timeline events a push writes (its actor is the caller).
SOURCE = "api"


@dataclass
class PushReport:
    """What one push (or sweep) did."""

    received: int = 0
    firing: int = 0  # alerts of the push that fire
    resolved: int = 0  # alerts of the push that ended
    ignored: int = 0  # ended alerts nobody had pushed as firing (already resolved)
    swept: int = 0  # alert instances the sweep resolved
    outcomes: list[RuleOutcome] = field(default_factory=list)

    @property
    def notifies(self) -> bool:
        """Whether it queued any notification (else there is nothing new to deliver)."""
        return any(o.result.decision.notifications for o in self.outcomes)

    @property
    def outbox_ids(self) -> list[int]:
        return sorted({i for o in self.outcomes for i in o.result.outbox_ids})


def policy(rules: RulesFile, settings: ExternalSettings, obs: Observation,
           router: Router) -> RulePolicy:
    """The engine's rule for a pushed alert: no ``for`` or ``keep_firing_for`` (the sender
    applied its own), repeats as its routes say (the shortest of them, as for a rule)."""
    severity = obs.severity or settings.severity
    receivers = tuple(settings.receivers)
    targets = router.targets(alert_labels(obs, severity), receivers)
    repeat = min((t.repeat_interval for t in targets), default=rules.defaults.repeat_interval)
    return RulePolicy(rule=obs.rule, severity=severity, for_=timedelta(0),
                      keep_firing_for=timedelta(0), repeat_interval=repeat,
                      receivers=receivers)


def message(rules: RulesFile, obs: Observation) -> dict[str, object]:
    """The notification of a pushed alert: its summary, description and links from the
    annotations, the rest of them (and the source's link) as the first steps."""
    notes = obs.details.get("annotations") or {}
    return build_message(
        obs, severity=obs.severity or ExternalSettings().severity,
        description=str(notes.get("description", "")),
        runbook_url=str(notes.get("runbook_url", "")),
        dashboard_url=str(notes.get("dashboard_url") or obs.details.get("generator_url", "")),
        dagster_url=rules.defaults.dagster_url)


def decide(rules: RulesFile, timeline: Timeline, observations: Sequence[Observation], *,
           now: datetime) -> list[RuleOutcome]:
    """The engine's decisions for these observations, ``BATCH_CHUNK`` per transaction."""
    settings = rules.section(ExternalSettings)
    router = rules.router()
    links = links_for(rules, now)
    outcomes: list[RuleOutcome] = []
    for start in range(0, len(observations), BATCH_CHUNK):
        part = observations[start:start + BATCH_CHUNK]
        items = [(obs, policy(rules, settings, obs, router), message(rules, obs))
                 for obs in part]
        results = timeline.alerts.process_many(items, now=now, run_id=None, router=router,
                                               links=links)
        outcomes += [RuleOutcome(obs, replace(result, decision=routed(result.decision, router)))
                     for obs, result in zip(part, results, strict=True)]
    return outcomes


def _settle(rules: RulesFile, timeline: Timeline, kept: dict[str, list[Stored]], *,
            now: datetime) -> list[RuleOutcome]:
    """Decide these alert instances from their kept alerts, then forget those that ended."""
    observations: list[Observation] = []
    ended: list[str] = []
    for alerts in kept.values():
        if not alerts:
            continue
        obs, gone = settle(alerts, now)
        observations.append(obs)
        ended += gone
    outcomes = decide(rules, timeline, observations, now=now)
    if ended:
        ExternalStore(timeline).forget(ended, now)
    return outcomes


#: Pushes and sweeps take turns, whole: merge, decision and forgetting. Two overlapping
#: pushes (an HA pair of Prometheus servers) must not decide from stale snapshots: a
#: resolve that forgot the alert, then a firing decided from before it, would leave the
#: alert firing with nothing left for the sweep to resolve.
_TURNS = threading.Lock()
#: PostgreSQL: the same, across ``serve`` replicas and the sweep sensor (a session lock,
#: another key than the per-transaction one of :meth:`ExternalStore.push`).
WHOLE_PUSH_LOCK = 7438220


@contextmanager
def _one_at_a_time(timeline: Timeline) -> Iterator[None]:
    with _TURNS:
        if timeline.dialect != "postgresql":
            yield
            return
        with timeline.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": WHOLE_PUSH_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"),
                             {"key": WHOLE_PUSH_LOCK})
                conn.commit()


def sweep(rules: RulesFile, timeline: Timeline, *, now: datetime) -> list[RuleOutcome]:
    """Resolve the alert instances whose alerts all passed ``endsAt`` unsent (Alertmanager:
    an alert not sent again before its end is resolved)."""
    with _one_at_a_time(timeline):
        return _sweep(rules, timeline, now=now)


def _sweep(rules: RulesFile, timeline: Timeline, *, now: datetime) -> list[RuleOutcome]:
    store = ExternalStore(timeline)
    ended = store.ended_fingerprints(now)
    if not ended:
        return []
    return _settle(rules, timeline, store.kept(ended), now=now)


def receive(rules: RulesFile, timeline: Timeline, alerts: Sequence[PushedAlert], *,
            now: datetime, caller: str) -> PushReport:
    """One push, end to end but for delivery (the caller delivers what is due); one at
    a time with other pushes and sweeps (see :data:`_TURNS`)."""
    with _one_at_a_time(timeline):
        return _receive(rules, timeline, alerts, now=now, caller=caller)


def _receive(rules: RulesFile, timeline: Timeline, alerts: Sequence[PushedAlert], *,
             now: datetime, caller: str) -> PushReport:
    settings = rules.section(ExternalSettings)
    report = PushReport(received=len(alerts))
    swept = _sweep(rules, timeline, now=now)
    report.swept = len(swept)
    latest: dict[str, PushedAlert] = {}
    for alert in alerts:  # an alert sent twice in one push: the later one counts
        latest[alert.key] = alert
    touched: set[str] = set()

    def merge(kept: dict[str, list[Stored]]) -> list[Stored]:
        prior = {s.key: s for alerts in kept.values() for s in alerts}
        rows = []
        for key, alert in latest.items():
            ended = alert.ends_at is not None and alert.ends_at <= now
            if ended and key not in prior:
                report.ignored += 1  # resolved before, or never fired here
                continue
            report.resolved += ended
            report.firing += not ended
            touched.add(alert.fingerprint)
            rows.append(stored(alert, now=now, resolve_timeout=settings.resolve_timeout,
                               severity=settings.severity_of(alert.severity_label),
                               pushed_by=caller, prior=prior.get(key)))
        return rows

    after = ExternalStore(timeline).push(merge, {a.fingerprint for a in latest.values()})
    outcomes = _settle(rules, timeline, {fp: after[fp] for fp in sorted(touched)}, now=now)
    _record(timeline, outcomes, caller, now)
    report.outcomes = swept + outcomes
    return report


def _record(timeline: Timeline, outcomes: Sequence[RuleOutcome], caller: str,
            now: datetime) -> None:
    """A ``pushed`` event (actor: the caller, source ``api``) beside each state change a
    push made, so the timeline says who raised or resolved a pushed alert."""
    rows = []
    for o in outcomes:
        d = o.result.decision
        if d.before == d.record.state:
            continue
        what = "firing" if o.observation.status == Status.ALERT else "resolved"
        details = o.observation.details
        rows.append(event_row(now, "pushed", f"{caller} pushed it {what}", fingerprint=(
            d.record.fingerprint), rule=d.record.rule, actor=caller, source=SOURCE, payload={
            "status": what, "starts_at": details.get("starts_at"),
            "ends_at": details.get("ends_at"),
            "generator_url": details.get("generator_url", "")}))
    if rows:
        with timeline.tx() as conn:
            write_events(conn, rows)
