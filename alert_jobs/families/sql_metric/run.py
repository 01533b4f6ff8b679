"""``sql_metric`` rules end to end: query → judge → engine, one rule or a whole batch.

A batch (the rules of one schedule tick) reads its sources concurrently, at most
``defaults.source_concurrency`` at a time, each query within its rule's
``query_timeout``; then every decision of the batch is written together
(:func:`~alert_jobs.runtime.evaluate.process_batch`). A rule whose query fails or
hangs is that rule's ``error`` observation; the others are decided as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from alert_jobs.config import RulesFile, SecretMissingError, resolve
from alert_jobs.core.durations import format_duration
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import Observation, error_observation, fingerprint
from alert_jobs.families.sql_metric.check import bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.source import query_number
from alert_jobs.runtime.bounded import Task, run_bounded
from alert_jobs.runtime.evaluate import BATCH_CHUNK, RuleOutcome, process_batch, vanished
from alert_jobs.store import Timeline, utcnow

#: Seconds past a rule's ``query_timeout`` before the batch stops waiting for its query:
#: the source's own timeout answers first with a clearer reason when it works.
TIMEOUT_GRACE = 1.0


def _subject(rule: SqlMetricRule) -> str:
    return rule.description or rule.name.replace("_", " ")


def observe_sql_metric(rule: SqlMetricRule, *, now: datetime, was_firing: bool) -> Observation:
    """Run the rule's query and judge the number; failures become an ``error`` observation."""
    subject = _subject(rule)
    window = format_duration(rule.window)
    try:
        value = query_number(resolve(rule.database), rule.query, window_start=now - rule.window,
                             window_end=now, timeout=rule.query_timeout)
    except (SourceError, SecretMissingError) as exc:
        return error_observation(rule.name, f"{subject}: {exc}", rule.labels)
    except Exception as exc:  # a bug must cost this rule, not the batch
        return error_observation(rule.name, f"{subject}: unexpected {type(exc).__name__} "
                                 f"while reading the source", rule.labels)
    return judge(rule.name, value, bounds_of(rule), subject=subject, window=window,
                 was_firing=was_firing, labels=rule.labels)


def _late(rule: SqlMetricRule, limit: float) -> Observation:
    return error_observation(
        rule.name, f"{_subject(rule)}: the query did not answer within {limit:g} s "
        f"(query_timeout {format_duration(rule.query_timeout)}); the run went on without it",
        rule.labels)


def evaluate_batch(
    rules: RulesFile, batch: Sequence[SqlMetricRule], timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None, concurrency: int | None = None,
    chunk: int = BATCH_CHUNK,
) -> list[RuleOutcome]:
    """Evaluate ``batch`` once and persist the decisions (delivery is the caller's).

    One outcome per rule, in order. Alert instances of these rules that the evaluation
    no longer produces (their labels changed) are resolved in the same write.
    """
    now = now or utcnow()
    active = {a.fingerprint: a for a in timeline.alerts.list()}
    produced = [fingerprint(rule.name, rule.labels) for rule in batch]
    tasks = [Task(call=partial(observe_sql_metric, rule, now=now, was_firing=fp in active),
                  limit=rule.query_timeout.total_seconds() + TIMEOUT_GRACE,
                  late=partial(_late, rule))
             for rule, fp in zip(batch, produced, strict=True)]
    observations = run_bounded(tasks, concurrency=concurrency
                               or rules.defaults.source_concurrency)
    by_name = {rule.name: rule for rule in batch}
    keep = set(produced)
    stale = [(by_name[a.rule], vanished(a), "") for a in active.values()
             if a.rule in by_name and a.fingerprint not in keep]
    outcomes = process_batch(
        rules, timeline, [(rule, obs, "") for rule, obs in zip(batch, observations,
                                                                strict=True)] + stale,
        now=now, run_id=run_id, chunk=chunk)
    return outcomes[:len(batch)]


def evaluate_rule(
    rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *,
    now: datetime | None = None, run_id: str | None = None,
) -> RuleOutcome:
    """Evaluate ``rule`` once and persist the decision (delivery is the caller's)."""
    return evaluate_batch(rules, [rule], timeline, now=now, run_id=run_id)[0]


def evaluate(rules: RulesFile, rule: SqlMetricRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """The family's ``evaluate``: one rule, now."""
    return [evaluate_rule(rules, rule, timeline, now=now, run_id=run_id)]
