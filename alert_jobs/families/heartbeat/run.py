"""Heartbeats end to end: overdue rows → pure evaluation → the one engine.

The sensor calls :func:`evaluate_due` every tick; the ping receiver calls
:func:`evaluate_slug` right after a ping that opens or closes an alert (a failure, a
recovery), so those alert at once rather than at the next tick. Both are safe to run
concurrently: the engine locks each alert row, and a row's evaluation is stored only if
no ping changed it meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.check import WHY, evaluate, observations
from alert_jobs.families.heartbeat.config import AUTO_RULE, HeartbeatCheck, HeartbeatSettings
from alert_jobs.families.heartbeat.store import (
    CreateSpec,
    HeartbeatRow,
    HeartbeatStore,
    config_hash,
    schedule_of,
)
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations
from alert_jobs.store import Timeline, utcnow


def declared_checks(rules: RulesFile) -> dict[str, HeartbeatCheck]:
    """Declared checks by ping slug; a slug given twice is a rules-file error."""
    out: dict[str, HeartbeatCheck] = {}
    for check in rules.rules_of(HeartbeatCheck):
        if check.ping_slug in out:
            raise ValueError(f"heartbeat slug {check.ping_slug!r} is used by both "
                             f"{out[check.ping_slug].name} and {check.name}")
        out[check.ping_slug] = check
    return out


def auto_rule(rules: RulesFile) -> HeartbeatCheck:
    """The rule every auto-created check alerts under (``alertname=heartbeat``)."""
    a = rules.section(HeartbeatSettings).auto_create
    return HeartbeatCheck(name=AUTO_RULE, period=a.period, grace=a.grace, severity=a.severity,
                          receivers=a.receivers,
                          description="A heartbeat created by its first ping")


def create_spec(rules: RulesFile) -> CreateSpec | None:
    a = rules.section(HeartbeatSettings).auto_create
    if not a.enabled:
        return None
    return CreateSpec(schedule_of(auto_rule(rules)), a.max_checks)


def declared_spec(check: HeartbeatCheck, default_tz: str) -> CreateSpec:
    """How a ping creates a declared check's row when it comes before the sensor's sync."""
    return CreateSpec(schedule_of(check, default_tz), 0, rule=check.name, declared=True,
                      config_hash=config_hash(check, default_tz),
                      manual_resume=check.manual_resume)


def declared_hash(rules: RulesFile) -> str:
    """Changes when any declared check changes: the sensor syncs the table only then."""
    raw = json.dumps([c.model_dump(mode="json", exclude={"token"})
                      for c in rules.rules_of(HeartbeatCheck)], sort_keys=True, default=str)
    return hashlib.sha256(f"{rules.defaults.timezone}|{raw}".encode()).hexdigest()[:16]


@dataclass
class EvaluationReport:
    evaluated: int = 0
    stale: int = 0  # skipped: a ping changed the row meanwhile (it is re-read next tick)
    synced: bool = False
    removed: int = 0
    outcomes: list[RuleOutcome] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)  # flushed by this evaluation

    @property
    def firing(self) -> list[Observation]:
        return [o.observation for o in self.outcomes if o.observation.status != "ok"]


def sync(rules: RulesFile, timeline: Timeline, *, now: datetime,
         run_id: str | None = None) -> int:
    """Declared checks into the table; the open alerts of removed checks resolve, and so
    do those of a check whose slug moved to another rule (its new rule alerts now)."""
    store = HeartbeatStore(timeline)
    declared = declared_checks(rules)
    removed = store.sync_declared(list(declared.values()), now, rules.defaults.timezone)
    if not removed:
        return 0
    gone = {(r.rule, r.state.slug) for r in removed}
    closing: dict[str, list[tuple[Observation, str]]] = defaultdict(list)
    for alert in timeline.alerts.list():
        slug = alert.labels.get("heartbeat", "")
        if (alert.rule, slug) in gone:
            why = (f"now belongs to rule {declared[slug].name}" if slug in declared
                   else "was removed from the rules file")
            closing[alert.rule].append((Observation(
                alert.rule, Status.OK, dict(alert.labels), None,
                summary=f"Heartbeat {slug} {why}, so this alert is resolved."), ""))
    for rule_name, items in closing.items():
        rule = auto_rule(rules).model_copy(update={"name": rule_name})
        process_observations(rules, rule, timeline, items, now=now, run_id=run_id, flush=False)
    return len(removed)


def evaluate_rows(rules: RulesFile, timeline: Timeline, rows: list[HeartbeatRow], *,
                  now: datetime, run_id: str | None = None,
                  report: EvaluationReport | None = None, retry: bool = True,
                  ) -> EvaluationReport:
    """Evaluate rows and tell the engine what opened or closed.

    Which problems are open is read from the alerts themselves (the engine's rows), not
    from the heartbeat row, so a ping racing with this evaluation can never leave an
    alert firing: a row a ping changed meanwhile is evaluated once more at once.
    """
    report = report or EvaluationReport()
    store = HeartbeatStore(timeline)
    declared = declared_checks(rules)
    fallback = auto_rule(rules)
    slugs = {r.state.slug for r in rows}
    open_now: dict[tuple[str, str], set[str]] = defaultdict(set)
    if rows:
        for alert in timeline.alerts.list():
            slug = alert.labels.get("heartbeat")
            if slug in slugs:
                open_now[(alert.rule, slug)].add(alert.labels.get("problem", ""))
    batches: dict[str, tuple[HeartbeatCheck, list[tuple[Observation, str]]]] = {}
    saves = []
    for row in rows:
        check = declared.get(row.state.slug) if row.declared else None
        if row.declared and (check is None or check.name != row.rule):
            continue  # the rules changed and the sensor has not synced them yet
        rule = check or fallback
        state = row.state.evolve(open_problems=frozenset(open_now[(rule.name, row.state.slug)]))
        ev = evaluate(state, now)
        obs = observations(state, ev, rule=rule.name, labels=rule.labels, now=now)
        if obs:
            batch = batches.setdefault(rule.name, (rule, []))[1]
            batch.extend((o, WHY[o.labels["problem"]]) for o in obs)
        saves.append((row, ev))
    for rule, items in batches.values():
        report.outcomes += process_observations(rules, rule, timeline, items, now=now,
                                                run_id=run_id, flush=False)
    stale = store.save_evaluations(saves, now)
    report.evaluated += len(saves) - len(stale)
    report.stale += len(stale)
    if batches:
        report.outbox_ids += timeline.outbox.flush_due(router=rules.router(), now=now,
                                                       run_id=run_id)
    if stale and retry:
        fresh = [r for r in (store.get(slug) for slug in stale) if r is not None]
        evaluate_rows(rules, timeline, fresh, now=max(now, utcnow()), run_id=run_id,
                      report=report, retry=False)
    return report


def evaluate_due(rules: RulesFile, timeline: Timeline, *, now: datetime | None = None,
                 run_id: str | None = None, limit: int = 10_000,
                 sync_declared: bool = True, slugs: Collection[str] | None = None,
                 ) -> EvaluationReport:
    """One sensor tick's work: (sync,) read overdue rows with one indexed query, decide.

    ``slugs``: only these checks' due rows (a rule test evaluates the check it drives,
    at its own simulated time, and leaves the others alone)."""
    now = now or utcnow()
    report = EvaluationReport()
    if sync_declared:
        report.removed = sync(rules, timeline, now=now, run_id=run_id)
        report.synced = True
    rows = HeartbeatStore(timeline).due(now, limit)
    if slugs is not None:
        rows = [r for r in rows if r.state.slug in slugs]
    return evaluate_rows(rules, timeline, rows, now=now, run_id=run_id, report=report)


def evaluate_slug(rules: RulesFile, timeline: Timeline, slug: str, *,
                  now: datetime | None = None) -> EvaluationReport:
    """Evaluate one check now (after a ping that opens or closes an alert)."""
    now = now or utcnow()
    row = HeartbeatStore(timeline).get(slug)
    return evaluate_rows(rules, timeline, [row] if row else [], now=now)
