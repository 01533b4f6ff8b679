"""``alert-jobs slo status|reset``: what the stored counts say about each SLO now, and
forgetting them when an SLI's definition changed.

``status`` reads only the timeline (the buckets the runs stored), never the source, so
it is instant and safe to run anywhere; ``alert-jobs check <slo>`` evaluates one SLO like
a scheduled run (reading its new buckets, deciding, delivering).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from alert_jobs.runtime.commands import (
    EXIT_OK,
    Commands,
    UsageError,
    rules_of,
    timeline_of,
    utcnow,
)

if TYPE_CHECKING:  # the rule model is imported when a command runs
    from alert_jobs.config import RulesFile
    from alert_jobs.families.slo.config import SloRule


def register(commands: Commands) -> None:
    sub = commands.group("slo", "SLO commands (error budgets, burn rates)")
    sp = sub.add_parser("status", help="each SLO's objective, SLI over its period, budget "
                                       "left, burn rate per window and firing pair, from "
                                       "the stored counts (the source is not read)")
    sp.add_argument("names", nargs="*", metavar="NAME")
    sp.set_defaults(fn=cmd_slo_status)
    sp = sub.add_parser("reset", help="forget an SLO's stored counts (after changing its "
                                      "SLI query): its next run reads its history again")
    sp.add_argument("names", nargs="+", metavar="NAME")
    sp.set_defaults(fn=cmd_slo_reset)


def _chosen(args: argparse.Namespace) -> tuple[RulesFile, list[SloRule]]:
    from alert_jobs.families.slo.config import SloRule

    rules = rules_of(args)
    by_name = {r.name: r for r in rules.rules_of(SloRule)}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        raise UsageError(f"unknown SLO(s) {', '.join(unknown)} "
                         f"(known: {', '.join(by_name) or 'none'})")
    chosen = [by_name[n] for n in args.names] or list(by_name.values())
    if not chosen:
        raise UsageError(f"{args.rules} has no SLOs (checks.slo)")
    return rules, chosen


def cmd_slo_status(args: argparse.Namespace) -> int:
    from alert_jobs.families.slo.status import status_lines
    from alert_jobs.families.slo.store import SloBucketStore

    _, chosen = _chosen(args)
    store = SloBucketStore(timeline_of(args))
    now = utcnow()
    for i, rule in enumerate(chosen):
        if i:
            print()
        print("\n".join(status_lines(rule, store, now=now)))
    return EXIT_OK


def cmd_slo_reset(args: argparse.Namespace) -> int:
    from alert_jobs.families.slo.store import SloBucketStore

    _, chosen = _chosen(args)
    store = SloBucketStore(timeline_of(args))
    for rule in chosen:
        print(f"{rule.name}: {store.forget(rule.name):,} stored bucket(s) deleted; the next "
              "run reads its history again")
    return EXIT_OK
