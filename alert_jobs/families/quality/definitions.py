"""Alert quality as Dagster assets: daily rollups and the monthly review.

Lineage: every rule asset → ``alert_timeline`` (the timeline database, an external
asset: the rule runs write it) → ``alert_quality_daily`` (UTC day partitions) →
``alert_quality_monthly`` (UTC month partitions). Both compute from the timeline in
SQL (:mod:`alert_jobs.families.quality.rollup`) and report plain numbers that plot. The
monthly one also writes the HTML review and queues it for ``quality.review_receiver``;
its schedule runs at 09:00 on the 1st (``quality.review_schedule``, explicit timezone)
for the latest month that has ended in UTC.

``alert_quality_catchup_sensor`` fills the gaps the schedules leave: on a new
deployment (or ``make run``) no daily partition exists yet and the daily schedule would
only add yesterday's, at 00:30. Every tick it requests runs for a few of the missing
daily partitions of the last ``CATCHUP_DAYS`` days, newest first, then last month's
review if that is missing; the run key (the partition) keeps each request to one run.
At most ``CATCHUP_PER_TICK`` catch-up runs are queued or running at once, at a lower
queue priority than the checks, so filling in history never delays an alert.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations at
# definition time to find context types and config classes.

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.core.months import month_bounds, previous_month
from alert_jobs.families.quality.config import QualityConfig
from alert_jobs.families.quality.report import markdown_advice
from alert_jobs.families.quality.review import run_review
from alert_jobs.families.quality.rollup import overall_durations, quality_rows, totals
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.resources import TIMELINE_KEY, AlertJobsResource

GROUP = "alert_quality"
DAILY_KEY = dg.AssetKey("alert_quality_daily")
MONTHLY_KEY = dg.AssetKey("alert_quality_monthly")
CHECK_NAME = "actionable_target"
CATCHUP_DAYS = 35  # how far back missing daily rollups are filled in
CATCHUP_PER_TICK = 3  # catch-up runs queued or running at once: a busy machine keeps up
CATCHUP_INTERVAL_SECONDS = 30
CATCHUP_TAG = "alert_jobs/catchup"
# Below the default 0: the queue launches the rules' scheduled checks first.
CATCHUP_TAGS = {CATCHUP_TAG: "true", "dagster/priority": "-1"}
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
             dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _md_table(rows: list[Any]) -> str:
    lines = ["| Rule | Severity | Fired | Notified | Pages | Actionable | Resolve p50 (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rate = "-" if r.actionable_rate is None else f"{r.actionable_rate:.0%}"
        p50 = "-" if r.resolve_p50 is None else f"{r.resolve_p50:.0f}"
        lines.append(f"| {r.rule} | {r.severity} | {r.fired} | {r.notifications} | "
                     f"{r.pages} | {rate} | {p50} |")
    return "\n".join(lines)


def _numbers(rows: list[Any], durations: dict[str, float]) -> dict[str, Any]:
    """Plain ints and floats only (never numpy or Decimal)."""
    meta: dict[str, Any] = {k: (float(v) if isinstance(v, float) else int(v))
                            for k, v in totals(rows).items()}
    meta.update({k: float(v) for k, v in durations.items()})
    return meta


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """The daily and monthly quality assets, their jobs and schedules. They read the
    ``alert_timeline`` asset, which the code location puts downstream of every rule."""
    q = rules.section(QualityConfig)
    start = q.start_date.isoformat()
    daily_parts = dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")
    monthly_parts = dg.MonthlyPartitionsDefinition(start_date=start, timezone="UTC")

    @dg.asset(key=DAILY_KEY, group_name=GROUP, deps=[TIMELINE_KEY],
              partitions_def=daily_parts, kinds={"sql"},
              description="Per rule and severity, per UTC day: alerts fired, notifications, "
                          "pages, actionable and false-positive rates, time to ack / first "
                          "response / resolve (median, p90), flaps, duplicates.")
    def alert_quality_daily(context: dg.AssetExecutionContext,
                            alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        window = context.partition_time_window
        timeline = alert_jobs.timeline()
        with timeline.read() as conn:
            rows = quality_rows(conn, window.start, window.end, by=("rule", "severity"))
            durations = overall_durations(conn, window.start, window.end)
        meta = _numbers(rows, durations)
        meta["rollup"] = dg.MetadataValue.md(_md_table(rows) if rows else "No alert fired.")
        context.log.info(f"{context.partition_key}: {len(rows)} rule/severity group(s), "
                         f"{meta['alerts_fired']} alert(s)")
        return dg.MaterializeResult(metadata=meta)

    @dg.asset(key=MONTHLY_KEY, group_name=GROUP, deps=[DAILY_KEY],
              partitions_def=monthly_parts, kinds={"sql"},
              check_specs=[dg.AssetCheckSpec(
                  CHECK_NAME, asset=MONTHLY_KEY,
                  description=f"more than {q.target_actionable:.0%} of alerts actionable")],
              description="The monthly alert review: every rule that fired, how actionable, "
                          "how fast acked and resolved, and what to do about it.")
    def alert_quality_monthly(context: dg.AssetExecutionContext,
                              alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
        rules_now = alert_jobs.load_rules()
        month = context.partition_key[:7]
        timeline = alert_jobs.timeline()
        result = run_review(rules_now, timeline, month, run_id=context.run_id)
        start, end = month_bounds(month)
        with timeline.read() as conn:
            durations = overall_durations(conn, start, end)
        rows = [r for r, _ in result.review.rows]
        meta = _numbers(rows, durations)
        meta.update({
            "review": dg.MetadataValue.md(result.markdown),
            "html_report": dg.MetadataValue.path(str(result.html_path)),
            "rules_to_act_on": len(result.review.to_act_on),
            **result.review.counts(),
            "recommendations": dg.MetadataValue.md(markdown_advice(result.review)),
            "fire_drills": dg.MetadataValue.md(
                "\n".join(f"- {line}" for line in result.review.drills) or "no rules"),
        })
        if result.outbox_id is not None:
            report = deliver(rules_now, timeline, run_id=context.run_id, raised_by=context.run_id)
            receiver = rules_now.section(QualityConfig).review_receiver
            context.log.info(f"review sent to {receiver}: {report}")
            meta["review_sent_to"] = str(receiver)
        overall = result.review.overall
        check = dg.AssetCheckResult(
            check_name=CHECK_NAME, passed=overall.meets_target is not False,
            severity=dg.AssetCheckSeverity.WARN, description=overall.text(),
            metadata={"actionable_rate": float(overall.rate or 0.0),
                      "target": float(overall.target)})
        return dg.MaterializeResult(metadata=meta, check_results=[check])

    # In-process: a rollup is one SQL step, and a catch-up requests dozens of them.
    daily_job = dg.define_asset_job("alert_quality_daily_job", selection=[DAILY_KEY],
                                    partitions_def=daily_parts,
                                    executor_def=dg.in_process_executor)
    monthly_job = dg.define_asset_job("alert_quality_monthly_job", selection=[MONTHLY_KEY],
                                      partitions_def=monthly_parts)

    @dg.schedule(name="alert_quality_daily_schedule", cron_schedule=q.daily_schedule,
                 execution_timezone=q.timezone, job=daily_job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="Rolls up yesterday (UTC).")
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC)
        day = (when.astimezone(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
        return dg.RunRequest(run_key=day, partition_key=day)

    @dg.schedule(name="alert_quality_monthly_schedule", cron_schedule=q.review_schedule,
                 execution_timezone=q.timezone, job=monthly_job,
                 default_status=dg.DefaultScheduleStatus.RUNNING,
                 description="The monthly alert review of the month that just ended.")
    def monthly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(UTC)
        # The latest month that has ended in UTC (the partitions' timezone). The local
        # date would name a month still running (and a partition that does not exist
        # yet) east of UTC, e.g. 09:00 on the 1st in Australia/Sydney is still the
        # last day of the month in UTC.
        key = f"{previous_month(when.astimezone(UTC))}-01"
        return dg.RunRequest(run_key=key, partition_key=key)

    @dg.sensor(name="alert_quality_catchup_sensor", jobs=[daily_job, monthly_job],
               minimum_interval_seconds=CATCHUP_INTERVAL_SECONDS,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Materializes missing daily rollups of the last {CATCHUP_DAYS} "
                           f"UTC days (newest first, at most {CATCHUP_PER_TICK} runs at once, "
                           "behind the checks in the queue), then last month's review if it "
                           "is missing.")
    def catchup_sensor(context: dg.SensorEvaluationContext
                       ) -> dg.SensorResult | dg.SkipReason:
        requests = catchup_requests(context.instance, daily_parts, monthly_parts,
                                    now=datetime.now(UTC))
        if not requests:
            return dg.SkipReason(f"the last {CATCHUP_DAYS} days' rollups and last month's "
                                 "review exist or are being made")
        return dg.SensorResult(run_requests=requests)

    return dg.Definitions(assets=[alert_quality_daily, alert_quality_monthly],
                          jobs=[daily_job, monthly_job],
                          schedules=[daily_schedule, monthly_schedule],
                          sensors=[catchup_sensor])


def catchup_requests(instance: dg.DagsterInstance, daily: dg.DailyPartitionsDefinition,
                     monthly: dg.MonthlyPartitionsDefinition, *, now: datetime,
                     days: int = CATCHUP_DAYS, limit: int = CATCHUP_PER_TICK
                     ) -> list[dg.RunRequest]:
    """Run requests for missing partitions, at most ``limit`` catch-up runs queued or
    running at once: daily ones of the last ``days`` complete UTC days (newest first: the
    demo shows figures at once), then the latest complete month. Three light reads of
    the instance; runs already requested carry the same run key and are not launched
    twice, and are skipped here while they are in flight."""
    utc_now = now.astimezone(UTC)
    in_flight = instance.get_runs(dg.RunsFilter(tags={CATCHUP_TAG: "true"},
                                                statuses=IN_FLIGHT))
    limit -= len(in_flight)
    if limit <= 0:
        return []
    busy = {run.tags.get("dagster/partition") for run in in_flight}
    recent = daily.get_partition_keys(current_time=utc_now)[-days:]
    done = instance.get_materialized_partitions(DAILY_KEY)
    requests = [dg.RunRequest(run_key=f"catchup:{key}", partition_key=key,
                              job_name="alert_quality_daily_job", tags=CATCHUP_TAGS)
                for key in reversed(recent) if key not in done and key not in busy][:limit]
    months = monthly.get_partition_keys(current_time=utc_now)
    if len(requests) < limit and months and months[-1] not in busy and \
            months[-1] not in instance.get_materialized_partitions(MONTHLY_KEY):
        requests.append(dg.RunRequest(run_key=f"catchup:{months[-1]}",
                                      partition_key=months[-1],
                                      job_name="alert_quality_monthly_job", tags=CATCHUP_TAGS))
    return requests
