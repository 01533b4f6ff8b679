"""Heartbeat sensor: every 30 s, overdue heartbeats go down (and recoveries resolve).

The tick evaluates in the sensor (no run), so the delivery run it requests gets the
outbox ids the tick raised and sends exactly those: a heartbeat alert is delivered by
its own sensor's run, never by whichever rule run delivers next (issue #12).

The tick reads only overdue rows (one range scan of the ``alert_after`` index), so
100,000 registered checks cost about as much as ten. The rules file's checks are
synced into the table only when they changed (their hash is the cursor). Every tick
that did its work pings the external dead-man URL, so a stopped daemon is noticed by
someone else. A broken rules file raises ``rules_file_invalid`` (its last good copy keeps
the checks running).
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.

import dagster as dg

from alert_jobs.config import load_rules_or_last_good
from alert_jobs.families.heartbeat.rules_file import report_rules_file
from alert_jobs.families.heartbeat.run import declared_hash, evaluate_due
from alert_jobs.families.heartbeat.watch import ping_deadman
from alert_jobs.runtime.delivery_job import delivery_request
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.runtime.tick import tick_outbox_ids
from alert_jobs.store import utcnow

SENSOR_NAME = "heartbeat_sensor"


def build_heartbeat_sensor(interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job_name=DELIVERY_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks heartbeats down on the first tick after their deadline, resolves "
                    "them when pings return, and pings the external dead-man URL.",
    )
    def heartbeat_sensor(context: dg.SensorEvaluationContext,
                         alert_jobs: AlertJobsResource) -> dg.SensorResult:
        now = utcnow()
        timeline = alert_jobs.timeline()
        loaded = load_rules_or_last_good(alert_jobs.rules_file)
        rules = loaded.rules
        if loaded.error is not None:
            context.log.error(f"rules file invalid, using its last good copy:\n{loaded.error}")
        rules_outcomes = report_rules_file(loaded, alert_jobs.rules_file, timeline, now=now)
        digest = declared_hash(rules)
        report = evaluate_due(rules, timeline, now=now, sync_declared=digest != context.cursor)
        for outcome in [*rules_outcomes, *report.outcomes]:
            context.log.info(outcome.result.decision.describe())
        problem = ping_deadman(rules, body=f"heartbeat sensor: {report.evaluated} evaluated")
        if problem:
            context.log.warning(problem)
        raised = tick_outbox_ids(timeline, rules, [*rules_outcomes, *report.outcomes],
                                 report.outbox_ids, now=now)
        runs = [delivery_request(f"heartbeats-{now.strftime('%Y-%m-%dT%H:%M:%S.%f')}", raised,
                                 SENSOR_NAME)] if raised else []
        return dg.SensorResult(run_requests=runs, cursor=digest,
                               skip_reason=None if runs else
                               f"{report.evaluated} heartbeat(s) evaluated, nothing to send")

    return heartbeat_sensor
