"""SLOs as Dagster assets: one asset per SLO (``slo/<rule>``, group ``slo``) with the
asset check ``burn_rate_ok``, one run per schedule tick.

SLOs that share a cron and timezone form a batch (:mod:`.batches`; every minute by
default): one multi-asset with a spec and a check per SLO (one per 100 SLOs of a larger
batch: :meth:`~alert_jobs.runtime.batching.Batch.parts`), one job and one running
schedule. A tick is one run that reads every SLO's new buckets concurrently, writes all
decisions together, delivers what they queued, and reports each SLO's own
materialization: plain numbers the UI plots (``sli_percent`` over the period,
``error_budget_remaining_percent``, ``burn_<window>`` per window, ``events_total_period``,
``backfilled_buckets``) and its check (WARN for a ticket, ERROR for a page or a source
that cannot be read). The multi-asset can be subset: Materialize on one SLO evaluates
only that SLO. A backfill writes its progress to the run log.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.durations import short_duration
from alert_jobs.core.model import Status
from alert_jobs.families.slo.batches import Batch, batches_of
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.report_assets import build_report_definitions
from alert_jobs.families.slo.run import SloOutcome, describe_ingest, evaluate_batch
from alert_jobs.runtime.batch_assets import (
    batch_job_and_schedule,
    deliver_in_run,
    results,
    selected_rules,
)
from alert_jobs.runtime.freshness_policy import freshness_fields
from alert_jobs.runtime.resources import AlertJobsResource, check_severity

GROUP = "slo"
CHECK_NAME = "burn_rate_ok"


def asset_key(rule_name: str) -> dg.AssetKey:
    return dg.AssetKey([GROUP, rule_name])


def check_key(rule_name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(asset_key(rule_name), CHECK_NAME)


def outcome_metadata(done: SloOutcome) -> dict[str, Any]:
    """Plain Python numbers and strings only (the UI plots numbers; numpy types break
    Dagster metadata). A number that is unknown (no events yet) is left out."""
    rule, obs = done.rule, done.outcome.observation
    decision = done.outcome.result.decision
    meta: dict[str, Any] = {
        "status": str(obs.status),
        "alert_state": str(decision.record.state),
        "transition": decision.transition,
        "summary": obs.summary,
        "fingerprint": decision.record.fingerprint,
        "notifications_queued": len(done.outcome.result.outbox_ids),
        "objective_percent": float(rule.objective),
        "period_days": float(rule.period.total_seconds() / 86400),
        "backfilled_buckets": int(done.ingest.backfilled),
        "buckets_read": int(done.ingest.read),
    }
    if done.ingest.remaining:
        meta["backfill_remaining_buckets"] = int(done.ingest.remaining)
    report = done.report
    if report is not None:
        if report.sli is not None:
            meta["sli_percent"] = float(report.sli * 100)
        if report.budget_remaining is not None:
            meta["error_budget_remaining_percent"] = float(report.budget_remaining * 100)
        for span, burn in report.burn.items():
            if burn is not None:
                meta[f"burn_{short_duration(span)}"] = float(burn)
        if report.firing is not None:
            meta["firing_pair"] = (f"{report.firing.pair.label} "
                                   f"{short_duration(report.firing.pair.long)}/"
                                   f"{short_duration(report.firing.pair.short)}")
        if report.exhaustion is not None:
            meta["budget_exhausted_in_hours"] = float(report.exhaustion.total_seconds() / 3600)
    period = done.counts.get(rule.period)
    if period is not None:
        meta["events_total_period"] = float(period.total)
        meta["period_coverage_percent"] = float(period.coverage * 100)
    if decision.muted_by:
        meta["muted_by"] = decision.muted_by
    return meta


def _check(done: SloOutcome) -> dg.AssetCheckResult:
    obs = done.outcome.observation
    return dg.AssetCheckResult(
        asset_key=asset_key(done.rule.name),
        check_name=CHECK_NAME,
        passed=obs.status == Status.OK,
        # A page is critical (ERROR), a ticket a warning (WARN); a source error is ERROR.
        severity=check_severity(obs.status, obs.severity),
        description=obs.summary,
        metadata={"status": str(obs.status),
                  "alert_state": str(done.outcome.result.decision.record.state),
                  "severity": str(obs.severity or "")},
    )


def _kind(rule: SloRule | None) -> str:
    return "prometheus" if rule is not None and rule.sli.prometheus is not None else "sql"


def build_batch_asset(batch: Batch, slos: Mapping[str, SloRule] | None = None,
                      freshness: Mapping[str, Any] | None = None) -> dg.AssetsDefinition:
    """The multi-asset of ``batch``: a spec and an asset check per SLO, subsettable.
    ``freshness``: the specs' freshness policy and metadata (:func:`freshness_fields`)."""
    slos = slos or {}
    specs = [dg.AssetSpec(asset_key(name), group_name=GROUP, kinds={_kind(slos.get(name))},
                          description=_describe(slos.get(name)) or f"SLO {name}",
                          tags={"alert_jobs/family": GROUP}, **(freshness or {}))
             for name in batch.rules]
    checks = [dg.AssetCheckSpec(CHECK_NAME, asset=asset_key(name),
                                description="no burn-rate pair holds (WARN: ticket, "
                                            "ERROR: page)")
              for name in batch.rules]

    @dg.multi_asset(name=batch.name, specs=specs, check_specs=checks, can_subset=True,
                    description=f"SLOs on {batch.cron!r} ({batch.timezone}), evaluated in one "
                                "run per tick")
    def _batch(context: dg.AssetExecutionContext, alert_jobs: AlertJobsResource
               ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        rules = alert_jobs.load_rules()
        current, missing = selected_rules(context, batch, rules, SloRule, asset_key,
                                          check_key)
        timeline = alert_jobs.timeline()
        done = evaluate_batch(rules, current, timeline, run_id=context.run_id,
                              progress=_progress_log(context))
        _log(context, done)
        deliver_in_run(context, rules, timeline)
        yield from results(context, ((one.rule.name, outcome_metadata(one), _check(one))
                                     for one in done),
                           asset_key, check_key, family="SLO", missing=missing)

    return _batch


def _describe(rule: SloRule | None) -> str:
    if rule is None:
        return ""
    what = rule.description or rule.service or rule.name
    return f"{what}: SLO {rule.objective:g} % over {short_duration(rule.period)}"


def _progress_log(context: dg.AssetExecutionContext) -> Any:
    """``backfill checkout: 312 of 1,080 buckets`` in the run log (sources are read on
    several threads: one line at a time)."""
    lock = threading.Lock()

    def progress(rule: str, done: int, total: int) -> None:
        with lock:
            context.log.info(f"backfill {rule}: {done:,} of {total:,} buckets")

    return progress


def _log(context: dg.AssetExecutionContext, done: list[SloOutcome]) -> None:
    """A line per SLO that read history or failed, and per decision that changed
    something; then one summary line."""
    counts: dict[str, int] = {}
    for one in done:
        obs = one.outcome.observation
        counts[str(obs.status)] = counts.get(str(obs.status), 0) + 1
        if one.ingest.error or one.ingest.backfilled:
            context.log.info(describe_ingest(one.rule, one.ingest))
        decision = one.outcome.result.decision
        if decision.events or decision.notifications:
            context.log.info(decision.describe())
            for event in decision.events:
                context.log.info(f"timeline: {event.kind}: {event.reason}")
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    context.log.info(f"{len(done)} SLO(s) evaluated: {summary or 'none'}")


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """A multi-asset, a job and a running schedule (explicit timezone) per batch, and
    the monthly budget report (:mod:`.report_assets`)."""
    slos = {rule.name: rule for rule in rules.rules_of(SloRule)}
    assets: list[dg.AssetsDefinition] = []
    jobs, schedules = [], []
    for batch in batches_of(rules):
        freshness = freshness_fields(rules, GROUP, batch.schedule_name, batch.cron,
                                     batch.timezone)
        assets.extend(build_batch_asset(part, slos, freshness) for part in batch.parts())
        job, schedule = batch_job_and_schedule(batch, [asset_key(n) for n in batch.rules],
                                               what="SLO(s)")
        jobs.append(job)
        schedules.append(schedule)
    return dg.Definitions.merge(dg.Definitions(assets=assets, jobs=jobs, schedules=schedules),
                                build_report_definitions(rules))
