"""``alert-jobs`` commands on alerts: status, timeline, ack, snooze, silences, enable/disable."""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alert_jobs.config import RulesError, RulesFile, load_rules
from alert_jobs.core.durations import short_duration
from alert_jobs.core.model import AckOutcome, AlertRecord, Matcher, MatcherError
from alert_jobs.runtime.commands import (
    EXIT_OK,
    Commands,
    UsageError,
    ago,
    clip,
    default_actor,
    parse_time,
    positive_duration,
    table,
    timeline_of,
    utcnow,
)

if TYPE_CHECKING:
    from alert_jobs.store import Timeline

#: Characters of an alert's last summary in ``status``'s LAST CHECK column.
LAST_CHECK_WIDTH = 80


def _targets(timeline: Timeline, target: str, known_rules: set[str]) -> list[AlertRecord]:
    from alert_jobs.store import TimelineError

    try:
        return timeline.alerts.resolve_target(target)
    except TimelineError as exc:
        if target in known_rules:
            raise UsageError(f"rule {target!r} has no active alert") from None
        raise UsageError(str(exc)) from None


def rule_names(args: argparse.Namespace, timeline: Timeline) -> set[str]:
    names = set(timeline.alerts.known_rules())
    with contextlib.suppress(RulesError):  # a broken rules file must not block an ack
        names |= {r.name for r in load_rules(args.rules).rules()}
    return names


def _rules_or_defaults(args: argparse.Namespace) -> RulesFile:
    """The rules file if it loads; acking must work even while the file is being fixed."""
    try:
        return load_rules(args.rules)
    except RulesError:
        return RulesFile()


def cmd_status(args: argparse.Namespace) -> int:
    timeline = timeline_of(args)
    now = utcnow()
    alerts = timeline.alerts.list(include_inactive=args.all)
    if args.json:
        print(json.dumps([_record_json(a) for a in alerts], indent=2, default=str))
        return EXIT_OK
    if not alerts:
        print("no active alerts")
    else:
        rows = []
        for a in alerts:
            flags = []
            if a.acked_at:
                flags.append(f"acked by {a.acked_by}")
            if a.is_snoozed(now) and a.snoozed_until:
                flags.append(f"snoozed {short_duration(a.snoozed_until - now)}")
            rows.append([a.fingerprint[:12], a.rule, str(a.state), str(a.severity),
                         ago(a.fired_at or a.active_since, now), ", ".join(flags) or "-",
                         clip(a.last_summary, LAST_CHECK_WIDTH)])
        print(table(rows, ["FINGERPRINT", "RULE", "STATE", "SEVERITY", "SINCE", "FLAGS",
                           "LAST CHECK"]))
    disabled = timeline.rule_settings.disabled()
    if disabled:
        print(f"\ndisabled rules: {', '.join(sorted(disabled))}")
    print_backlog(timeline, now)
    problems = timeline.outbox.problems()
    if problems["retrying"]:
        print(f"{problems['retrying']} notification(s) waiting for retry; last error: "
              f"{problems['retrying_last_error']}")
    if problems["failed"]:
        print(f"{problems['failed']} notification(s) failed permanently; last error: "
              f"{problems['failed_last_error']}")
    return EXIT_OK


def print_backlog(timeline: Timeline, now: datetime) -> None:
    """Messages queued but not sent yet: how many, how old, and why they wait."""
    b = timeline.outbox.backlog(now)
    if not b["queued"]:
        print("\noutbox: nothing waiting to be sent")
        return
    parts = [f"{b['due']} due now", f"{b['leased']} being sent (leased)"]
    if b["lease_expired"]:
        parts.append(f"{b['lease_expired']} left by a stopped delivery run (lease expired; "
                     "the next delivery run sends them)")
    parts.append(f"{b['retrying']} with failed attempts")
    print(f"\noutbox: {b['queued']} notification(s) queued, not sent yet, oldest queued "
          f"{ago(b['oldest_created_at'], now)}: {', '.join(parts)}")


def _record_json(a: AlertRecord) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, datetime) else v) for k, v in a.__dict__.items()}


