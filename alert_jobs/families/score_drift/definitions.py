"""``score_drift``: source table → ``score_reference`` (daily) → ``score_drift`` (hourly).

Per rule, three assets in the ``score_drift`` group, so the UI shows the lineage:

- ``<rule>/source_table``: the scored table (or files), an external asset.
- ``<rule>/score_reference``: the stored reference summaries (fine histogram, PSI edges,
  null counts, volume); rebuilt by ``<rule>_reference_schedule`` (daily) or by hand.
- ``<rule>/score_drift``: the current window against the reference, through the engine;
  an asset check ``no_drift`` (WARN, or ERROR for critical findings and check errors).

Both are partitioned per segment (e.g. per model): static partitions from the rule's
``segments:``, else dynamic partitions that ``<rule>_segments_sensor`` discovers from
the table (new models get their reference right away). Schedules launch one run per
rule for all partitions (``BackfillPolicy.single_run``): one GROUP BY query for every
segment, not one run per model. Each partition still gets its own materialization
with plain-number metadata (psi, ks, rates, counts) and a markdown table of
reference vs current bins.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile, SecretMissingError
from alert_jobs.core.errors import SourceError
from alert_jobs.core.model import Severity, Status
from alert_jobs.families.score_drift.config import DEFAULT_DRIFT_SCHEDULE, ScoreDriftRule
from alert_jobs.families.score_drift.run import (
    SegmentResult,
    build_references,
    check_segments,
    discover,
)
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.freshness_policy import freshness_fields
from alert_jobs.runtime.no_overlap import batch_job_tags, unless_running
from alert_jobs.runtime.resources import AlertJobsResource

GROUP = "score_drift"
CHECK_NAME = "no_drift"
UNPARTITIONED = ""


def source_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([rule_name, "source_table"])


def reference_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([rule_name, "score_reference"])


def drift_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([rule_name, "score_drift"])


def partitions_for(rule: ScoreDriftRule) -> dg.PartitionsDefinition | None:
    if not rule.segment_columns:
        return None
    if rule.segments is not None:
        return dg.StaticPartitionsDefinition(list(rule.segments))
    return dg.DynamicPartitionsDefinition(name=f"{rule.name}_segments")


def _rule(alert_jobs: AlertJobsResource, name: str) -> tuple[RulesFile, ScoreDriftRule]:
    rules = alert_jobs.load_rules()
    for rule in rules.rules_of(ScoreDriftRule):
        if rule.name == name:
            return rules, rule
    raise dg.Failure(f"unknown score_drift rule {name!r}; reload the code location after "
                     "renaming rules in the rules file")


def _segments(context: dg.AssetExecutionContext) -> list[str]:
    return list(context.partition_keys) if context.has_partition_key_range or \
        context.has_partition_key else [UNPARTITIONED]


def segment_metadata(result: SegmentResult) -> dict[str, Any]:
    """Plain floats, ints and strings (numpy types break Dagster metadata)."""
    meta: dict[str, Any] = {k: float(v) for k, v in result.metrics.items()}
    worst = result.worst()
    meta["status"] = str(worst.status) if worst else "ok"
    meta["summary"] = worst.summary if worst else next(
        (o.summary for o in result.observations if o.labels.get("check") == "distribution"),
        "")
    meta["reference_built_now"] = int(result.reference_built)
    for outcome in result.outcomes:
        obs = outcome.observation
        name = obs.labels.get("check", "check")
        if "feature" in obs.labels:
            name += f"_{obs.labels['feature']}"
        meta[f"state_{name}"] = str(outcome.state)
    if result.bins_markdown:
        meta["bins"] = dg.MetadataValue.md(result.bins_markdown)
    return meta


def check_result(results: list[SegmentResult]) -> dg.AssetCheckResult:
    failing = [(r, r.worst()) for r in results]
    failing = [(r, o) for r, o in failing if o is not None and o.status != Status.NODATA]
    severe = any(o.status == Status.ERROR or o.severity == Severity.CRITICAL
                 for _, o in failing if o is not None)
    lines = [f"{r.segment or 'all'}: {o.summary}" for r, o in failing if o is not None]
    nodata = sum(1 for r in results if (w := r.worst()) is not None
                 and w.status == Status.NODATA)
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
        description="\n".join(lines)[:4000] if lines else
        f"{len(results)} segment(s) without drift ({nodata} with too little data to judge)",
        metadata={"segments_checked": len(results), "segments_failing": len(failing),
                  "segments_without_enough_data": nodata},
    )


def build_score_drift_assets(rule: ScoreDriftRule,
                             freshness: Mapping[str, Any] | None = None) -> list[Any]:
    """The rule's scored rows (a source), its reference and its drift check;
    ``freshness``: the drift asset's freshness policy and metadata."""
    name = rule.name
    partitions = partitions_for(rule)
    where = rule.table or rule.files or ""
    source = dg.AssetSpec(
        source_key(name), group_name=GROUP,
        description=f"Scored rows of rule {name}: {where} (time {rule.time_column}, score "
                    f"{rule.score_column}). Read by the assets downstream; not managed here.",
        kinds={"parquet" if rule.files else "sql"})

    @dg.asset(
        key=reference_key(name),
        group_name=GROUP,
        deps=[source_key(name)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions else None,
        description=f"Reference summaries of {name} ({rule.reference.describe()}): fine "
                    "histogram, PSI edges, null counts and volume, stored in the timeline DB.",
        kinds={"sql"},
        tags={"alert_jobs/family": GROUP},
    )
    def score_reference(context: dg.AssetExecutionContext,
                        alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        _, current = _rule(alert_jobs, name)
        segments = _segments(context)
        builds = build_references(current, alert_jobs.timeline(), segments,
                                  run_id=context.run_id)
        failed = [b for b in builds if b.error]
        for build in failed:
            context.log.error(f"reference of {build.segment or name} not built: {build.error}")
        if failed:
            raise dg.Failure(f"{len(failed)} reference(s) could not be built: "
                             f"{failed[0].error}")
        if len(builds) == 1:
            return dg.MaterializeResult(metadata=builds[0].metadata(current))
        # One run for many partitions: the materialization covers them all, and each
        # partition's own numbers are an observation on that partition.
        for build in builds:
            context.log_event(dg.AssetObservation(asset_key=reference_key(name),
                                                  partition=build.segment,
                                                  metadata=build.metadata(current)))
        return dg.MaterializeResult(metadata={
            "segments": len(builds),
            "valid_scores": sum(int(b.metadata(current)["valid_scores"]) for b in builds)})

    @dg.asset(
        key=drift_key(name),
        group_name=GROUP,
        deps=[reference_key(name)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions else None,
        output_required=False,
        check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=drift_key(name),
                                       description="no score drift, high-score surge, broken "
                                                   "feature, silent pipeline or bad scores")],
        description=f"Drift of {name} scores in the last window against the stored "
                    "reference: PSI, KS, high-score rate, null rates, volume.",
        kinds={"sql"},
        tags={"alert_jobs/family": GROUP},
        **(freshness or {}),
    )
    def score_drift(context: dg.AssetExecutionContext,
                    alert_jobs: AlertJobsResource) -> Iterator[dg.AssetCheckResult]:
        rules, current = _rule(alert_jobs, name)
        timeline = alert_jobs.timeline()
        results = check_segments(rules, current, timeline, _segments(context),
                                 run_id=context.run_id)
        for result in results:
            for outcome in result.outcomes:
                context.log.info(outcome.result.decision.describe())
            if result.error:
                context.log.warning(f"check failed: {result.error}")
            context.log_event(dg.AssetMaterialization(
                asset_key=drift_key(name), partition=result.segment or None,
                metadata=segment_metadata(result)))
        report = deliver(rules, timeline, run_id=context.run_id, raised_by=context.run_id)
        context.log.info(f"delivery: {report}")
        yield check_result(results)

    return [source, score_reference, score_drift]


def _range_request(context: dg.ScheduleEvaluationContext, rule: ScoreDriftRule,
                   partitions: dg.PartitionsDefinition | None
                   ) -> dg.RunRequest | dg.SkipReason:
    if partitions is None:
        return dg.RunRequest()
    keys = partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    if not keys:
        return dg.SkipReason(f"no segments of {rule.name} discovered yet (see "
                             f"{rule.name}_segments_sensor)")
    return dg.RunRequest(tags={"dagster/asset_partition_range_start": keys[0],
                               "dagster/asset_partition_range_end": keys[-1]})


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """Assets, jobs, schedules and the segments sensor of every score_drift rule."""
    assets: list[Any] = []
    schedules: list[Any] = []
    sensors: list[Any] = []
    jobs: list[Any] = []
    for rule in rules.rules_of(ScoreDriftRule):
        name = rule.name
        partitions = partitions_for(rule)
        assets += build_score_drift_assets(rule, freshness_fields(
            rules, GROUP, f"{name}_drift_schedule", rule.schedule or DEFAULT_DRIFT_SCHEDULE,
            rules.timezone_for(rule)))
        reference_job = dg.define_asset_job(
            f"{name}_reference_job", selection=[reference_key(name)], partitions_def=partitions,
            description=f"Rebuild the reference summaries of {name}.")
        drift_job = dg.define_asset_job(
            f"{name}_drift_job", selection=[drift_key(name)], partitions_def=partitions,
            tags=batch_job_tags(drift_batch(name), rule.schedule or DEFAULT_DRIFT_SCHEDULE,
                                rules.timezone_for(rule)),
            description=f"Check {name} for drift (all segments when scheduled).")
        jobs += [reference_job, drift_job]
        schedules.append(_schedule(f"{name}_reference_schedule", rule.reference_schedule,
                                   rules.timezone_for(rule), reference_job, rule, partitions,
                                   f"Rebuilds the reference of {name}."))
        schedules.append(_schedule(f"{name}_drift_schedule",
                                   rule.schedule or DEFAULT_DRIFT_SCHEDULE,
                                   rules.timezone_for(rule), drift_job, rule, partitions,
                                   f"Checks {name} for drift (no run while the last one "
                                   "is going).", batch=drift_batch(name)))
        if isinstance(partitions, dg.DynamicPartitionsDefinition):
            sensors.append(build_segments_sensor(rule, partitions, reference_job))
    return dg.Definitions(assets=assets, schedules=schedules, sensors=sensors, jobs=jobs)


def drift_batch(rule_name: str) -> str:
    """The run tag ``alert_jobs/batch`` of a rule's drift runs (one at a time)."""
    return f"{rule_name}_drift"


def _schedule(schedule_name: str, cron: str, timezone: str, job: Any, rule: ScoreDriftRule,
              partitions: dg.PartitionsDefinition | None, description: str, *,
              batch: str | None = None) -> dg.ScheduleDefinition:
    """``batch``: skip a tick while a run of that batch is still in progress."""

    @dg.schedule(name=schedule_name, cron_schedule=cron, execution_timezone=timezone, job=job,
                 default_status=dg.DefaultScheduleStatus.RUNNING, description=description)
    def _run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        request = _range_request(context, rule, partitions)
        return unless_running(context, batch, request) if batch else request

    return _run


def build_segments_sensor(rule: ScoreDriftRule, partitions: dg.DynamicPartitionsDefinition,
                          reference_job: Any) -> dg.SensorDefinition:
    """Adds newly seen segments as partitions and builds their reference at once.

    Incremental: the cursor is the time of the last look, so a tick reads only the rows
    since then (with an hour of overlap for late rows) — one small ``SELECT DISTINCT``
    through the time index, at most every 10 minutes. The first tick looks at the whole
    reference window.
    """
    name = rule.name

    @dg.sensor(name=f"{name}_segments_sensor", job=reference_job,
               minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Discovers segments (models) of {name} in the score table.")
    def _discover(context: dg.SensorEvaluationContext,
                  alert_jobs: AlertJobsResource) -> dg.SensorResult | dg.SkipReason:
        _, current = _rule(alert_jobs, name)
        now = datetime.now(UTC)
        since = datetime.fromisoformat(context.cursor) - timedelta(hours=1) \
            if context.cursor else None
        try:
            found = discover(current, now, since=since)
        except (SourceError, SecretMissingError) as exc:
            return dg.SkipReason(f"cannot read the segments of {name}: {exc}")
        assert partitions.name is not None
        known = set(context.instance.get_dynamic_partitions(partitions.name))
        new = [s for s in found if s not in known]
        if not new:
            context.update_cursor(now.isoformat())
            return dg.SkipReason(f"no new segments ({len(known)} known)")
        return dg.SensorResult(
            dynamic_partitions_requests=[partitions.build_add_request(new)],
            run_requests=[dg.RunRequest(partition_key=s, run_key=f"{name}:{s}") for s in new],
            cursor=now.isoformat())

    return _discover
