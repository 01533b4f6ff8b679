"""``alert-jobs drill RULE``: a fire drill from the terminal (see ``docs/drills.md``).

Pages the rule's receivers on purpose with a message marked ``[DRILL]``, confirms each
delivery and its time from injection, resolves the drill, and records it in the
timeline. Exit codes: 0 the drill passed, 1 it failed (a receiver did not get the page,
or too late), 2 the request was wrong (unknown rule, invalid rules file).
"""

from __future__ import annotations

import argparse
import json

from alert_jobs.runtime.commands import (
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    UsageError,
    default_actor,
    rules_of,
    timeline_of,
)


def cmd_drill(args: argparse.Namespace) -> int:
    from alert_jobs.runtime.drill import DrillError, run_drill

    rules = rules_of(args)
    timeline = timeline_of(args)
    try:
        result = run_drill(rules, timeline, args.rule, by=args.by, source="cli",
                           alert_on_failure=args.alert_on_failure)
    except DrillError as exc:
        raise UsageError(f"{exc.args[0]}; `alert-jobs rules validate` lists them") from None
    if args.json:
        print(json.dumps({"rule": result.rule, **result.payload()}, indent=2))
    else:
        print("\n".join(result.lines()))
    return EXIT_OK if result.passed else EXIT_FAILED


def register(commands: Commands) -> None:
    sp = commands.add("drill", cmd_drill,
                      "fire drill: page a rule's receivers on purpose ([DRILL]), confirm each "
                      "delivery in time and resolve; exit 1 if a receiver missed it")
    sp.add_argument("rule", metavar="RULE")
    sp.add_argument("--by", default=default_actor(), help="who runs the drill (timeline actor)")
    sp.add_argument("--alert-on-failure", action="store_true",
                    help="raise the fire_drill_failed alert on the fallback receiver if the "
                         "drill fails (resolved by the next passing drill), as the schedule does")
    sp.add_argument("--json", action="store_true", help="the result as JSON")
