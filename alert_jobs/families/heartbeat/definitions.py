"""The ``heartbeats`` asset: every heartbeat's state, summarized, with an asset check.

Materializing it evaluates overdue heartbeats now (the sensor does the same every
30 s), then records how many checks are up, late, down, paused, started or new as
plain-number metadata, so the UI plots the fleet's health over time. The asset check
fails (ERROR) while any check is down, WARN while any is late.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations.

from collections import Counter
from typing import Any

import dagster as dg

from alert_jobs.config import RulesFile
from alert_jobs.families.heartbeat.check import HeartbeatStatus, evaluate
from alert_jobs.families.heartbeat.config import (
    HeartbeatCheck,
    HeartbeatSettings,
    SelfMonitoring,
)
from alert_jobs.families.heartbeat.instance_watch import build_instance_watch_sensor
from alert_jobs.families.heartbeat.run import evaluate_due
from alert_jobs.families.heartbeat.sensor import build_heartbeat_sensor
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.runtime.deliver import deliver
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import utcnow

ASSET_KEY = dg.AssetKey("heartbeats")
CHECK_NAME = "none_down"
LISTED = 50  # checks named in the metadata table; the counts cover all of them


def summarize(rows: list[Any], now: Any) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Counts per status (plain ints) and the checks that need attention."""
    counts: Counter[str] = Counter()
    attention = []
    for row in rows:
        ev = evaluate(row.state, now)
        counts[str(ev.status)] += 1
        if ev.status in (HeartbeatStatus.DOWN, HeartbeatStatus.LATE):
            reason = "; ".join(ev.reasons.values()) or "late"
            attention.append((row.state.slug, str(ev.status), reason))
    meta: dict[str, Any] = {f"checks_{s}": int(counts.get(str(s), 0)) for s in HeartbeatStatus}
    meta["checks_total"] = len(rows)
    return meta, attention


@dg.asset(
    key=ASSET_KEY,
    group_name="heartbeats",
    check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=ASSET_KEY,
                                   description="no heartbeat is down (WARN while one is late)")],
    description="States of all heartbeats (pings expected from jobs; silence pages).",
    kinds={"sql"},
    tags={"alert_jobs/family": "heartbeats"},
)
def heartbeats(context: dg.AssetExecutionContext,
               alert_jobs: AlertJobsResource) -> dg.MaterializeResult:
    rules: RulesFile = alert_jobs.load_rules()
    timeline = alert_jobs.timeline()
    now = utcnow()
    report = evaluate_due(rules, timeline, now=now, run_id=context.run_id)
    for outcome in report.outcomes:
        context.log.info(outcome.result.decision.describe())
    if report.outcomes:
        sent = deliver(rules, timeline, run_id=context.run_id, raised_by=context.run_id)
        context.log.info(f"delivery: {sent}")
    rows = HeartbeatStore(timeline).rows()
    meta, attention = summarize(rows, now)
    meta["evaluated_now"] = int(report.evaluated)
    if attention:
        table = "\n".join(f"| {slug} | {status} | {why} |" for slug, status, why
                          in attention[:LISTED])
        meta["attention"] = dg.MetadataValue.md(f"| check | status | why |\n|---|---|---|\n"
                                                f"{table}")
    down = meta["checks_down"]
    check = dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not attention,
        severity=dg.AssetCheckSeverity.ERROR if down else dg.AssetCheckSeverity.WARN,
        description=f"{down} down, {meta['checks_late']} late of {len(rows)} heartbeat(s)",
        metadata={"down": int(down), "late": int(meta["checks_late"])},
    )
    return dg.MaterializeResult(metadata=meta, check_results=[check])


def build_definitions(rules: RulesFile) -> dg.Definitions:
    """The ``heartbeats`` asset with a schedule that records it every 15 minutes, the
    heartbeat sensor (which alerts), and the instance-watch sensor."""
    settings = rules.section(HeartbeatSettings)
    schedule = dg.ScheduleDefinition(
        name="heartbeats_summary_schedule",
        cron_schedule="*/15 * * * *",
        execution_timezone=rules.defaults.timezone,
        target=dg.AssetSelection.assets(ASSET_KEY),
        default_status=dg.DefaultScheduleStatus.RUNNING
        if rules.rules_of(HeartbeatCheck) or settings.auto_create.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description="Records the heartbeats' states (the sensor alerts; this plots).",
    )
    return dg.Definitions(
        assets=[heartbeats], schedules=[schedule],
        sensors=[build_heartbeat_sensor(settings.sensor_interval_seconds),
                 build_instance_watch_sensor(interval_seconds=round(
                     rules.section(SelfMonitoring).watch_interval.total_seconds()))])