def cmd_timeline(args: argparse.Namespace) -> int:
    timeline = timeline_of(args)
    now = utcnow()
    since = parse_time(args.since, now) if args.since else None
    if args.rule and args.rule not in rule_names(args, timeline):
        raise UsageError(f"unknown rule {args.rule!r}")
    events = timeline.events.list(rule=args.rule, since=since, kinds=args.kind or (),
                                  run_id=args.run_id, limit=args.limit)
    # A run's evaluations, also those that changed nothing and so left no event.
    evaluations = _run_evaluations(timeline, args, since) if args.run_id else None
    if args.json:
        out: Any = events if evaluations is None else {"events": events,
                                                       "evaluations": evaluations}
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK
    if not events:
        print("no events")
    for e in events:
        fp = (e["fingerprint"] or "")[:8]
        run = f" run={e['run_id'][:8]}" if e["run_id"] else ""
        who = f" by {e['actor']}" if e["actor"] != "system" else ""
        print(f"{e['at']:%Y-%m-%d %H:%M:%S}  {e['kind']:<19} {e['rule'] or '-':<20} {fp:<8}"
              f"{run}{who}  {e['reason']}")
    if evaluations is not None:
        print()
        print(f"evaluations in run {args.run_id}: {len(evaluations)}")
        for ev in evaluations:
            value = "-" if ev["value"] is None else f"{ev['value']:g}"
            print(f"{ev['at']:%Y-%m-%d %H:%M:%S}  {ev['rule']:<20} {ev['fingerprint'][:8]:<8} "
                  f"{ev['status']:<6} → {ev['state_after']:<10} value={value:<10} "
                  f"{ev['summary']}")
    return EXIT_OK


def _run_evaluations(timeline: Timeline, args: argparse.Namespace,
                     since: datetime | None) -> list[dict[str, Any]]:
    """The run's evaluations, narrowed by the same ``--rule``/``--since`` as its events."""
    rows = timeline.alerts.run_evaluations(args.run_id, limit=args.limit)
    return [r for r in rows if (not args.rule or r["rule"] == args.rule)
            and (since is None or r["at"] >= since)]


def cmd_ack(args: argparse.Namespace) -> int:
    from alert_jobs.runtime.actions import ack_alert
    from alert_jobs.runtime.deliver import deliver
    from alert_jobs.store import TimelineError

    timeline = timeline_of(args)
    rules = _rules_or_defaults(args)
    alerts = _targets(timeline, args.target, rule_names(args, timeline))
    pending = [a for a in alerts if not a.state.is_active]
    alerts = [a for a in alerts if a.state.is_active]
    for alert in pending:
        print(f"skipped {alert.rule} [{alert.fingerprint[:12]}]: {alert.state}, not firing yet")
    if not alerts:
        raise UsageError(f"nothing to ack: no firing alert matches {args.target!r}")
    for alert in alerts:
        try:
            ack_alert(rules, timeline, alert.fingerprint, by=args.by, note=args.note or "",
                      outcome=args.outcome)
        except TimelineError as exc:
            raise UsageError(str(exc)) from None
        print(f"acked {alert.rule} [{alert.fingerprint[:12]}]")
    deliver(rules, timeline)  # incident tools (PagerDuty) learn about the ack now
    return EXIT_OK


