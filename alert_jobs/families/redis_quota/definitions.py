"""``redis_quota``: one partition per Redis target, all targets checked in one run.

The schedule launches a single run for the whole partition range every 15 minutes
(``BackfillPolicy.single_run``), and the targets are checked concurrently inside it,
so 100 targets cost one run, not 100. Each target still gets its own materialization
(a partition) with plain-number metadata that plots: used, projected, percent, rate,
hit rate, memory. Any partition can be materialized by hand from the UI.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.model import Severity, Status
from alert_jobs.families.redis_quota.config import RedisQuotaTarget
from alert_jobs.families.redis_quota.run import TargetResult, check_targets
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.freshness_policy import freshness_fields
from alert_jobs.runtime.no_overlap import batch_job_tags, unless_running
from alert_jobs.runtime.resources import AlertJobsResource

ASSET_KEY = dg.AssetKey("redis_quota")
CHECK_NAME = "under_quota"
BATCH = "redis_quota"  # the run tag alert_jobs/batch of its runs (one at a time)


def target_metadata(result: TargetResult) -> dict[str, Any]:
    """Plain floats and strings only (numpy types break Dagster metadata)."""
    meta: dict[str, Any] = {k: float(v) for k, v in result.metrics.items()}
    meta.update({k: str(v) for k, v in result.text.items()})
    worst = result.worst()
    meta["status"] = str(worst.status) if worst else "ok"
    meta["summary"] = worst.summary if worst else result.outcomes[0].observation.summary \
        if result.outcomes else ""
    meta["commands_spent_by_monitor"] = int(result.commands_spent)
    for outcome in result.outcomes:
        check = outcome.observation.labels.get("check", "quota")
        meta[f"state_{check}"] = str(outcome.state)
    return meta


def _check_result(results: list[TargetResult]) -> dg.AssetCheckResult:
    failing = [(r, r.worst()) for r in results if r.worst() is not None]
    severe = any(o.status == Status.ERROR or o.severity == Severity.CRITICAL
                 for _, o in failing if o is not None)
    lines = [f"{r.target}: {o.summary}" for r, o in failing if o is not None]
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
        description="\n".join(lines)[:4000] if lines else
        f"{len(results)} target(s) under quota and healthy",
        metadata={"targets_checked": len(results), "targets_failing": len(failing)},
    )


def build_redis_quota_asset(target_names: list[str],
                            freshness: Mapping[str, Any] | None = None
                            ) -> dg.AssetsDefinition:
    """``freshness``: the asset's freshness policy and metadata (:func:`freshness_fields`)."""
    partitions = dg.StaticPartitionsDefinition(target_names)

    @dg.asset(
        key=ASSET_KEY,
        group_name="redis_quota",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=ASSET_KEY,
                                       description="every checked target under quota and "
                                                   "healthy (hit rate, memory, clients)")],
        description="Redis command quota and health, one partition per target.",
        kinds={"redis"},
        **(freshness or {}),
    )
    def redis_quota(context: dg.AssetExecutionContext,
                    alert_jobs: AlertJobsResource) -> Iterator[dg.AssetCheckResult]:
        rules = alert_jobs.load_rules()
        targets = select_targets(rules, context.partition_keys)
        timeline = alert_jobs.timeline()
        results = check_targets(rules, targets, timeline, run_id=context.run_id)
        for result in results:
            for outcome in result.outcomes:
                context.log.info(outcome.result.decision.describe())
            if result.error:
                context.log.warning(f"check failed: {result.error}")
            context.log_event(dg.AssetMaterialization(
                asset_key=ASSET_KEY, partition=result.target, metadata=target_metadata(result)))
        report = deliver(rules, timeline, run_id=context.run_id, raised_by=context.run_id)
        context.log.info(f"delivery: {report}")
        yield _check_result(results)

    return redis_quota


def select_targets(rules: RulesFile, names: list[str]) -> list[RedisQuotaTarget]:
    by_name = {t.name: t for t in rules.rules_of(RedisQuotaTarget)}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise dg.Failure(f"unknown redis_quota target(s) {', '.join(missing)}; reload the code "
                         "location after renaming targets in the rules file")
    return [by_name[n] for n in names]


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """The ``redis_quota`` asset (a partition per target), its job and schedule."""
    targets = rules.rules_of(RedisQuotaTarget)
    if not targets:
        return dg.Definitions()
    names = [t.name for t in targets]
    asset = build_redis_quota_asset(names, freshness_fields(
        rules, "redis_quota", "redis_quota_schedule", rules.defaults.redis_quota_schedule,
        rules.defaults.timezone))
    job = dg.define_asset_job("redis_quota_job", selection=[ASSET_KEY],
                              partitions_def=asset.partitions_def,
                              tags=batch_job_tags(BATCH, rules.defaults.redis_quota_schedule,
                                                  rules.defaults.timezone),
                              description="Check Redis quota targets (all of them when "
                                          "launched by the schedule).")

    @dg.schedule(
        name="redis_quota_schedule",
        cron_schedule=rules.defaults.redis_quota_schedule,
        execution_timezone=rules.defaults.timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Checks every Redis target in one run (concurrently).",
    )
    def redis_quota_schedule(context: dg.ScheduleEvaluationContext
                             ) -> dg.RunRequest | dg.SkipReason:
        # One run over the whole partition range: the asset's single-run backfill policy
        # then checks all targets together; none while the previous one is still going.
        return unless_running(context, BATCH, dg.RunRequest(tags={
            "dagster/asset_partition_range_start": names[0],
            "dagster/asset_partition_range_end": names[-1]}))

    return dg.Definitions(assets=[asset], schedules=[redis_quota_schedule], jobs=[job])
