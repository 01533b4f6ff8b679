"""One rule evaluation end to end, without Dagster: source → check → engine → outbox.

Dagster assets, the CLI and tests all call this, so there is exactly one path from
a rule to a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alert_jobs.checks.sql_metric import Bounds, error_observation, judge
from alert_jobs.config import RuleBase, RulesFile, SecretMissingError, SqlMetricRule, resolve
from alert_jobs.durations import format_duration
from alert_jobs.engine import RulePolicy
from alert_jobs.links import action_links
from alert_jobs.model import AlertState, Observation, Severity, Status, fingerprint
from alert_jobs.notify.outbox import DeliveryReport, deliver_due
from alert_jobs.notify.registry import build_receivers
from alert_jobs.notify.render import build_message
from alert_jobs.routing import Router
from alert_jobs.sources.sql import SourceError, query_number
from alert_jobs.timeline import ProcessResult, Timeline, utcnow


def policy_for(rules: RulesFile, rule: RuleBase) -> RulePolicy:
    return RulePolicy(
        rule=rule.name,
        severity=rule.severity,
        for_=rule.for_,
        keep_firing_for=rule.keep_firing_for,
        repeat_interval=rules.repeat_interval_for(rule),
        nodata=rule.nodata,
        error=rule.error,
        enabled=rule.enabled,
        receivers=tuple(rule.receivers or ()),  # empty: the route tree (or defaults) decides
    )


@dataclass(frozen=True)
class RuleOutcome:
    """What one evaluation saw and decided."""

    observation: Observation
    result: ProcessResult

    @property
    def state(self) -> AlertState:
        return self.result.decision.record.state


def observe_sql_metric(rule: SqlMetricRule, *, now: datetime, was_firing: bool) -> Observation:
    """Run the rule's query and judge the number; failures become an ``error`` observation."""
    subject = rule.description or rule.name.replace("_", " ")
    window = format_duration(rule.window)
    try:
        value = query_number(resolve(rule.database), rule.query, window_start=now - rule.window,
                             window_end=now, timeout=rule.query_timeout)
    except (SourceError, SecretMissingError) as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels)
    e = rule.expect
    bounds = Bounds(e.min, e.max, e.resolve_min, e.resolve_max)
    return judge(rule.name, value, bounds, subject=subject, window=window,
                 was_firing=was_firing, labels=rule.labels)


def evaluate_rule(
    rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None,
) -> RuleOutcome:
    """Evaluate ``rule`` once and persist the decision (no delivery; see :func:`deliver`)."""
    now = now or utcnow()
    prior = timeline.alert(fingerprint(rule.name, rule.labels))
    was_firing = prior is not None and prior.state.is_active
    obs = observe_sql_metric(rule, now=now, was_firing=was_firing)
    outcome = process_observation(rules, rule, timeline, obs, now=now, run_id=run_id)
    resolve_vanished(rules, rule, timeline, {obs.fingerprint}, now=now, run_id=run_id)
    return outcome


def resolve_vanished(rules: RulesFile, rule: RuleBase, timeline: Timeline, produced: set[str],
                     *, now: datetime, run_id: str | None, flush: bool = True
                     ) -> list[RuleOutcome]:
    """Resolve the rule's open alerts that this evaluation no longer produces.

    Editing a rule's ``labels`` (or turning one of a target's checks off) changes which
    alert instances exist; the old ones would otherwise stay firing forever and never
    send their resolve. Call only with a *complete* evaluation (not after a source
    error, which says nothing about the other instances).
    """
    stale = [a for a in timeline.alerts() if a.rule == rule.name
             and a.fingerprint not in produced]
    items = [(Observation(a.rule, Status.OK, dict(a.labels), None,
                          summary="This alert instance is no longer evaluated (the rule's "
                                  "labels or checks changed), so it is resolved."), "")
             for a in stale]
    if not items:
        return []
    return process_observations(rules, rule, timeline, items, now=now, run_id=run_id,
                                flush=flush)


def process_observation(
    rules: RulesFile, rule: RuleBase, timeline: Timeline, obs: Observation, *,
    now: datetime, run_id: str | None, why: str = "",
) -> RuleOutcome:
    """Render the message for ``obs`` and let the engine decide, in one transaction."""
    return process_observations(rules, rule, timeline, [(obs, why)], now=now, run_id=run_id)[0]


def process_observations(
    rules: RulesFile, rule: RuleBase, timeline: Timeline, observations: list[tuple[
        Observation, str]], *, now: datetime, run_id: str | None, flush: bool = True,
) -> list[RuleOutcome]:
    """Several observations of one rule (with their 'why it matters' text) in one transaction."""
    policy = policy_for(rules, rule)
    items = []
    for obs, why in observations:
        audience = rule.annotations.audience
        message = build_message(
            obs, severity=obs.severity or rule.severity, description=rule.description,
            why=rule.annotations.why or why, runbook_url=rule.annotations.runbook_url,
            dashboard_url=rule.annotations.dashboard_url, dagster_url=rules.defaults.dagster_url,
            run_id=run_id, audience=audience,
            audience_text=rule.annotations.audience_text.get(audience, ""),
            actions=action_links(obs.fingerprint, obs.rule,
                                 base_url=rules.defaults.action_base_url, now=now,
                                 ttl=rules.defaults.action_link_ttl),
        )
        items.append((obs, policy, message))
    results = timeline.process_many(items, now=now, run_id=run_id, router=Router(rules),
                                    flush=flush)
    return [RuleOutcome(obs, result) for (obs, _), result in zip(observations, results,
                                                                 strict=True)]


