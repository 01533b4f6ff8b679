"""``alert-jobs drift …``: rebuild references and check score drift from a terminal.

The same code paths as the Dagster assets, so "test the monitor" (the ML guide's
advice) is one command: ``alert-jobs drift check fraud_scores``.
"""

from __future__ import annotations

import argparse
from typing import Any

from alert_jobs.config import SecretMissingError
from alert_jobs.core.errors import SourceError
from alert_jobs.families.score_drift.config import ScoreDriftRule
from alert_jobs.runtime.commands import (
    EXIT_FAILED,
    EXIT_OK,
    Commands,
    UsageError,
    deliver_now,
    rules_of,
    timeline_of,
    utcnow,
)


def register(commands: Commands) -> None:
    """Add ``drift reference|check|segments`` to the CLI's subcommands."""
    drift_sub = commands.group("drift", "score drift commands")
    sp = drift_sub.add_parser("reference", help="rebuild reference summaries now (all rules "
                                                "and segments by default); exit 1 on errors")
    sp.add_argument("rules_", nargs="*", metavar="RULE")
    sp.add_argument("--segment", action="append", help="only this segment (repeatable)")
    sp.set_defaults(fn=cmd_drift_reference)
    sp = drift_sub.add_parser("check", help="check score drift now, like one scheduled run; "
                                            "exit 1 if a source cannot be read")
    sp.add_argument("rules_", nargs="*", metavar="RULE")
    sp.add_argument("--segment", action="append", help="only this segment (repeatable)")
    sp.set_defaults(fn=cmd_drift_check)
    sp = drift_sub.add_parser("segments", help="segments found in the data, and the age of "
                                               "their stored references")
    sp.add_argument("rules_", nargs="*", metavar="RULE")
    sp.set_defaults(fn=cmd_drift_segments)


def _selected(args: argparse.Namespace) -> tuple[Any, list[ScoreDriftRule]]:
    rules = rules_of(args)
    by_name = {r.name: r for r in rules.rules_of(ScoreDriftRule)}
    unknown = [n for n in args.rules_ if n not in by_name]
    if unknown:
        raise UsageError(f"unknown score_drift rule(s) {', '.join(unknown)} "
                         f"(known: {', '.join(by_name) or 'none'})")
    chosen = [by_name[n] for n in args.rules_] or list(by_name.values())
    if not chosen:
        raise UsageError(f"{args.rules} has no score_drift rules")
    return rules, chosen


def _segments(args: argparse.Namespace, rule: ScoreDriftRule) -> list[str]:
    from alert_jobs.families.score_drift.run import discover

    if not args.segment:
        return discover(rule)
    bad = [s for s in args.segment if not rule.is_segment_key(s)]
    if bad:
        raise UsageError(f"--segment {bad[0]!r} does not fit rule {rule.name}: give one value "
                         f"per segment column ({', '.join(rule.segment_columns) or 'none'}) "
                         "joined by '|'")
    return list(args.segment)


def cmd_drift_reference(args: argparse.Namespace) -> int:
    from alert_jobs.families.score_drift.run import build_references, reference_window

    _, chosen = _selected(args)
    timeline = timeline_of(args)
    failed = False
    for rule in chosen:
        start, end = reference_window(rule, utcnow())
        print(f"{rule.name}: reference {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
              f"({rule.reference.describe()})")
        try:
            segments = _segments(args, rule)
        except (SourceError, SecretMissingError) as exc:
            print(f"  ERROR {exc}")
            failed = True
            continue
        for build in build_references(rule, timeline, segments):
            label = build.segment or "(all)"
            if build.error:
                print(f"  {label}: ERROR {build.error}")
                failed = True
                continue
            meta = build.metadata(rule)
            print(f"  {label}: {meta['valid_scores']:,} scores, mean {meta['mean']:.3f}, "
                  f"PSI edges {meta['psi_edges']}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_drift_check(args: argparse.Namespace) -> int:
    from alert_jobs.families.score_drift.run import check_segments

    rules, chosen = _selected(args)
    timeline = timeline_of(args)
    failed = False
    for rule in chosen:
        print(f"{rule.name}:")
        try:
            segments = _segments(args, rule)
        except (SourceError, SecretMissingError) as exc:
            print(f"  ERROR {exc}")
            failed = True
            continue
        for result in check_segments(rules, rule, timeline, segments):
            failed = failed or result.error is not None
            m = result.metrics
            head = f"  {result.segment or '(all)'}:"
            if "psi" in m:
                head += (f" PSI {m['psi']:.3f}, KS {m['ks']:.3f}, n = {m['n_current']:,.0f} vs "
                         f"{m['n_reference']:,.0f}")
            if result.reference_built:
                head += " (reference built now)"
            print(head)
            for outcome in result.outcomes:
                obs = outcome.observation
                check = obs.labels.get("check", "")
                if "feature" in obs.labels:
                    check += f"[{obs.labels['feature']}]"
                level = str(obs.severity) if obs.severity else str(obs.status)
                print(f"    {check}: {level}, {outcome.state}: {obs.summary}")
    deliver_now(rules, timeline)  # what the checks queued (and anything else due)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_drift_segments(args: argparse.Namespace) -> int:
    from alert_jobs.families.score_drift.store import DriftReferenceStore

    _, chosen = _selected(args)
    store = DriftReferenceStore(timeline_of(args))
    failed = False
    now = utcnow()
    for rule in chosen:
        print(f"{rule.name}:")
        stored = store.segments(rule.name)
        try:
            found = _segments(argparse.Namespace(segment=None), rule)
        except (SourceError, SecretMissingError) as exc:
            print(f"  ERROR {exc}")
            failed = True
            found = []
        for segment in sorted({*found, *stored}):
            built = stored.get(segment)
            age = f"reference built {(now - built).total_seconds() / 3600:.1f} h ago" \
                if built else "no reference yet"
            seen = "" if segment in found else " (not in the data any more)"
            print(f"  {segment or '(all)'}: {age}{seen}")
    return EXIT_FAILED if failed else EXIT_OK