def cmd_snooze(args: argparse.Namespace) -> int:
    from alert_jobs.store import TimelineError

    timeline = timeline_of(args)
    now = utcnow()
    if args.until:
        until = parse_time(args.until, now)
    else:
        until = now + positive_duration(args.duration or "1h")
    for alert in _targets(timeline, args.target, rule_names(args, timeline)):
        try:
            timeline.actions.snooze(alert.fingerprint, until=until, by=args.by,
                                    note=args.note or "", now=now)
        except TimelineError as exc:
            raise UsageError(str(exc)) from None
        print(f"snoozed {alert.rule} [{alert.fingerprint[:12]}] until {until:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK


def cmd_silence(args: argparse.Namespace) -> int:
    from alert_jobs.store import TimelineError

    try:
        matchers = [Matcher.parse(m) for m in args.matchers]
    except MatcherError as exc:
        raise UsageError(str(exc)) from None
    timeline = timeline_of(args)
    now = utcnow()
    ends = parse_time(args.until, now) if args.until else now + positive_duration(args.duration)
    try:
        silence = timeline.silences.add(matchers, ends_at=ends, created_by=args.by,
                                        comment=args.comment, now=now)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    print(f"silence {silence.id} until {ends:%Y-%m-%d %H:%M} UTC: "
          f"{', '.join(str(m) for m in matchers)}")
    return EXIT_OK


def cmd_silences(args: argparse.Namespace) -> int:
    silences = timeline_of(args).silences.list(include_expired=args.all)
    if not silences:
        print("no silences")
        return EXIT_OK
    rows = [[s.id, ", ".join(str(m) for m in s.matchers), f"{s.starts_at:%Y-%m-%d %H:%M}",
             f"{s.ends_at:%Y-%m-%d %H:%M}", s.created_by, s.comment] for s in silences]
    print(table(rows, ["ID", "MATCHERS", "STARTS (UTC)", "ENDS (UTC)", "BY", "COMMENT"]))
    return EXIT_OK


def cmd_unsilence(args: argparse.Namespace) -> int:
    from alert_jobs.store import TimelineError

    try:
        silence = timeline_of(args).silences.expire(args.id, by=args.by)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    print(f"silence {silence.id} expired")
    return EXIT_OK


def set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    """``disable RULE [--for 1d]`` (without --for: until enabled) or ``enable RULE``."""
    from alert_jobs.store import utcnow

    timeline = timeline_of(args)
    if args.rule not in rule_names(args, timeline):
        raise UsageError(f"unknown rule {args.rule!r} (see `alert-jobs rules validate`)")
    now = utcnow()
    duration = getattr(args, "duration", None)
    until = now + positive_duration(duration) if disabled and duration else None
    timeline.rule_settings.set_disabled(args.rule, disabled, by=args.by, note=args.note or "",
                                        now=now, until=until)
    span = f" until {until:%Y-%m-%d %H:%M} UTC" if until else (
        " until enabled (alert-jobs enable)" if disabled else "")
    print(f"rule {args.rule} {'disabled' if disabled else 'enabled'}{span}")
    return EXIT_OK


def _actor(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--by", default=default_actor(), help="who does this (default: $USER)")
    sp.add_argument("--note", default="", help="free text recorded in the timeline")


def register(commands: Commands) -> None:
    sp = commands.add("status", cmd_status, "current alerts (pending, firing, recovering)")
    sp.add_argument("--all", action="store_true", help="include inactive and resolved alerts")
    sp.add_argument("--json", action="store_true")

    sp = commands.add("timeline", cmd_timeline, "events, oldest first (with --run-id: also "
                      "every evaluation the run made)")
    sp.add_argument("--rule")
    sp.add_argument("--since", help="duration ago (1h, 2d) or ISO time")
    sp.add_argument("--kind", action="append",
                    help="event kind (repeatable): firing, resolved, …")
    sp.add_argument("--run-id", help="only events of this Dagster run, then every evaluation "
                    "it made, also those that changed nothing (--json: an object with "
                    "'events' and 'evaluations')")
    sp.add_argument("--limit", type=int, default=200)
    sp.add_argument("--json", action="store_true")

    sp = commands.add("ack", cmd_ack, "acknowledge: no more pages until resolved")
    sp.add_argument("target", help="rule name or fingerprint (prefix of 6+)")
    _actor(sp)
    sp.add_argument("--outcome", choices=[str(o) for o in AckOutcome],
                    help="what the alert was, for alert-quality rollups")

    sp = commands.add("snooze", cmd_snooze, "mute one alert until a time")
    sp.add_argument("target", help="rule name or fingerprint")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--for", dest="duration", help="how long (default 1h)")
    group.add_argument("--until", help="ISO time (UTC if no offset)")
    _actor(sp)

    sp = commands.add("silence", cmd_silence, "mute every alert matching label matchers")
    sp.add_argument("matchers", nargs="+", metavar="MATCHER",
                    help="name=value, name!=value, name=~regex, name!~regex (anchored)")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--for", dest="duration", default="2h", help="how long (default 2h)")
    group.add_argument("--until", help="ISO time (UTC if no offset)")
    sp.add_argument("--by", default=default_actor())
    sp.add_argument("--comment", required=True, help="why (required)")

    sp = commands.add("silences", cmd_silences, "list silences")
    sp.add_argument("--all", action="store_true", help="include expired")

    sp = commands.add("unsilence", cmd_unsilence, "expire a silence now")
    sp.add_argument("id", help="silence id (or unique prefix)")
    sp.add_argument("--by", default=default_actor())

    for name, disabled in (("disable", True), ("enable", False)):
        sp = commands.add(name, lambda a, d=disabled: set_disabled(a, d),  # type: ignore[misc]
                          f"{name} a rule (no notifications while disabled)")
        sp.add_argument("rule")
        _actor(sp)
        if disabled:
            sp.add_argument("--for", dest="duration",
                            help="how long (1h, 1d, 7d); without it: until enabled")
