"""One rule evaluation end to end, without Dagster: source → check → engine → outbox.

Dagster assets, the CLI and tests all call this, so there is exactly one path from
a rule to a notification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alert_jobs.checks.sql_metric import Bounds, error_observation, judge
from alert_jobs.config import RuleBase, RulesFile, SecretMissingError, SqlMetricRule, resolve
from alert_jobs.durations import format_duration
from alert_jobs.engine import RulePolicy
from alert_jobs.model import AlertState, Observation, fingerprint
from alert_jobs.notify.outbox import DeliveryReport, deliver_due
from alert_jobs.notify.registry import build_receivers
from alert_jobs.notify.render import build_message
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
        receivers=tuple(rules.receivers_for(rule)),
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
    return process_observation(rules, rule, timeline, obs, now=now, run_id=run_id)


def process_observation(
    rules: RulesFile, rule: RuleBase, timeline: Timeline, obs: Observation, *,
    now: datetime, run_id: str | None, why: str = "",
) -> RuleOutcome:
    """Render the message for ``obs`` and let the engine decide, in one transaction."""
    return process_observations(rules, rule, timeline, [(obs, why)], now=now, run_id=run_id)[0]


def process_observations(
    rules: RulesFile, rule: RuleBase, timeline: Timeline, observations: list[tuple[
        Observation, str]], *, now: datetime, run_id: str | None,
) -> list[RuleOutcome]:
    """Several observations of one rule (with their 'why it matters' text) in one transaction."""
    policy = policy_for(rules, rule)
    items = []
    for obs, why in observations:
        message = build_message(
            obs, severity=obs.severity or rule.severity, description=rule.description,
            why=rule.annotations.why or why, runbook_url=rule.annotations.runbook_url,
            dashboard_url=rule.annotations.dashboard_url, dagster_url=rules.defaults.dagster_url,
            run_id=run_id,
        )
        items.append((obs, policy, message))
    results = timeline.process_many(items, now=now, run_id=run_id)
    return [RuleOutcome(obs, result) for (obs, _), result in zip(observations, results,
                                                                 strict=True)]


def deliver(rules: RulesFile, timeline: Timeline, *, run_id: str | None = None,
            ids: list[int] | None = None) -> DeliveryReport:
    """Send what is due in the outbox (all of it, or just ``ids``)."""
    return deliver_due(timeline, build_receivers(rules), run_id=run_id, ids=ids)
