"""alembic owns the schema: fresh databases, databases written before alembic, and the
revisions against the tables the code declares.

The two dumps in ``tests/store/legacy/`` are timelines written by alert-jobs at schema
version 6, before alembic (see ``legacy/README.md``): real alerts, acks, a silence,
outbox rows, episodes, heartbeats, Redis windows and drift references. Upgrading them
must keep every row and read the old alerts back through today's stores.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
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
from alert_jobs.runtime.family import installed_families
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

    # Adopted at version 6 with its data; only the revisions after 6 are applied.
    assert timeline.upgrade() == ["7: action link uses", "8: evaluations by run",
                                  "9: outbox by run",
                                  "10: slo buckets", "11: baselines",
                                  "12: responder pages", "13: external alerts",
                                  "14: incident records", "15: rules disabled for a while"]
    assert timeline.upgrade() == []  # and again
    assert _counts(db_url) == before
    with timeline.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
                            ).scalar() == migrate.revision_id(migrate.HEAD)

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


def _diffs_from_the_code(url: str) -> list[object]:
    """What the database behind ``url`` lacks or has beyond the tables the code declares:
    the core's and every installed family's (their ``store`` modules define them)."""
    for family in installed_families():
        package = family.package
        if importlib.util.find_spec(f"{package}.store") is not None:
            importlib.import_module(f"{package}.store")
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, schema.metadata)
    engine.dispose()
    # Version tables are not the code's: alembic's own, and the pre-alembic one that
    # stays so that a rollback to an older release still finds its version.
    versions = (migrate.VERSION_TABLE, migrate.LEGACY_TABLE)
    return [d for d in diffs if not (d[0] == "remove_table" and d[1].name in versions)]


def test_a_fresh_schema_matches_the_code(db_url: str) -> None:
    """The revisions create exactly the tables the code declares (core and families)."""
    Timeline(db_url).upgrade()
    assert _diffs_from_the_code(db_url) == []
    assert "alert_heartbeats" in schema.metadata.tables  # the families' tables were seen


def test_an_upgraded_pre_alembic_schema_matches_the_code(db_url: str) -> None:
    _load_legacy(db_url)
    Timeline(db_url).upgrade()
    assert _diffs_from_the_code(db_url) == []


def test_a_pre_alembic_timeline_at_an_older_version_gets_the_rest(db_url: str) -> None:
    """A timeline last upgraded by release 4 (no heartbeats, no episodes) is adopted at
    version 4 and gets revisions 5 and 6: the new tables, its episodes backfilled from
    its events, its alerts untouched."""
    _load_legacy(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for table in ("alert_episodes", "alert_heartbeat_pings", "alert_heartbeats"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(sa.text(f"DELETE FROM {migrate.LEGACY_TABLE} WHERE version > 4"))
    engine.dispose()
    timeline = Timeline(db_url)
    assert timeline.schema_version() == 4
    assert timeline.upgrade() == ["5: heartbeats", "6: alert quality", "7: action link uses",
        "8: evaluations by run", "9: outbox by run", "10: slo buckets", "11: baselines",
                                  "12: responder pages", "13: external alerts",
                                  "14: incident records", "15: rules disabled for a while"]
    assert timeline.schema_version() == migrate.HEAD and _diffs_from_the_code(db_url) == []
    counts = _counts(db_url)
    assert counts["alert_alerts"] == 21 and counts["alert_heartbeats"] == 0
    assert counts["alert_episodes"] >= 150  # rebuilt from the events
    assert timeline.alerts.get(next(a.fingerprint for a in timeline.alerts.list()
                                    if a.rule == "dead_letters")).acked_by == "alice"


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
    # One adopts the version-6 timeline and applies what came after; the others wait
    # for its lock and find nothing left to do.
    applied = [out for out, _ in outs if "applied 7: action link uses" in out]
    assert len(applied) == 1, outs
    assert sum(f"up to date (schema version {migrate.HEAD})" in out for out, _ in outs) == 3
    assert _counts(db_url) == before
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")
                            ).scalars().all() == [migrate.revision_id(migrate.HEAD)]
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
    assert Timeline(db_url).upgrade() == ["6: alert quality", "7: action link uses",
                                          "8: evaluations by run", "9: outbox by run",
                                          "10: slo buckets", "11: baselines",
                                          "12: responder pages", "13: external alerts",
                                          "14: incident records",
                                          "15: rules disabled for a while"]
    with timeline.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(*cols)).all()) == live


NEWER = migrate.revision_id(migrate.HEAD + 1)


@pytest.mark.parametrize(("stored", "message"), [
    (NEWER, f"is newer than this alert-jobs knows ({migrate.HEAD}); upgrade alert-jobs"),
    ("1a2b3c4d5e6f", "revision '1a2b3c4d5e6f' is not one of alert-jobs'"),
])
def test_a_schema_this_release_does_not_know_is_refused_clearly(
        sqlite_url: str, stored: str, message: str, capsys: pytest.CaptureFixture) -> None:
    """A timeline upgraded by a newer release, or stamped with a foreign revision: the
    upgrade says so, changes nothing, and the command exits 1."""
    from alert_jobs.cli.main import main

    Timeline(sqlite_url).upgrade()
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = :v"),
                     {"v": stored})
    engine.dispose()
    assert main(["--database-url", sqlite_url, "db", "upgrade"]) == 1
    assert message in capsys.readouterr().err
    with pytest.raises(migrate.MigrationError):
        Timeline(sqlite_url).schema_version() if stored != NEWER else \
            migrate.upgrade(make_engine(sqlite_url))


def test_a_new_revision_is_numbered_after_the_newest(tmp_path: Path) -> None:
    """``alembic revision`` writes the next number (not a hex id the schema version cannot
    read)."""
    import shutil

    from alembic import command
    from alembic.config import Config

    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config(str(scripts / "alembic.ini"))
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'dev.db'}")
    command.upgrade(config, "head")
    command.revision(config, message="add a table")
    (new,) = [p.name for p in (scripts / "versions").glob(f"{NEWER}*.py")]
    assert new == f"{NEWER}_add_a_table.py"
