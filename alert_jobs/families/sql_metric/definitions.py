"""``sql_metric`` rules as Dagster assets: one asset and asset check per rule, one run per
schedule tick.

Rules that share a cron and timezone form a batch (:mod:`.batches`): one multi-asset
with a spec and a check per rule (``sql_metric/<rule>``, check ``within_expected``; one
multi-asset per 100 rules of a larger batch, each a step of the same run:
:meth:`~alert_jobs.runtime.batching.Batch.parts`), one job and one schedule. A tick is
one run that reads every rule's source concurrently, writes all decisions together,
delivers what they queued and reports each rule's own materialization (plain-number
metadata that the UI plots) and check result. The multi-asset can be subset:
Materialize on one rule in the UI evaluates only that rule.

A query that fails or hangs is that rule's ``error`` alert and failed check, never a
crashed run; the other rules of the batch are materialized as usual.

A baseline rule's materialization also plots ``expected``, ``lower``, ``upper`` and
``baseline_points``; its check says which bound was crossed (``crossed``: upper | lower
for the baseline, min | max for a fixed bound) and its description is the observation's
sentence. A backfill writes one progress line per rule to the run log.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

import math
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Status
from alert_jobs.families.sql_metric.batches import Batch, batches_of
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.run import evaluate_batch
from alert_jobs.runtime.baseline import BackfillProgress
from alert_jobs.runtime.batch_assets import (
    batch_job_and_schedule,
    deliver_in_run,
    results,
    selected_rules,
)
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.runtime.freshness_policy import freshness_fields
from alert_jobs.runtime.resources import AlertJobsResource, check_severity

GROUP = "sql_metric"
CHECK_NAME = "within_expected"


def asset_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, rule_name])


def check_key(rule_name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(asset_key(rule_name), CHECK_NAME)


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
    meta.update(baseline_metadata(obs.details) if rule.expect.baseline is not None else {})
    if rule.expect.min is not None:
        meta["expected_min"] = float(rule.expect.min)
    if rule.expect.max is not None:
        meta["expected_max"] = float(rule.expect.max)
    if decision.muted_by:
        meta["muted_by"] = decision.muted_by
    return meta


#: A baseline rule's ``details`` keys and the metadata names the UI plots them under.
BASELINE_PLOTS = {"expected_value": "expected", "lower": "lower", "upper": "upper",
                  "points": "baseline_points", "level": "baseline_level"}


def baseline_metadata(details: Mapping[str, Any]) -> dict[str, float]:
    """``expected``, ``lower``, ``upper``, ``baseline_points`` and ``baseline_level``
    (today's level) as plain floats, each only when known (no band while learning, no
    bound on a side the rule does not watch): a missing point leaves a gap in the plot,
    a made-up one would mislead."""
    out = {}
    for key, name in BASELINE_PLOTS.items():
        value = details.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            out[name] = float(value)
    return out


def _check(rule: SqlMetricRule, outcome: RuleOutcome) -> dg.AssetCheckResult:
    obs = outcome.observation
    metadata: dict[str, Any] = {"status": str(obs.status),
                                "alert_state": str(outcome.result.decision.record.state)}
    crossed = obs.details.get("crossed")
    if crossed:  # which bound the value crossed: upper | lower (baseline), min | max (fixed)
        metadata["crossed"] = str(crossed)
    if obs.learning:
        metadata["learning"] = True
    return dg.AssetCheckResult(
        asset_key=asset_key(rule.name),
        check_name=CHECK_NAME,
        passed=obs.status == Status.OK,
        severity=check_severity(obs.status, rule.severity),
        description=obs.summary,
        metadata=metadata,
    )


def build_batch_asset(batch: Batch, descriptions: Mapping[str, str] | None = None,
                      freshness: Mapping[str, Any] | None = None) -> dg.AssetsDefinition:
    """The multi-asset of ``batch``: a spec and an asset check per rule, subsettable.
    ``freshness``: the specs' freshness policy and metadata (:func:`freshness_fields`)."""
    descriptions = descriptions or {}
    specs = [dg.AssetSpec(asset_key(name), group_name=GROUP, kinds={"sql"},
                          description=descriptions.get(name) or f"sql_metric rule {name}",
                          tags={"alert_jobs/family": GROUP}, **(freshness or {}))
             for name in batch.rules]
    checks = [dg.AssetCheckSpec(CHECK_NAME, asset=asset_key(name),
                                description="value inside the rule's expected range")
              for name in batch.rules]

    @dg.multi_asset(name=batch.name, specs=specs, check_specs=checks, can_subset=True,
                    description=f"sql_metric rules on {batch.cron!r} ({batch.timezone}), "
                                "evaluated in one run per tick")
    def _batch(context: dg.AssetExecutionContext, alert_jobs: AlertJobsResource
               ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        rules = alert_jobs.load_rules()
        current, missing = selected_rules(context, batch, rules, SqlMetricRule, asset_key,
                                          check_key)
        timeline = alert_jobs.timeline()
        outcomes = evaluate_batch(rules, current, timeline, run_id=context.run_id,
                                  progress=partial(_log_backfill, context))
        _log(context, outcomes)
        deliver_in_run(context, rules, timeline)
        yield from results(context, ((rule.name, outcome_metadata(rule, outcome),
                                      _check(rule, outcome))
                                     for rule, outcome in zip(current, outcomes, strict=True)),
                           asset_key, check_key, family=GROUP, missing=missing)

    return _batch


def _log_backfill(context: dg.AssetExecutionContext, done: BackfillProgress) -> None:
    """"backfill orders_last_hour: 1,000 of 8,064 points (this run 1,000)"; a backfill
    that a source error stopped is a warning (the rule was evaluated all the same)."""
    (context.log.warning if done.failed else context.log.info)(done.line())


def _log(context: dg.AssetExecutionContext, outcomes: list[RuleOutcome]) -> None:
    """A line per decision that changed something (a run log line is a database write:
    a batch of 1,000 quiet rules logs one summary line, not 1,000)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[str(outcome.observation.status)] = counts.get(
            str(outcome.observation.status), 0) + 1
        decision = outcome.result.decision
        if decision.events or decision.notifications:
            context.log.info(decision.describe())
            for event in decision.events:
                context.log.info(f"timeline: {event.kind}: {event.reason}")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    context.log.info(f"{len(outcomes)} rule(s) evaluated: {summary or 'none'}")


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """A job and a running schedule (explicit timezone) per batch, and a multi-asset per
    part of it."""
    descriptions = {rule.name: rule.description for rule in rules.rules_of(SqlMetricRule)}
    assets: list[dg.AssetsDefinition] = []
    jobs, schedules = [], []
    for batch in batches_of(rules):
        freshness = freshness_fields(rules, GROUP, batch.schedule_name, batch.cron,
                                     batch.timezone)
        assets.extend(build_batch_asset(part, descriptions, freshness)
                      for part in batch.parts())
        job, schedule = batch_job_and_schedule(batch, [asset_key(n) for n in batch.rules],
                                               what="sql_metric rule(s)")
        jobs.append(job)
        schedules.append(schedule)
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)