BROKEN_RULE = "receiver_broken"


def deliver(rules: RulesFile, timeline: Timeline, *, run_id: str | None = None,
            ids: list[int] | None = None, now: datetime | None = None) -> DeliveryReport:
    """Flush due groups and send what is due in the outbox (all of it, or just ``ids``).

    A receiver that answers 401/403/404 raises a ``receiver_broken`` alert on the
    fallback receiver (once, through the engine, so it repeats and resolves like any
    alert); it resolves when that receiver delivers again.
    """
    router = Router(rules)
    timeline.flush_due(router=router, now=now)
    receivers = build_receivers(rules)
    report = deliver_due(timeline, receivers, run_id=run_id, ids=ids)
    changed = _receiver_health(rules, timeline, report, run_id=run_id, now=now or utcnow())
    if changed:
        timeline.flush_due(router=router, now=now)
        report.merge(deliver_due(timeline, receivers, run_id=run_id))
    return report


def _receiver_health(rules: RulesFile, timeline: Timeline, report: DeliveryReport, *,
                     run_id: str | None, now: datetime) -> bool:
    fallback = rules.fallback_receiver()
    policy = RulePolicy(rule=BROKEN_RULE, severity=Severity.CRITICAL, receivers=(fallback,),
                        repeat_interval=rules.defaults.repeat_interval)
    items: list[tuple[Observation, RulePolicy, dict[str, Any] | None]] = []
    for name, error in report.broken.items():
        if name == fallback:
            continue  # nowhere left to say it; the outbox row and the event keep the error
        obs = Observation(BROKEN_RULE, Status.ALERT, {"receiver": name}, None,
                          summary=f"Expected receiver {name} to accept notifications; it "
                                  f"answered {error}. Alerts routed to it reach no one.",
                          severity=Severity.CRITICAL)
        items.append((obs, policy, build_message(obs, severity=Severity.CRITICAL,
                                                 why="Alerts routed to this receiver are "
                                                     "silently lost until it is fixed.",
                                                 dagster_url=rules.defaults.dagster_url,
                                                 run_id=run_id)))
    active = {a.labels.get("receiver") for a in timeline.alerts() if a.rule == BROKEN_RULE}
    for name in report.delivered_to & active:
        obs = Observation(BROKEN_RULE, Status.OK, {"receiver": name}, None,
                          summary=f"Receiver {name} accepts notifications again")
        items.append((obs, policy, build_message(obs, severity=Severity.CRITICAL,
                                                 dagster_url=rules.defaults.dagster_url,
                                                 run_id=run_id)))
    if not items:
        return False
    timeline.process_many(items, now=now, run_id=run_id, router=Router(rules), flush=False)
    return True


def ack_alert(rules: RulesFile, timeline: Timeline, fingerprint: str, *, by: str,
              note: str = "", outcome: str | None = None, source: str = "cli",
              run_id: str | None = None, now: datetime | None = None) -> AlertState:
    """Ack one alert everywhere: the timeline, and the incident tools that paged for it."""
    record = timeline.ack(fingerprint, by=by, note=note, outcome=outcome, source=source,
                          run_id=run_id, now=now)
    timeline.queue_acknowledged(record, Router(rules), by=by, now=now,
                                direct_receivers=rules.direct_receivers(record.rule))
    return record.state


def escalate_due(rules: RulesFile, timeline: Timeline, *, now: datetime | None = None,
                 run_id: str | None = None) -> list[str]:
    """Advance every due escalation step; returns what was done, one line per step.

    Steps come from the routes an alert matches (``escalation:`` on a route); each runs
    once per firing episode, in order, while the alert fires un-acked. Ack stops it.
    """
    now = now or utcnow()
    router = Router(rules)
    done: list[str] = []
    for alert in timeline.alerts():
        if alert.state != AlertState.FIRING or alert.is_acked or alert.fired_at is None:
            continue
        labels = {**alert.labels, "alertname": alert.rule, "severity": str(alert.severity)}
        steps = [s for t in router.targets(labels, rules.direct_receivers(alert.rule))
                 for s in t.escalation]
        for index, step in enumerate(steps):
            if index < alert.escalation_step or now - alert.fired_at < step.after:
                continue
            if timeline.escalate(alert.fingerprint, step=index, receiver=step.receiver,
                                 router=router, after=step.after, now=now, run_id=run_id):
                done.append(f"{alert.rule} [{alert.fingerprint[:8]}] → {step.receiver} "
                            f"(step {index + 1})")
                alert = alert.evolve(escalation_step=index + 1)
            else:
                break
    return done
