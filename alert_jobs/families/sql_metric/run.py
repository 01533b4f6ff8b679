"""One ``sql_metric`` rule end to end: query → judge → engine."""

from __future__ import annotations

from datetime import datetime

from alert_jobs.config import RulesFile, SecretMissingError, resolve
from alert_jobs.core.durations import format_duration
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import Observation, error_observation, fingerprint
from alert_jobs.families.sql_metric.check import bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.source import query_number
from alert_jobs.runtime.evaluate import RuleOutcome, process_observation, resolve_vanished
from alert_jobs.store import Timeline, utcnow


def observe_sql_metric(rule: SqlMetricRule, *, now: datetime, was_firing: bool) -> Observation:
    """Run the rule's query and judge the number; failures become an ``error`` observation."""
    subject = rule.description or rule.name.replace("_", " ")
    window = format_duration(rule.window)
    try:
        value = query_number(resolve(rule.database), rule.query, window_start=now - rule.window,
                             window_end=now, timeout=rule.query_timeout)
    except (SourceError, SecretMissingError) as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels)
    return judge(rule.name, value, bounds_of(rule), subject=subject, window=window,
                 was_firing=was_firing, labels=rule.labels)


def evaluate_rule(
    rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None,
) -> RuleOutcome:
    """Evaluate ``rule`` once and persist the decision (delivery is the caller's)."""
    now = now or utcnow()
    prior = timeline.alerts.get(fingerprint(rule.name, rule.labels))
    was_firing = prior is not None and prior.state.is_active
    obs = observe_sql_metric(rule, now=now, was_firing=was_firing)
    outcome = process_observation(rules, rule, timeline, obs, now=now, run_id=run_id)
    resolve_vanished(rules, rule, timeline, {obs.fingerprint}, now=now, run_id=run_id)
    return outcome


def evaluate(rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: one rule, now."""
    return [evaluate_rule(rules, rule, timeline, now=now, run_id=run_id)]
