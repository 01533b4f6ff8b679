"""The ``external_sweep`` sensor: pushed alerts not sent again before ``endsAt`` resolve.

Every push sweeps first, but when Prometheus stops pushing altogether (it died, or the
network between us did) no push comes to do it: this sensor resolves them every
``external.sweep_interval_seconds`` (30 s). It evaluates in the tick (one indexed range
read when nothing has ended) and requests a delivery run for exactly the rows it raised,
as the heartbeat sensor does. Sensors run on the daemon's clock; ``endsAt`` is UTC.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.

import dagster as dg

from alert_jobs.config import RulesFile, load_rules_or_last_good
from alert_jobs.families.external.config import ExternalSettings
from alert_jobs.families.external.run import sweep
from alert_jobs.runtime.delivery_job import delivery_request
from alert_jobs.runtime.resources import DELIVERY_JOB, AlertJobsResource
from alert_jobs.runtime.tick import tick_outbox_ids
from alert_jobs.store import utcnow

SENSOR_NAME = "external_sweep"


def build_sweep_sensor(interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job_name=DELIVERY_JOB,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Resolves alerts pushed to /api/v2/alerts that were not sent again "
                    "before their endsAt (the sender stopped pushing them).",
    )
    def external_sweep(context: dg.SensorEvaluationContext,
                       alert_jobs: AlertJobsResource) -> dg.SensorResult:
        now = utcnow()
        timeline = alert_jobs.timeline()
        rules = load_rules_or_last_good(alert_jobs.rules_file).rules
        outcomes = sweep(rules, timeline, now=now)
        for outcome in outcomes:
            context.log.info(outcome.result.decision.describe())
        raised = tick_outbox_ids(timeline, rules, outcomes, (), now=now)
        runs = [delivery_request(f"external-{now.strftime('%Y-%m-%dT%H:%M:%S.%f')}", raised,
                                 SENSOR_NAME)] if raised else []
        return dg.SensorResult(run_requests=runs, skip_reason=None if runs else
                               f"{len(outcomes)} pushed alert(s) resolved, nothing to send")

    return external_sweep


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """The sweep sensor (pushed alerts have no assets: Prometheus evaluates them)."""
    settings = rules.section(ExternalSettings)
    return dg.Definitions(sensors=[build_sweep_sensor(settings.sweep_interval_seconds)])
