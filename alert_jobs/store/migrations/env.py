"""alembic's entry: run the timeline's migrations on the connection alert-jobs gives.

``alert-jobs db upgrade`` (and first use) passes its own connection, already inside a
locked transaction (:mod:`alert_jobs.store.migrate`). Developers can also run alembic
directly to write a new revision::

    alembic -c alert_jobs/store/migrations/alembic.ini revision -m "what it does"

which uses ``$ALERT_JOBS_DATABASE_URL`` (or the default SQLite file), and numbers the new
revision after the newest (then raise ``migrate.HEAD`` to it: a test checks they agree).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from alert_jobs.store import schema
from alert_jobs.store.db import default_database_url, make_engine

VERSION_TABLE = "alert_alembic_version"


def _all_tables() -> None:
    """Family tables live in each family's ``store`` module; load them for autogenerate."""
    import alert_jobs.families as families

    for info in pkgutil.iter_modules(families.__path__):
        try:
            importlib.import_module(f"alert_jobs.families.{info.name}.store")
        except ModuleNotFoundError:
            continue


def _numbered(_migration: object, _revision: object, directives: list[Any]) -> None:
    """New revisions are numbered after the newest (0007, 0008, …): the schema version
    is that number (``alert_jobs.store.migrate``), so hex ids are never written."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(context.config).get_current_head()
    for script in directives:
        script.rev_id = f"{int(head or 0) + 1:04d}"


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=schema.metadata,
                      version_table=VERSION_TABLE, render_as_batch=True, compare_type=True,
                      process_revision_directives=_numbered)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    _all_tables()
    engine = make_engine(context.config.get_main_option("sqlalchemy.url")
                         or default_database_url())
    with engine.begin() as conn:
        run(conn)
