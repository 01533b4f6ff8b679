"""The Dagster side of a batch of rules (one multi-asset, job and schedule per cron and
timezone), shared by the families that evaluate their rules in batches.

A batch's multi-asset can be subset (Materialize on one rule evaluates only that rule):
:func:`selected_rules` says which of the batch's rules the run was asked for and which
of those the rules file no longer has; the run then delivers what it raised
(:func:`deliver_in_run`) and yields each rule's materialization and check
(:func:`results`). :func:`batch_job_and_schedule` gives the batch's job and its running
schedule that skips a tick while the last run is going (:mod:`.no_overlap`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import dagster as dg

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.runtime.batching import Batch
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.no_overlap import batch_job_tags, unless_running
from alert_jobs.store import Timeline

R = TypeVar("R", bound=RuleBase)
KeyOf = Callable[[str], dg.AssetKey]
CheckKeyOf = Callable[[str], dg.AssetCheckKey]


def selected_rules(context: dg.AssetExecutionContext, batch: Batch, rules: RulesFile,
                   model: type[R], asset_key: KeyOf, check_key: CheckKeyOf
                   ) -> tuple[list[R], list[str]]:
    """The batch's rules this run materializes or checks (in batch order), and the
    names among them the rules file does not have (any more)."""
    assets, checks = context.selected_asset_keys, context.selected_asset_check_keys
    wanted = [name for name in batch.rules
              if asset_key(name) in assets or check_key(name) in checks]
    known = {rule.name: rule for rule in rules.rules_of(model)}
    return ([known[name] for name in wanted if name in known],
            [name for name in wanted if name not in known])


def deliver_in_run(context: dg.AssetExecutionContext, rules: RulesFile, timeline: Timeline
                   ) -> None:
    """Send what this run raised (its outbox rows), and say how it went in the run log."""
    report = deliver(rules, timeline, run_id=context.run_id, raised_by=context.run_id)
    context.log.info(f"delivery: {report}")
    for error in report.errors:
        context.log.warning(f"delivery failed: {error}")


def results(context: dg.AssetExecutionContext, each: Iterable[tuple[str, dict[str, Any],
                                                                     dg.AssetCheckResult]],
            asset_key: KeyOf, check_key: CheckKeyOf, *, family: str, missing: Sequence[str]
            ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Each rule's materialization (with its check) or check alone, as selected; then a
    failure naming rules that are selected but no longer in the rules file (the others
    are materialized first)."""
    assets, checks = context.selected_asset_keys, context.selected_asset_check_keys
    for name, metadata, check in each:
        chosen = [check] if check_key(name) in checks else []
        if asset_key(name) in assets:
            yield dg.MaterializeResult(asset_key=asset_key(name), metadata=metadata,
                                       check_results=chosen)
        else:
            yield from chosen
    if missing:
        raise dg.Failure(f"unknown {family} rule(s) {', '.join(missing)}; reload the code "
                         "location after editing rule names in the rules file")


def batch_job_and_schedule(batch: Batch, keys: Sequence[dg.AssetKey], *, what: str
                           ) -> tuple[Any, dg.ScheduleDefinition]:
    """The batch's job (tagged with its batch) and its schedule: running, with its
    explicit timezone, one run per tick, no run while the last one is going. ``what``
    names the rules in descriptions ("sql_metric rule(s)", "SLO(s)")."""
    job = dg.define_asset_job(batch.job_name, selection=dg.AssetSelection.assets(*keys),
                              tags=batch_job_tags(batch.name, batch.cron, batch.timezone),
                              description=f"Evaluate the {what} of {batch.name} in one run.")

    @dg.schedule(name=batch.schedule_name, cron_schedule=batch.cron,
                 execution_timezone=batch.timezone, job=job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Evaluates the {len(batch.rules)} {what} of {batch.name} in "
                             f"one run: {', '.join(batch.rules)[:300]}")
    def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return unless_running(context, batch.name, dg.RunRequest())

    return job, _tick
