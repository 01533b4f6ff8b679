"""``sql_metric`` rules as Dagster assets: one asset per rule, with an asset check.

Each materialization evaluates the rule once through the engine, delivers what the
engine queued, and reports plain-number metadata (value, bounds) that the UI plots.
A query that fails is an ``error`` alert and a failed check, never a crashed run.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Status
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.run import evaluate_rule
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.resources import AlertJobsResource, check_severity

GROUP = "sql_metric"
CHECK_NAME = "within_expected"


def asset_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, rule_name])


def outcome_metadata(rule: SqlMetricRule, outcome: RuleOutcome) -> dict[str, Any]:
    """Plain Python numbers and strings only: numpy types break Dagster metadata."""
    obs = outcome.observation
    decision = outcome.result.decision
    meta: dict[str, Any] = {
        "status": str(obs.status),
        "alert_state": str(decision.record.state),
        "transition": decision.transition,
        "summary": obs.summary,
        "fingerprint": decision.record.fingerprint,
        "notifications_queued": len(outcome.result.outbox_ids),
        "window_seconds": float(rule.window.total_seconds()),
    }
    if obs.value is not None:
        meta["value"] = float(obs.value)
    if rule.expect.min is not None:
        meta["expected_min"] = float(rule.expect.min)
    if rule.expect.max is not None:
        meta["expected_max"] = float(rule.expect.max)
    if decision.muted_by:
        meta["muted_by"] = decision.muted_by
    return meta


def build_sql_metric_asset(rule_name: str, description: str) -> dg.AssetsDefinition:
    key = asset_key(rule_name)

    @dg.asset(
        key=key,
        group_name=GROUP,
        description=description or f"sql_metric rule {rule_name}",
        check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=key,
                                       description="value inside the rule's expected range")],
        kinds={"sql"},
        tags={"alert_jobs/family": GROUP},
    )
    def _sql_metric(context: dg.AssetExecutionContext,
                    alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        rules = alert_jobs.load_rules()
        try:
            rule = rules.rule(rule_name)
        except KeyError as exc:
            raise dg.Failure(f"{exc.args[0]}; reload the code location after editing "
                             "rule names in the rules file") from None
        assert isinstance(rule, SqlMetricRule)
        timeline = alert_jobs.timeline()
        outcome = evaluate_rule(rules, rule, timeline, run_id=context.run_id)
        decision = outcome.result.decision
        context.log.info(decision.describe())
        for event in decision.events:
            context.log.info(f"timeline: {event.kind}: {event.reason}")
        report = deliver(rules, timeline, run_id=context.run_id)
        context.log.info(f"delivery: {report}")
        for error in report.errors:
            context.log.warning(f"delivery failed: {error}")
        obs = outcome.observation
        check = dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=obs.status == Status.OK,
            severity=check_severity(obs.status, rule.severity),
            description=obs.summary,
            metadata={"status": str(obs.status), "alert_state": str(decision.record.state)},
        )
        return dg.MaterializeResult(metadata=outcome_metadata(rule, outcome),
                                    check_results=[check])

    return _sql_metric


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """One asset and one running schedule (the rule's cron, explicit timezone) per rule."""
    assets, schedules = [], []
    for rule in rules.rules_of(SqlMetricRule):
        assets.append(build_sql_metric_asset(rule.name, rule.description))
        schedules.append(dg.ScheduleDefinition(
            name=f"{rule.name}_schedule",
            cron_schedule=rules.schedule_for(rule),
            execution_timezone=rules.timezone_for(rule),
            target=dg.AssetSelection.assets(asset_key(rule.name)),
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Evaluates sql_metric rule {rule.name}",
        ))
    return dg.Definitions(assets=assets, schedules=schedules)
