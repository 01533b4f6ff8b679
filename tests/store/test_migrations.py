"""alembic owns the schema: fresh databases, databases written before alembic, and the
revisions against the tables the code declares.

The two dumps in ``tests/store/legacy/`` are timelines written by alert-jobs at schema
version 6, before alembic (see ``legacy/README.md``): real alerts, acks, a silence,
outbox rows, episodes, heartbeats, Redis windows and drift references. Upgrading them
must keep every row and read the old alerts back through today's stores.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from alert_jobs.core.model import AlertState
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.store import Timeline, migrate, schema
from alert_jobs.store.db import make_engine

LEGACY = Path(__file__).parent / "legacy"
# What the legacy timelines hold (written by the recipe in legacy/README.md).
LEGACY_TABLES = {"alert_alerts", "alert_events", "alert_evaluations", "alert_silences",
                 "alert_outbox", "alert_rule_settings", "alert_redis_samples",
                 "alert_redis_windows", "alert_notify_queue", "alert_groups",
                 "alert_drift_references", "alert_heartbeats", "alert_heartbeat_pings",
                 "alert_episodes"}


def _load_legacy(url: str) -> None:
    """Create the pre-alembic timeline from its dump (the schema and the data)."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        script = gzip.decompress((LEGACY / "timeline_v6_sqlite.sql.gz").read_bytes()).decode()
        raw = engine.raw_connection()
        try:
            raw.driver_connection.executescript(script)  # type: ignore[union-attr]
        finally:
            raw.close()
    else:
        script = gzip.decompress((LEGACY / "timeline_v6_postgresql.sql.gz").read_bytes())
        raw = engine.raw_connection()
        try:  # the plain query protocol: the dump's many statements, no placeholders
            raw.cursor().execute(script.decode())
            raw.commit()
        finally:
            raw.close()
    engine.dispose()


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0)
                  for t in sorted(LEGACY_TABLES)}
    engine.dispose()
    return counts


def test_head_constant_is_the_newest_revision() -> None:
    """``migrate.HEAD`` spares start-up an alembic import; it must name the real head."""
    config = migrate._config(None)  # type: ignore[arg-type]  # only the script location
    assert ScriptDirectory.from_config(config).get_current_head() == migrate.revision_id(
        migrate.HEAD)


def test_a_pre_alembic_timeline_is_upgraded_in_place_with_its_data(db_url: str) -> None:
    _load_legacy(db_url)
    before = _counts(db_url)
    assert before["alert_alerts"] == 21 and before["alert_episodes"] == 152
    timeline = Timeline(db_url)
    assert timeline.schema_version() == 6  # read from the old version table

    assert timeline.upgrade() == []  # the same schema: adopted, nothing to apply
    assert timeline.upgrade() == []  # and again
    assert _counts(db_url) == before
    with timeline.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
                            ).scalar() == "0006"

    # The old alerts, read back through today's stores.
    firing = {a.rule: a for a in timeline.alerts.list()}
    assert set(firing) == {"dead_letters", "orders_last_hour", "model_scores", "nightly_backup"}
    dead = firing["dead_letters"]
    assert dead.state == AlertState.FIRING and dead.acked_by == "alice"
    assert dead.ack_outcome == "actionable" and dead.labels == {"team": "payments"}
    assert dead.fired_at is not None and dead.fired_at.tzinfo is not None
    (silence,) = timeline.silences.list()
    assert silence.created_by == "bob" and silence.comment == "known gap"
    assert timeline.rule_settings.disabled() == {"model_scores"}
    assert any(e["kind"] == "acked" and e["actor"] == "alice"
               for e in timeline.events.list(rule="dead_letters"))
    assert all(r["delivered_at"] is not None for r in timeline.outbox.rows())
    (beat,) = HeartbeatStore(timeline).rows()
    assert beat.state.slug == "nightly_backup" and beat.state.last_ping is not None

    # And the upgraded timeline keeps working: a new evaluation, an ack, an episode.
    from alert_jobs.core.engine import RulePolicy
    from alert_jobs.core.model import Observation, Status

    result = timeline.alerts.process(
        Observation("orders_last_hour", Status.OK, {}, 5.0, summary="orders are back"),
        RulePolicy(rule="orders_last_hour"))
    assert result.decision.record.state == AlertState.RESOLVED
    assert _counts(db_url)["alert_episodes"] == before["alert_episodes"]


def test_upgraded_legacy_and_fresh_schemas_match_the_code(db_url: str, tmp_path: Path) -> None:
    """The revisions create exactly the tables the code declares (core and families)."""
    import alert_jobs.families.heartbeat.store
    import alert_jobs.families.redis_quota.store
    import alert_jobs.families.score_drift.store  # noqa: F401  (their tables)

    _load_legacy(db_url)
    Timeline(db_url).upgrade()
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Timeline(fresh_url).upgrade()
    for url in (db_url, fresh_url):
        engine = make_engine(url)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, schema.metadata)
        engine.dispose()
        # Version tables are not the code's: alembic's own, and the pre-alembic one that
        # stays so that a rollback to an older release still finds its version.
        versions = (migrate.VERSION_TABLE, migrate.LEGACY_TABLE)
        diffs = [d for d in diffs if not (d[0] == "remove_table" and d[1].name in versions)]
        assert diffs == [], f"{url}: {diffs}"


def test_several_hosts_upgrading_a_legacy_timeline_at_once(db_url: str) -> None:
    """Four ``alert-jobs db upgrade`` processes at once: all succeed, alembic is stamped
    once, no row is lost or doubled."""
    _load_legacy(db_url)
    before = _counts(db_url)
    procs = [subprocess.Popen([sys.executable, "-m", "alert_jobs.cli.main", "--database-url",
                               db_url, "db", "upgrade"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    assert all("up to date (schema version 6)" in out for out, _ in outs)
    assert _counts(db_url) == before
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
                            ).scalars().all() == ["0006"]
    engine.dispose()


def test_downgrade_and_upgrade_again_rebuild_the_episodes(db_url: str) -> None:
    """Revisions are reversible: down to 5 drops alert_episodes, up to 6 backfills it from
    the events: the same episodes, fired and resolved at the same times (the backfill
    approximates the rest, e.g. a silence is not counted as a first response)."""
    _load_legacy(db_url)
    timeline = Timeline(db_url)
    timeline.upgrade()
    e = schema.episodes.c
    cols = [e.fingerprint, e.episode, e.rule, e.day, e.fired_at, e.resolved_at,
            e.resolve_seconds, e.notifications, e.flap]
    with timeline.engine.connect() as conn:
        live = sorted(conn.execute(sa.select(*cols)).all())
    migrate.downgrade(timeline.engine, 5)
    assert Timeline(db_url).schema_version() == 5
    assert "alert_episodes" not in sa.inspect(timeline.engine).get_table_names()
    assert Timeline(db_url).upgrade() == ["6: alert quality"]
    with timeline.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(*cols)).all()) == live


@pytest.mark.parametrize("broken", ["0", "not-a-number"])
def test_an_unreadable_version_is_reported(sqlite_url: str, broken: str) -> None:
    """A version table nobody should have edited by hand still gives a clear answer."""
    timeline = Timeline(sqlite_url)
    timeline.upgrade()
    with timeline.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = :v"),
                     {"v": broken})
    if broken == "0":
        assert timeline.schema_version() == 0
    else:
        with pytest.raises(ValueError):
            timeline.schema_version()
