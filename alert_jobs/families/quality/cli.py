"""CLI for alert quality: ``quality report``, ``quality review`` and ``rules backtest``.

``alert-jobs rules backtest RULE --set max=5 --set for=10m --since 30d`` replays the
rule's stored evaluations with the changed settings and says how many alerts would
have fired, how many of those people marked actionable would still have been caught,
and how many noisy ones would have been dropped. A baseline rule (``--set width=4``)
is replayed from ``history`` before ``--since`` so its baseline exists from the first
evaluation that counts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from alert_jobs.config import RuleBase
from alert_jobs.core.durations import DurationError, format_duration, parse_duration
from alert_jobs.core.model import AckOutcome
from alert_jobs.families.quality.backtest import (
    Change,
    Judge,
    Points,
    backtest,
    effective,
    rejudged,
    stored_judge,
)
from alert_jobs.families.quality.check import QualityRow, fmt_rate, fmt_seconds
from alert_jobs.families.quality.config import QualityConfig
from alert_jobs.runtime.commands import (
    EXIT_OK,
    Commands,
    UsageError,
    default_actor,
    deliver_now,
    parse_time,
    rules_of,
    table,
    timeline_of,
    utcnow,
)
from alert_jobs.runtime.family import Rejudge, family_of

if TYPE_CHECKING:  # the timeline is opened by the command that needs it
    from alert_jobs.store import Timeline

TIMING_KEYS = ("for", "keep_firing_for")


# ----- rules backtest ---------------------------------------------------------------


def parse_sets(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` items, in order; which keys a rule accepts is its family's."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = value.strip()
    return out


@dataclass(frozen=True)
class Replays:
    """A backtest's change: the timing, the judges of stored values before and after it,
    and how long before the period their values must start (a baseline's history)."""

    change: Change
    current: Callable[[], Rejudge] | None  # None: replay the stored statuses
    changed: Callable[[], Rejudge] | None
    warm_up: timedelta = timedelta(0)

    def judges(self, rule: str, points: Points | None = None) -> tuple[Judge, Judge]:
        """Fresh judges for one replay each (a judge learns as it replays)."""
        if self.current is None or self.changed is None:
            return stored_judge(rule), stored_judge(rule)
        return rejudged(rule, self.current, points), rejudged(rule, self.changed, points)


def build_change(rule: RuleBase, sets: Mapping[str, str]) -> Replays:
    """The timing change, and the judges of stored values before and after the change."""
    family = family_of(rule)
    keys = (*family.threshold_keys, *TIMING_KEYS)
    unknown = [k for k in sets if k not in keys]
    if unknown and family.rejudge is None:
        raise UsageError(f"rule {rule.name!r} is a {family.name} rule: only for= and "
                         "keep_firing_for= can be backtested for it")
    if unknown:
        raise UsageError(f"--set cannot change {unknown[0]!r} (use {', '.join(keys)})")
    timing: dict[str, timedelta] = {}
    for key in TIMING_KEYS:
        if key in sets:
            try:
                timing["for_" if key == "for" else key] = parse_duration(sets[key])
            except DurationError as exc:
                raise UsageError(f"--set {key}: {exc}") from None
    thresholds = {k: v for k, v in sets.items() if k not in TIMING_KEYS}
    make = family.rejudge
    if make is None:
        return Replays(Change(**timing), None, None)
    try:  # made once here to say what is wrong with the values before anything is read
        current, changed = make(rule, {}), make(rule, thresholds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Replays(Change(**timing), lambda: make(rule, {}), lambda: make(rule, thresholds),
                   max(current.history, changed.history))


def cmd_backtest(args: argparse.Namespace) -> int:
    from alert_jobs.families.quality.stored import load_history, load_points
    from alert_jobs.runtime.evaluate import policy_for

    rules = rules_of(args)
    sets = parse_sets(args.set or [])
    if not sets:
        raise UsageError("nothing to change: give --set KEY=VALUE (e.g. --set max=5 --set for=10m)")
    try:
        rule = rules.rule(args.rule)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    replays = build_change(effective(rules, rule), sets)
    described = ", ".join(f"{k}={v}" for k, v in sets.items())
    now = utcnow()
    since = parse_time(args.since, now)
    timeline = timeline_of(args)
    warm_up_from = since - replays.warm_up
    evals, episodes = load_history(timeline, args.rule, since, warm_up_from=warm_up_from)
    points = load_points(timeline, args.rule, warm_up_from) if replays.warm_up else None
    current, changed = replays.judges(rule.name, points)
    base = replace(policy_for(rules, rule), enabled=True)
    result = backtest(evals, episodes, base, replays.change, current_judge=current,
                      changed_judge=changed, end=now, since=since)
    if args.json:
        print(json.dumps({"rule": args.rule, "since": since.isoformat(), "change": sets,
                          **result.as_json()}, indent=2))
        return EXIT_OK
    fingerprints = len({e.fingerprint for e in evals if e.at >= since})
    print(f"backtest {args.rule} since {since:%Y-%m-%d %H:%M} UTC: {result.evaluations} "
          f"evaluations of {fingerprints} alert instance(s); change: {described}")
    if replays.warm_up:
        backfilled = sum(len(p) for p in (points or {}).values())
        print(f"the baseline learned first from the {format_duration(replays.warm_up)} "
              f"before: {len(evals) - result.evaluations} evaluations and {backfilled} "
              "backfilled points")
    if not result.evaluations:
        print("no stored evaluations in this period: nothing to replay")
        return EXIT_OK
    rows = [
        ["alerts fired", str(result.stored_fired), str(result.replayed_current),
         str(result.would_fire)],
        ["actionable still caught", str(result.actionable), "",
         f"{result.actionable_caught} of {result.actionable}"],
        ["noisy dropped", str(result.noisy), "", f"{result.noisy_dropped} of {result.noisy}"],
    ]
    print(table(rows, ["", "STORED", "REPLAY (CURRENT)", "REPLAY (CHANGED)"]))
    if result.open:
        print(f"{result.open} stored alert(s) are still open and unjudged (not counted above)")
    if result.actionable_missed:
        print(f"warning: the change would have missed {result.actionable_missed} actionable "
              "alert(s)")
    return EXIT_OK


# ----- quality report / review ------------------------------------------------------


def _rows_table(rows: list[QualityRow]) -> str:
    body = [[r.day or "", r.rule, r.severity or "", str(r.fired), str(r.notifications),
             str(r.pages), fmt_rate(r.actionable_rate), fmt_rate(r.false_positive_rate),
             fmt_seconds(r.ack_p50), fmt_seconds(r.response_p50), fmt_seconds(r.resolve_p50),
             fmt_seconds(r.resolve_p90), str(r.flaps), str(r.duplicates)] for r in rows]
    return table(body, ["DAY", "RULE", "SEVERITY", "FIRED", "NOTIFIED", "PAGES", "ACTIONABLE",
                        "FALSE POS.", "ACK P50", "RESPONSE P50", "RESOLVE P50", "RESOLVE P90",
                        "FLAPS", "DUP."])


def cmd_quality_report(args: argparse.Namespace) -> int:
    from alert_jobs.core.months import month_bounds
    from alert_jobs.families.quality.rollup import quality_rows

    now = utcnow()
    if args.month:
        try:
            start, end = month_bounds(args.month)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        start, end = parse_time(args.since, now), now
    by = tuple(args.by.split(",")) if args.by else ("rule", "severity")
    timeline = timeline_of(args)
    try:
        with timeline.read() as conn:
            rows = quality_rows(conn, start, end, by=by, rule=args.rule)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=2))
        return EXIT_OK
    if not rows:
        print(f"no alert fired between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC")
    else:
        print(_rows_table(rows))
    _print_drills(timeline, {r.rule for r in rows}, args.rule)
    return EXIT_OK


