"""``alert-jobs rules test FILE…``: rule unit tests on a simulated clock (promtool's
model), and ``--live RULE --set KEY=VALUE``: one rule against its real source now, with
thresholds overridden, printing what would fire and each receiver's message — nothing
written, nothing sent. See ``docs/rule-tests.md``.

Exit status: 0 every test passed; 1 a test failed (or, live, the source could not be
read); 2 a test file or the rules file is broken, or the command line is.
"""

from __future__ import annotations

import argparse
import sys

from alert_jobs.runtime.commands import Commands, UsageError, rules_of, utcnow


def cmd_rules_test(args: argparse.Namespace) -> int:
    if args.live:
        return _live(args)
    if args.set:
        raise UsageError("--set changes a rule only with --live RULE (a test file sets "
                         "its inputs instead)")
    if not args.files:
        raise UsageError("give one or more test files (e.g. alerts.test.yaml), or --live "
                         "RULE for a dry run against the real source")
    from alert_jobs.runtime.ruletest import TestFileError, format_result, run_file

    worst = 0
    for path in args.files:
        try:
            result = run_file(path)
        except TestFileError as exc:
            print(exc.render(), file=sys.stderr)
            worst = 2
            continue
        print(format_result(result, verbose=args.verbose))
        if not result.passed:
            worst = max(worst, 1)
    return worst


def _live(args: argparse.Namespace) -> int:
    if args.files:
        raise UsageError("--live RULE runs one rule against its real source; leave out "
                         "the test files")
    from alert_jobs.runtime.dry_run import dry_run, format_dry_run

    overrides: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    rules = rules_of(args)
    try:
        result = dry_run(rules, args.live, overrides, now=utcnow())
    except (LookupError, ValueError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    print(format_dry_run(result))
    return 0


def register(commands: Commands) -> None:
    sp = commands.groups["rules"].add_parser(
        "test", help="run rule tests (synthetic inputs, simulated clock, nothing sent); "
                     "exit 0 if all pass, 1 if one fails, 2 if a file is broken",
        description=__doc__.split("\n\n")[0] if __doc__ else None)
    sp.add_argument("files", nargs="*", metavar="FILE", help="rule test files (YAML)")
    sp.add_argument("-v", "--verbose", action="store_true",
                    help="also list passing tests and the notifications each sent")
    sp.add_argument("--live", metavar="RULE",
                    help="dry run: evaluate RULE against its real source now")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="with --live: override a threshold (e.g. --set max=0)")
    sp.set_defaults(fn=cmd_rules_test)
