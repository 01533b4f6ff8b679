"""Retention (issue #20, 4): old events, evaluations, delivered notifications and pings
go, in short batches; anything younger than its setting, undelivered notifications,
current alerts and the alert-quality episodes never do. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from alert_jobs.assets.retention import timeline_retention
from alert_jobs.config.retention import RetentionConfig
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.store import heartbeat_pings
from alert_jobs.runtime.family import family_trims
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline, schema
from alert_jobs.store.retention import trim
from tests.conftest import in_memory_instance

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def count(timeline: Timeline, table: sa.Table, where: Any = None) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if where is not None:
        query = query.where(where)
    with timeline.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def seed(timeline: Timeline) -> None:
    """A real alert history (an episode, its events, evaluations and notification), then
    the same kinds of rows around each cutoff, written in time order as the engine
    writes them."""
    policy = RulePolicy(rule="dead_letters", receivers=("console",))
    for days_ago, status in ((500, Status.ALERT), (499, Status.OK)):
        timeline.alerts.process(Observation("dead_letters", Status(status), {}, 1.0),
                                policy, now=NOW - days_ago * DAY, run_id=f"r{days_ago}")
    e, v, o = schema.events, schema.evaluations, schema.outbox
    with timeline.engine.begin() as conn:
        conn.execute(e.insert(), [
            {"at": NOW - d * DAY, "fingerprint": "f", "rule": "r", "kind": "firing",
             "reason": "", "actor": "system", "source": "engine", "payload": {}}
            for d in (450, 402, 401, 399, 1)])
        conn.execute(v.insert(), [
            {"at": NOW - d * DAY, "rule": "r", "fingerprint": "f", "status": "ok",
             "expected": "", "summary": "", "state_after": "inactive", "details": {}}
            for d in (100, 40, 36, 34, 0)])
        common = {"receiver": "console", "fingerprint": "f", "rule": "r", "kind": "firing",
                  "payload": {}, "attempts": 1, "next_attempt_at": NOW - 30 * DAY,
                  "delivered_at": None, "failed_at": None}
        conn.execute(o.insert(), [
            {**common, "dedup_key": "old-delivered", "created_at": NOW - 30 * DAY,
             "delivered_at": NOW - 8 * DAY},
            {**common, "dedup_key": "old-failed", "created_at": NOW - 30 * DAY,
             "failed_at": NOW - 8 * DAY},
            {**common, "dedup_key": "old-undelivered", "created_at": NOW - 30 * DAY},
            {**common, "dedup_key": "recent", "created_at": NOW - 6 * DAY,
             "delivered_at": NOW - 6 * DAY}])
        conn.execute(heartbeat_pings.insert(), [
            {"slug": slug, "at": NOW - timedelta(minutes=i), "kind": "success"}
            for slug, n in (("busy", 130), ("quiet", 40)) for i in range(n)])


def test_retention_removes_what_is_old_and_nothing_else(db_url: str) -> None:
    timeline = Timeline(db_url)
    timeline.upgrade()
    seed(timeline)
    policy = RetentionConfig(batch=2)  # tiny batches: the loop must go round many times
    e, v, o = schema.events, schema.evaluations, schema.outbox
    young = {"events": count(timeline, e, e.c.at >= NOW - policy.events),
             "evaluations": count(timeline, v, v.c.at >= NOW - policy.evaluations)}
    old = {"events": count(timeline, e, e.c.at < NOW - policy.events),
           "evaluations": count(timeline, v, v.c.at < NOW - policy.evaluations)}
    assert old["events"] >= 5 and old["evaluations"] >= 5  # real history + back-dated
    kept = {t.name: count(timeline, t) for t in (schema.episodes, schema.alerts,
                                                 schema.silences, schema.groups)}
    newest_busy = sa.select(heartbeat_pings.c.id).where(
        heartbeat_pings.c.slug == "busy").order_by(heartbeat_pings.c.id.desc()).limit(100)
    with timeline.engine.connect() as conn:
        busy_kept = set(conn.execute(newest_busy).scalars())

    trimmed = trim(timeline, policy, NOW, family_trims())

    assert trimmed.rows["alert_events"] == old["events"]
    assert trimmed.rows["alert_evaluations"] == old["evaluations"]
    assert trimmed.rows["alert_outbox"] == 2  # delivered and failed for good, 8 days ago
    assert trimmed.rows["alert_heartbeat_pings"] == 30
    assert trimmed.batches > trimmed.total // 2  # batches of two
    assert count(timeline, e) == young["events"]  # everything younger stays
    assert count(timeline, v) == young["evaluations"]
    with timeline.engine.connect() as conn:
        keys = set(conn.execute(sa.select(o.c.dedup_key)).scalars())
        pings = set(conn.execute(sa.select(heartbeat_pings.c.id).where(
            heartbeat_pings.c.slug == "busy")).scalars())
    assert {"old-undelivered", "recent"} <= keys and not {"old-delivered", "old-failed"} & keys
    assert pings == busy_kept  # the newest 100 of the busy check
    assert count(timeline, heartbeat_pings, heartbeat_pings.c.slug == "quiet") == 40
    assert {t.name: count(timeline, t) for t in (schema.episodes, schema.alerts,
                                                 schema.silences, schema.groups)} == kept
    assert kept["alert_episodes"] == 1  # the quality rollups' source survived
    again = trim(timeline, policy, NOW, family_trims())  # nothing left to remove
    assert again.total == 0
    timeline.dispose()


def test_the_retention_asset_reports_what_it_removed(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'timeline.db'}"
    timeline = Timeline(db_url)
    timeline.upgrade()
    seed(timeline)
    rules = tmp_path / "alerts.yaml"
    rules.write_text("retention: {events: 30d, evaluations: 7d}\n")
    resource = AlertJobsResource(rules_file=str(rules), database_url=db_url)
    with in_memory_instance() as instance:
        result = dg.materialize([timeline_retention], instance=instance,
                                resources={"alert_jobs": resource})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in
                event.event_specific_data.materialization.metadata.items()}  # type: ignore[union-attr]
    assert metadata["removed_events"] > 0 and metadata["removed_evaluations"] > 0
    assert metadata["removed_rows"] == sum(
        n for k, n in metadata.items() if k.startswith("removed_") and k != "removed_rows")
    assert count(timeline, schema.events, schema.events.c.at < datetime.now(UTC) - 30 * DAY) == 0
    rules.write_text("retention: {enabled: false}\n")  # off: nothing removed
    with in_memory_instance() as instance:
        off = dg.materialize([timeline_retention], instance=instance,
                             resources={"alert_jobs": resource})
    [event] = off.get_asset_materialization_events()
    assert event.event_specific_data.materialization.metadata["removed_rows"].value == 0  # type: ignore[union-attr]
    timeline.dispose()


def test_alert_jobs_db_trim_does_it_now(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from alert_jobs.cli.main import main

    db_url = f"sqlite:///{tmp_path / 'timeline.db'}"
    timeline = Timeline(db_url)
    timeline.upgrade()
    seed(timeline)
    rules = tmp_path / "alerts.yaml"
    rules.write_text("retention: {events: 30d}\n")
    before = count(timeline, schema.events)
    assert main(["--rules", str(rules), "--database-url", db_url, "db", "trim"]) == 0
    out = capsys.readouterr().out
    assert "alert_events" in out and "batches" in out
    assert count(timeline, schema.events) < before
    assert count(timeline, schema.events,
                 schema.events.c.at < datetime.now(UTC) - 30 * DAY) == 0
    timeline.dispose()


def test_an_evaluation_written_out_of_time_order_waits_and_nothing_young_goes(
        db_url: str) -> None:
    """Evaluations have no time index: batches stop at the first row written after the
    cutoff. A back-dated row above it waits (the positive control: once the bound moves
    past it, it goes), and a young row is never removed either way."""
    timeline = Timeline(db_url)
    timeline.upgrade()
    v = schema.evaluations
    row = {"rule": "r", "fingerprint": "f", "status": "ok", "expected": "", "summary": "",
           "state_after": "inactive", "details": {}}
    with timeline.engine.begin() as conn:
        conn.execute(v.insert(), [{**row, "at": NOW - d * DAY} for d in (60, 50, 10, 40)])
    policy = RetentionConfig()
    trim(timeline, policy, NOW, {})
    with timeline.engine.connect() as conn:
        left = sorted(round((NOW - at) / DAY) for at in conn.execute(sa.select(v.c.at)).scalars())
    assert left == [10, 40]  # 60 and 50 went; 40 (written after the young one) waits
    trim(timeline, policy, NOW + 26 * DAY, {})  # the young row is old now: the bound moves
    assert count(timeline, v) == 0
    timeline.dispose()



def test_retention_may_not_cut_a_baselines_history() -> None:
    from alert_jobs.config import RulesError, parse_rules

    rule = """
checks:
  sql_metric:
    - name: orders
      database: sqlite://
      query: SELECT 1
      expect: {baseline: {history: 28d}}
"""
    with pytest.raises(RulesError, match=r"shorter than rule 'orders'.s baseline history"):
        parse_rules(rule + "retention: {evaluations: 20d}\n")
    assert parse_rules(rule + "retention: {evaluations: 29d}\n")  # a day more: fine
    assert parse_rules(rule + "retention: {evaluations: 20d, enabled: false}\n")
