"""The code location: ``Definitions`` built from the rules file.

Thin on purpose: each family module builds its own assets and schedules; this file
only assembles them with the shared resource. The rules file is read here to know
which rules exist (one asset per rule); thresholds are re-read at every run.
"""

from __future__ import annotations

import dagster as dg

from alert_jobs.config import load_rules
from alert_jobs.notify.registry import receiver_resource
from alert_jobs.resources import AlertJobsResource
from assets.operator_jobs import OPERATOR_JOBS
from assets.redis_quota import build_redis_quota_definitions
from assets.score_drift import build_score_drift_definitions
from assets.sql_metric import build_sql_metric_definitions
from sensors.escalation import escalation_sensor
from sensors.outbox import outbox_retry_sensor


def build_definitions(rules_file: str | None = None) -> dg.Definitions:
    resource = AlertJobsResource(rules_file=rules_file) if rules_file else AlertJobsResource()
    rules = load_rules(resource.rules_file)
    sql_assets, sql_schedules = build_sql_metric_definitions(rules)
    redis_assets, redis_schedules, redis_jobs = build_redis_quota_definitions(rules)
    drift_assets, drift_schedules, drift_sensors, drift_jobs = \
        build_score_drift_definitions(rules)
    return dg.Definitions(
        assets=[*sql_assets, *redis_assets, *drift_assets],
        jobs=[*OPERATOR_JOBS, *redis_jobs, *drift_jobs],
        schedules=[*sql_schedules, *redis_schedules, *drift_schedules],
        sensors=[outbox_retry_sensor, escalation_sensor, *drift_sensors],
        # Receivers appear in the UI's resources (secrets as EnvVar names, never values).
        resources={"alert_jobs": resource,
                   **{f"receiver_{r.name}": receiver_resource(r) for r in rules.receivers}},
    )


defs = build_definitions()
