"""``alert-jobs``: look at and act on alerts from a terminal.

Exit codes: 0 success, 1 the operation failed at run time (e.g. database down),
2 the request was wrong (unknown name, bad duration, invalid rules file).

Start-up imports neither Dagster nor any family's sources: each command imports what
it needs when it runs, so ``alert-jobs --help``, ``status`` and ``ping`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from alert_jobs.cli import admin, alerts
from alert_jobs.config import RulesError, family_problems
from alert_jobs.runtime.commands import EXIT_FAILED, EXIT_USAGE, Commands, UsageError
from alert_jobs.runtime.family import installed_families


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alert-jobs", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=None,
                   help="timeline database (default: $ALERT_JOBS_DATABASE_URL or "
                        "$DAGSTER_HOME/alerts.db)")
    p.add_argument("--rules", default=os.environ.get("ALERT_JOBS_RULES", "alerts.yaml"),
                   help="rules file (default: $ALERT_JOBS_RULES or alerts.yaml)")
    commands = Commands(p.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    alerts.register(commands)
    admin.register(commands)
    for family in installed_families():
        if family.register_cli is not None:
            family.register_cli(commands)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    for problem in family_problems():  # a broken plugin: say so, keep the others working
        print(f"alert-jobs: warning: {problem}", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except UsageError as exc:
        print(f"alert-jobs: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RulesError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the timeline refused, a database that is down, a full disk
        # Imported here: a command that raised these has loaded them already, and
        # `--help` or `ping` never need the database layer.
        from sqlalchemy.exc import SQLAlchemyError

        from alert_jobs.store import TimelineError
        from alert_jobs.store.migrate import MigrationError

        if isinstance(exc, MigrationError):
            print(f"alert-jobs: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, TimelineError):
            print(f"alert-jobs: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None) or exc
            print(f"alert-jobs: timeline database error: {str(orig).splitlines()[0]}",
                  file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
