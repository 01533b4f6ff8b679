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

from alert_jobs.cli import admin, alerts, drill, incidents, rule_tests, users
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
    rule_tests.register(commands)
    drill.register(commands)
    users.register(commands)
    incidents.register(commands)
    for family in installed_families():
        if family.register_cli is not None:
            family.register_cli(commands)
    return p


#: ``alert-jobs status | head -1``: the reader went away. 128 + SIGPIPE, what a shell
#: reports for ``cat``/``grep`` killed by the same closed pipe.
EXIT_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:  # also after `--help` (SystemExit): a reader that left shows up here
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # another pipe or socket broke: that is a real error, not `| head`
        return _reader_gone()


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error)."""
    import select

    if not hasattr(select, "poll"):  # Windows: trust the error
        return True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (captured): not our pipe
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _reader_gone() -> int:
    """Leave quietly when stdout's reader closed the pipe (``| head``, ``| less`` + q).

    As the Python docs' note on SIGPIPE says: point stdout at devnull, so the interpreter's
    own flush at exit cannot raise a second BrokenPipeError ("Exception ignored …").
    What the command did (an ack, a delivery) is done; only its printout is cut short.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. captured in tests)
        pass
    return EXIT_PIPE


def _run(argv: Sequence[str] | None) -> int:
    for problem in family_problems():  # a broken plugin: say so, keep the others working
        print(f"alert-jobs: warning: {problem}", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokenPipeError:
        raise
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