def _print_drills(timeline: Timeline, fired: set[str], only: str | None) -> None:
    """Each rule's last fire drill, under the table (drills are not in its rates)."""
    from alert_jobs.families.quality.drills import drill_lines

    lines = drill_lines(timeline, {only} if only else fired, include_drilled=not only)
    if lines:
        print("\nFire drills (not counted above):")
        print("\n".join(f"  {line}" for line in lines))


def cmd_quality_review(args: argparse.Namespace) -> int:
    from alert_jobs.core.months import previous_month
    from alert_jobs.families.quality.review import run_review

    rules = rules_of(args)
    month = args.month or previous_month(utcnow())
    if args.send and not rules.section(QualityConfig).review_receiver:
        raise UsageError("--send needs quality.review_receiver in the rules file")
    timeline = timeline_of(args)
    try:
        result = run_review(rules, timeline, month, send=args.send,
                            out_dir=Path(args.out) if args.out else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(result.markdown)
    print(f"\nwrote {result.html_path}")
    if args.send:
        if result.outbox_id is None:
            print(f"review for {month} was already queued for "
                  f"{rules.section(QualityConfig).review_receiver}; not sent again")
        deliver_now(rules, timeline)
    return EXIT_OK


def cmd_outcome(args: argparse.Namespace) -> int:
    """Say what an alert was after the fact (also once resolved): feeds the rollups."""
    from alert_jobs.store import TimelineError

    timeline = timeline_of(args)
    try:
        alerts = timeline.alerts.resolve_target(args.target, active_only=False)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    for alert in alerts:
        if alert.episode <= 0:
            print(f"skipped {alert.rule} [{alert.fingerprint[:12]}]: it never fired")
            continue
        timeline.actions.record_outcome(alert.fingerprint, outcome=args.outcome, by=args.by)
        print(f"marked {alert.rule} [{alert.fingerprint[:12]}] episode {alert.episode} "
              f"{args.outcome}")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add ``outcome``, ``quality report|review`` and ``rules backtest`` to the CLI."""
    sub, rules_sub = commands.top, commands.groups["rules"]
    sp = sub.add_parser("outcome", help="record what an alert was (also after it resolved), "
                                        "for alert-quality rollups")
    sp.add_argument("target", help="rule name or fingerprint (prefix of 6+)")
    sp.add_argument("outcome", choices=[str(o) for o in AckOutcome])
    sp.add_argument("--by", default=default_actor())
    sp.set_defaults(fn=cmd_outcome)

    sp = rules_sub.add_parser(
        "backtest", help="replay a rule's stored evaluations with changed thresholds/timing")
    sp.add_argument("rule")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="min, max, resolve_min, resolve_max, threshold|critical|warning (the "
                         "rule's single bound), for, keep_firing_for; a baseline rule's "
                         "width, min_points, season, history, direction, floor, "
                         "adopt_after; repeatable")
    sp.add_argument("--since", default="30d", help="duration ago (30d) or ISO time")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_backtest)

    quality = sub.add_parser("quality", help="alert quality: rollups and the monthly review")
    qsub = quality.add_subparsers(dest="quality_command", required=True, metavar="COMMAND")
    sp = qsub.add_parser("report", help="alerts fired, actionable rate, times to ack/resolve")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--since", default="30d", help="duration ago (30d) or ISO time")
    group.add_argument("--month", help="a calendar month (UTC), e.g. 2026-10")
    sp.add_argument("--by", help="comma-separated grouping: day, rule, severity "
                                 "(default rule,severity)")
    sp.add_argument("--rule")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_quality_report)
    sp = qsub.add_parser("review", help="the monthly review: Markdown, an HTML file, and "
                                        "(--send) a message to quality.review_receiver")
    sp.add_argument("--month", help="YYYY-MM (default: last month)")
    sp.add_argument("--out", help="directory for the HTML file (default: quality.report_dir)")
    sp.add_argument("--send", action="store_true")
    sp.set_defaults(fn=cmd_quality_review)

