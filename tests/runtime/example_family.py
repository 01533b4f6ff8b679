"""``disk_space``: alert when a filesystem keeps less free space than its rule expects.

A whole check family in one module: the README's example of the family seam.
"""

from collections.abc import Mapping
from datetime import datetime
from shutil import disk_usage
from typing import Annotated, Any

import dagster as dg
from pydantic import Field

from alert_jobs.config import RuleBase, RulesFile, RulesSection
from alert_jobs.core.model import Observation, Status, error_observation
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations
from alert_jobs.runtime.family import Family
from alert_jobs.runtime.resources import AlertJobsResource, check_severity
from alert_jobs.runtime.simulation import InputError, Series, TestClock, series_of
from alert_jobs.store import Timeline, utcnow

WHY = "A full disk stops every write on it: databases, logs, uploads."


class DiskSpaceRule(RuleBase):
    """``checks.disk_space[i]``: a filesystem and the share of it that must stay free."""

    path: str
    min_free_percent: Annotated[float, Field(gt=0, lt=100)] = 10


def judge(rule: DiskSpaceRule, total: int, free: int) -> Observation:
    """Pure: the numbers in, the observation out."""
    percent = 100.0 * free / total
    good = percent >= rule.min_free_percent
    return Observation(rule.name, Status.OK if good else Status.ALERT, dict(rule.labels),
                       percent, summary=f"Expected at least {rule.min_free_percent:g} % free "
                                        f"on {rule.path}, got {percent:.1f} %")


def observe(rule: DiskSpaceRule) -> Observation:
    """The source: one ``statvfs``; a path that cannot be read is an error alert."""
    try:
        usage = disk_usage(rule.path)
    except OSError as exc:
        return error_observation(rule.name, f"{rule.path}: {exc.strerror}", rule.labels)
    return judge(rule, usage.total, usage.free)


def evaluate(rules: RulesFile, rule: DiskSpaceRule, timeline: Timeline, *, now: datetime,
             run_id: str | None) -> list[RuleOutcome]:
    """One rule, now, through the engine (what ``alert-jobs check`` and the asset run)."""
    return process_observations(rules, rule, timeline, [(observe(rule), WHY)], now=now,
                                run_id=run_id)


class Simulated:
    """``alert-jobs rules test``: the rule judged from the test's ``free_percent`` series."""

    def __init__(self, rule: DiskSpaceRule, free_percent: Series):
        self.rule, self.free_percent = rule, free_percent

    def step(self, rules: RulesFile, timeline: Timeline, *, now: datetime,
             since: datetime | None) -> list[RuleOutcome]:
        point = self.free_percent.at(now)
        if point.error is not None:
            obs = error_observation(self.rule.name, f"{self.rule.path}: {point.error}",
                                    self.rule.labels)
        elif point.number is None:
            obs = Observation(self.rule.name, Status.NODATA, dict(self.rule.labels), None,
                              summary=f"No reading of {self.rule.path}")
        else:
            obs = judge(self.rule, 100, round(point.number))
        return process_observations(rules, self.rule, timeline, [(obs, WHY)], now=now,
                                    run_id=None)


def simulate(rule: DiskSpaceRule, inputs: Mapping[str, Any], clock: TestClock) -> Simulated:
    if set(inputs) != {"free_percent"}:
        raise InputError((), "a disk_space rule's input is free_percent: a series")
    return Simulated(rule, series_of(inputs["free_percent"], clock, ("free_percent",)))


def rule_asset(name: str) -> dg.AssetsDefinition:
    """The rule as an asset with a WARN/ERROR check; materializing it evaluates the rule."""
    key = dg.AssetKey(["disk_space", name])

    @dg.asset(key=key, group_name="disk_space",
              check_specs=[dg.AssetCheckSpec("enough_free", asset=key)])
    def disk(context: dg.AssetExecutionContext,
             alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        rules, timeline = alert_jobs.load_rules(), alert_jobs.timeline()
        rule = rules.rule(name)
        (outcome,) = evaluate(rules, rule, timeline, now=utcnow(), run_id=context.run_id)
        deliver(rules, timeline, run_id=context.run_id)
        obs = outcome.observation
        return dg.MaterializeResult(
            metadata={"free_percent": float(obs.value or 0.0)},
            check_results=[dg.AssetCheckResult(
                check_name="enough_free", passed=obs.status == Status.OK,
                severity=check_severity(obs.status, rule.severity), description=obs.summary)])

    return disk


def definitions(rules: RulesFile) -> dg.Definitions:
    """One asset and one schedule (explicit timezone) per rule."""
    rules_here = rules.rules_of(DiskSpaceRule)
    return dg.Definitions(
        assets=[rule_asset(r.name) for r in rules_here],
        schedules=[dg.ScheduleDefinition(
            name=f"{r.name}_schedule", cron_schedule=rules.schedule_for(r),
            execution_timezone=rules.timezone_for(r),
            target=dg.AssetSelection.assets(dg.AssetKey(["disk_space", r.name])),
            default_status=dg.DefaultScheduleStatus.RUNNING) for r in rules_here])


FAMILY = Family(
    name="disk_space",
    package=__name__,
    description="free space of a filesystem",
    rules=RulesSection(family="disk_space", rule_model=DiskSpaceRule, order=60),
    definitions=definitions,
    evaluate=evaluate,
    simulate=simulate,
)
