"""What every ``alert-jobs`` command shares, the top-level ones and the families' own.

Exit codes: 0 success, 1 the operation failed at run time (e.g. database down), 2 the
request was wrong (unknown name, bad duration, invalid rules file). A command raises
:class:`UsageError` for the last kind; the entry point prints it and exits 2.

Nothing here imports the database layer, a source or Dagster at start-up: commands
import what they need when they run, so ``alert-jobs --help`` and ``ping`` stay fast
(``tests/cli/test_startup.py`` and ``benchmarks/cli_bench.py`` hold this).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alert_jobs.config import RulesFile, load_rules
from alert_jobs.core.durations import DurationError, parse_duration, short_duration

if TYPE_CHECKING:  # imported when a command opens the timeline: `--help` stays light
    from alert_jobs.runtime.deliver import DeliveryReport
    from alert_jobs.store import Timeline

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The user asked for something that cannot be: exit 2 with this message."""


def default_actor() -> str:
    return os.environ.get("ALERT_JOBS_USER") or os.environ.get("USER") or "cli"


def positive_duration(text: str) -> timedelta:
    try:
        delta = parse_duration(text)
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    if delta <= timedelta(0):
        raise UsageError(f"duration must be positive, got {text!r}")
    return delta


def parse_time(text: str, now: datetime) -> datetime:
    """``1h`` (ago) or an ISO time (UTC if no offset)."""
    try:
        return now - parse_duration(text)
    except DurationError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"expected a duration like 1h or an ISO time, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def ago(when: datetime | None, now: datetime) -> str:
    return "-" if when is None else short_duration(now - when) + " ago"


def clip(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters; a cut shows as "…" so a reader
    knows there is more (``alert-jobs status --json`` or ``timeline`` has it whole)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 1].rstrip() + "…"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def timeline_of(args: argparse.Namespace) -> Timeline:
    """The timeline named by ``--database-url`` (default: the configured one)."""
    from alert_jobs.store import Timeline

    return Timeline(args.database_url) if args.database_url else Timeline()


def utcnow() -> datetime:
    return datetime.now(UTC)


def rules_of(args: argparse.Namespace) -> RulesFile:
    """The rules file named by ``--rules``; a :class:`~alert_jobs.config.RulesError`
    exits 2 in the entry point, listing every problem."""
    return load_rules(args.rules)


def deliver_now(rules: RulesFile, timeline: Timeline) -> DeliveryReport:
    """Send what a command just raised, as the Dagster run of the same check does.

    Every command that evaluates (``check``, ``redis check``, ``drift check``,
    ``heartbeat pause|resume``…) ends here, so what it raised reaches the receivers now,
    not at the next delivery-sensor tick — and not never, when the Dagster daemon is not
    running. It flushes every notification group that is due and sends everything due,
    exactly like the runs: a command does not need to know which outbox rows its
    observations produced (with ``flush=False`` batches it cannot). A group still inside
    its ``group_wait`` is sent by the delivery sensor or ``alert-jobs deliver``.

    Prints ``delivery: sent …`` and each failure on stderr; the caller decides the exit
    code (a failed delivery stays queued and is retried, nothing is lost).
    """
    from alert_jobs.runtime.deliver import deliver

    report = deliver(rules, timeline)
    print(f"delivery: {report}")
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    waiting, first = timeline.outbox.groups_waiting()
    if waiting and first is not None:
        print(f"  {waiting} notification group(s) wait for their group_wait/group_interval "
              f"(the first is due at {first.astimezone(UTC):%H:%M:%S} UTC); the delivery "
              "sensor or `alert-jobs deliver` sends them then")
    return report


Handler = Callable[[argparse.Namespace], int]


@dataclass
class Commands:
    """Where a family adds its ``alert-jobs`` commands: ``top`` is ``alert-jobs <command>``;
    ``groups`` are existing command groups by name (``rules`` → ``alert-jobs rules …``).

    A command sets ``fn`` (``sp.set_defaults(fn=handler)``); a handler returns an exit
    code and imports what it needs inside, so ``alert-jobs --help`` stays fast.
    """

    top: Any  # argparse's _SubParsersAction, which has no public type
    groups: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, fn: Handler, help: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = self.top.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def group(self, name: str, help: str) -> Any:
        """A new command group ``alert-jobs <name> …``; returns its subparsers."""
        parser = self.top.add_parser(name, help=help)
        sub = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
        self.groups[name] = sub
        return sub
