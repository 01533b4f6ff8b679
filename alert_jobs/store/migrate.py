"""Schema migrations: alembic revisions in ``store/migrations/versions``, run in code.

``alert-jobs db upgrade`` and a timeline's first use call :func:`upgrade`. It is safe
to run twice, and from several hosts at once: everything happens in one transaction
that first takes a lock (``pg_advisory_xact_lock`` on PostgreSQL; on SQLite the
transaction is ``BEGIN IMMEDIATE``, the database's write lock), so a second upgrader
waits, then finds nothing left to do.

Databases created before alembic kept their version in ``alert_schema_version``
(versions 1–6, the same schema as revisions 0001–0006). Such a database is *adopted*:
alembic is stamped with its version and upgraded from there, its data untouched. The
old table is left in place, so rolling back to a release from before alembic still
finds the version it expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SCRIPTS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alert_alembic_version"
LEGACY_TABLE = "alert_schema_version"
ADVISORY_LOCK = 7438201
#: The newest revision (a test checks it against the revision files). Kept as a
#: number so that reading the version at start-up does not import alembic.
HEAD = 15


class MigrationError(RuntimeError):
    """The timeline's schema cannot be brought to this release's (and nothing changed)."""


def head_version() -> int:
    return HEAD


def version_of(revision: str) -> int:
    """``"0006"`` → 6. Revisions are numbered (``env.py`` numbers new ones), so a version
    compares as a number; anything else is not a revision of this project."""
    if not (revision.isdigit() and len(revision) == 4):
        raise MigrationError(f"the timeline's schema revision {revision!r} is not one of "
                             "alert-jobs' (they are numbered 0001, 0002, …)")
    return int(revision)


def current_version(conn: Connection) -> int:
    """The schema version of the database behind ``conn`` (0: empty)."""
    inspector = sa.inspect(conn)
    if inspector.has_table(VERSION_TABLE):
        revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        return version_of(str(revision)) if revision else 0
    if inspector.has_table(LEGACY_TABLE):
        return int(conn.execute(sa.text(f"SELECT max(version) FROM {LEGACY_TABLE}")).scalar()
                   or 0)
    return 0


def _config(conn: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


def revision_id(version: int) -> str:
    return f"{version:04d}"


def _titles(conn: Connection, after: int, upto: int) -> list[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config(conn))
    out = []
    for version in range(after + 1, upto + 1):
        script = scripts.get_revision(revision_id(version))
        title = (script.doc or "").strip().splitlines()[0] if script is not None else ""
        out.append(f"{version}: {title}")
    return out


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})


def upgrade(engine: Engine, target: str = "head") -> list[str]:
    """Apply pending revisions up to ``target``; returns ``"<version>: <title>"`` of each."""
    from alembic import command

    with engine.begin() as conn:
        _lock(conn)
        before = current_version(conn)
        if before > HEAD:
            raise MigrationError(f"the timeline's schema (version {before}) is newer than "
                                 f"this alert-jobs knows ({HEAD}); upgrade alert-jobs")
        if before and not sa.inspect(conn).has_table(VERSION_TABLE):
            command.stamp(_config(conn), revision_id(before))  # adopt a pre-alembic database
        command.upgrade(_config(conn), target)
        after = current_version(conn)
        return _titles(conn, before, after) if after > before else []


def downgrade(engine: Engine, version: int) -> None:
    """Go back to ``version`` (0: drop every table). For tests and emergencies."""
    from alembic import command

    with engine.begin() as conn:
        _lock(conn)
        command.downgrade(_config(conn), revision_id(version) if version else "base")
