"""The code location: ``Definitions`` built from the rules file.

Thin on purpose: each family module builds its own assets and schedules; this file
only assembles them with the shared resource. The rules file is read here to know
which rules exist (one asset per rule); thresholds are re-read at every run.
"""

from __future__ import annotations

import dagster as dg

from alert_jobs.notify.registry import receiver_resource
from alert_jobs.resources import AlertJobsResource
from alert_jobs.rules_fallback import load_rules_or_last_good
from assets.alert_quality import build_alert_quality_definitions
from assets.heartbeats import build_heartbeat_definitions
from assets.operator_jobs import OPERATOR_JOBS
from assets.redis_quota import build_redis_quota_definitions
from assets.score_drift import build_score_drift_definitions
from assets.sql_metric import build_sql_metric_definitions
from sensors.escalation import escalation_sensor
from sensors.heartbeats import build_heartbeat_sensor
from sensors.instance_watch import build_instance_watch_sensor, own_asset_keys
from sensors.outbox import outbox_retry_sensor


def build_definitions(rules_file: str | None = None) -> dg.Definitions:
    resource = AlertJobsResource(rules_file=rules_file) if rules_file else AlertJobsResource()
    rules = load_rules_or_last_good(resource.rules_file).rules  # a typo must not stop alerts
    sql_assets, sql_schedules = build_sql_metric_definitions(rules)
    redis_assets, redis_schedules, redis_jobs = build_redis_quota_definitions(rules)
    drift_assets, drift_schedules, drift_sensors, drift_jobs = \
        build_score_drift_definitions(rules)
    hb_assets, hb_schedules = build_heartbeat_definitions(rules)
    checked_assets = [*sql_assets, *redis_assets, *drift_assets, *hb_assets]
    quality_assets, quality_jobs, quality_schedules = build_alert_quality_definitions(
        rules, [key for a in checked_assets if isinstance(a, dg.AssetsDefinition)
                for key in a.keys])
    assets = [*checked_assets, *quality_assets]
    return dg.Definitions(
        assets=assets,
        jobs=[*OPERATOR_JOBS, *redis_jobs, *drift_jobs, *quality_jobs],
        schedules=[*sql_schedules, *redis_schedules, *drift_schedules, *hb_schedules,
                   *quality_schedules],
        sensors=[outbox_retry_sensor, escalation_sensor, *drift_sensors,
                 build_heartbeat_sensor(rules.heartbeats.sensor_interval_seconds),
                 build_instance_watch_sensor(own_asset_keys(assets))],
        # Receivers appear in the UI's resources (secrets as EnvVar names, never values).
        resources={"alert_jobs": resource,
                   **{f"receiver_{r.name}": receiver_resource(r) for r in rules.receivers}},
    )


defs = build_definitions()
