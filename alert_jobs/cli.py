"""``alert-jobs``: look at and act on alerts from a terminal.

Exit codes: 0 success, 1 the operation failed at run time (e.g. database down),
2 the request was wrong (unknown name, bad duration, invalid rules file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alert_jobs import cli_heartbeat
from alert_jobs.config import RulesError, RulesFile, load_rules
from alert_jobs.durations import DurationError, parse_duration, short_duration
from alert_jobs.model import AckOutcome, AlertRecord, Matcher, MatcherError
from alert_jobs.timeline import Timeline, TimelineError, safe_url, utcnow

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The user asked for something that cannot be: exit 2 with this message."""


def _default_actor() -> str:
    return os.environ.get("ALERT_JOBS_USER") or os.environ.get("USER") or "cli"


def _positive_duration(text: str) -> timedelta:
    try:
        delta = parse_duration(text)
    except DurationError as exc:
        raise UsageError(str(exc)) from None
    if delta <= timedelta(0):
        raise UsageError(f"duration must be positive, got {text!r}")
    return delta


def _parse_time(text: str, now: datetime) -> datetime:
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


def _ago(when: datetime | None, now: datetime) -> str:
    return "-" if when is None else short_duration(now - when) + " ago"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def _timeline(args: argparse.Namespace) -> Timeline:
    return Timeline(args.database_url) if args.database_url else Timeline()


def _targets(timeline: Timeline, target: str, known_rules: set[str]) -> list[AlertRecord]:
    try:
        return timeline.resolve_target(target)
    except TimelineError as exc:
        if target in known_rules:
            raise UsageError(f"rule {target!r} has no active alert") from None
        raise UsageError(str(exc)) from None


def _rule_names(args: argparse.Namespace, timeline: Timeline) -> set[str]:
    names = set(timeline.known_rules())
    with contextlib.suppress(RulesError):  # a broken rules file must not block an ack
        names |= {r.name for r in load_rules(args.rules).rules()}
    return names


# ----- commands ---------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    timeline = _timeline(args)
    now = utcnow()
    alerts = timeline.alerts(include_inactive=args.all)
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
                         _ago(a.fired_at or a.active_since, now), ", ".join(flags) or "-",
                         a.last_summary[:80]])
        print(_table(rows, ["FINGERPRINT", "RULE", "STATE", "SEVERITY", "SINCE", "FLAGS",
                            "LAST CHECK"]))
    disabled = timeline.disabled_rules()
    if disabled:
        print(f"\ndisabled rules: {', '.join(sorted(disabled))}")
    problems = timeline.delivery_problems()
    if problems["retrying"]:
        print(f"\n{problems['retrying']} notification(s) waiting for retry; last error: "
              f"{problems['retrying_last_error']}")
    if problems["failed"]:
        print(f"{problems['failed']} notification(s) failed permanently; last error: "
              f"{problems['failed_last_error']}")
    return EXIT_OK


def _record_json(a: AlertRecord) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, datetime) else v) for k, v in a.__dict__.items()}


def cmd_timeline(args: argparse.Namespace) -> int:
    timeline = _timeline(args)
    now = utcnow()
    since = _parse_time(args.since, now) if args.since else None
    if args.rule and args.rule not in _rule_names(args, timeline):
        raise UsageError(f"unknown rule {args.rule!r}")
    events = timeline.events(rule=args.rule, since=since, kinds=args.kind or (),
                             run_id=args.run_id, limit=args.limit)
    if args.json:
        print(json.dumps(events, indent=2, default=str))
        return EXIT_OK
    if not events:
        print("no events")
        return EXIT_OK
    for e in events:
        fp = (e["fingerprint"] or "")[:8]
        run = f" run={e['run_id'][:8]}" if e["run_id"] else ""
        who = f" by {e['actor']}" if e["actor"] != "system" else ""
        print(f"{e['at']:%Y-%m-%d %H:%M:%S}  {e['kind']:<19} {e['rule'] or '-':<20} {fp:<8}"
              f"{run}{who}  {e['reason']}")
    return EXIT_OK


def _rules_or_defaults(args: argparse.Namespace) -> RulesFile:
    """The rules file if it loads; acking must work even while the file is being fixed."""
    try:
        return load_rules(args.rules)
    except RulesError:
        return RulesFile()


def cmd_ack(args: argparse.Namespace) -> int:
    from alert_jobs.runner import ack_alert, deliver

    timeline = _timeline(args)
    rules = _rules_or_defaults(args)
    alerts = _targets(timeline, args.target, _rule_names(args, timeline))
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


def cmd_notify_test(args: argparse.Namespace) -> int:
    from alert_jobs.notify.testing import send_test

    rules = load_rules(args.rules)  # a RulesError exits 2 in main(), listing every problem
    try:
        error = send_test(rules, _timeline(args), args.receiver, by=args.by)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if error is not None:
        print(f"test message to {args.receiver} failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"test message delivered to {args.receiver}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from alert_jobs.links import SECRET_ENV, link_secret
    from alert_jobs.resources import shared_timeline
    from alert_jobs.server import create_app

    if link_secret() is None:
        print(f"alert-jobs: warning: ${SECRET_ENV} is unset or shorter than 16 characters; "
              "action links are refused until it is set", file=sys.stderr)
    database_url = args.database_url
    app = create_app(lambda: shared_timeline(database_url), lambda: load_rules(args.rules))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return EXIT_OK


def cmd_snooze(args: argparse.Namespace) -> int:
    timeline = _timeline(args)
    now = utcnow()
    if args.until:
        until = _parse_time(args.until, now)
    else:
        until = now + _positive_duration(args.duration or "1h")
    for alert in _targets(timeline, args.target, _rule_names(args, timeline)):
        try:
            timeline.snooze(alert.fingerprint, until=until, by=args.by, note=args.note or "",
                            now=now)
        except TimelineError as exc:
            raise UsageError(str(exc)) from None
        print(f"snoozed {alert.rule} [{alert.fingerprint[:12]}] until {until:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK


def cmd_silence(args: argparse.Namespace) -> int:
    try:
        matchers = [Matcher.parse(m) for m in args.matchers]
    except MatcherError as exc:
        raise UsageError(str(exc)) from None
    timeline = _timeline(args)
    now = utcnow()
    ends = _parse_time(args.until, now) if args.until else now + _positive_duration(args.duration)
    try:
        silence = timeline.add_silence(matchers, ends_at=ends, created_by=args.by,
                                       comment=args.comment, now=now)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    print(f"silence {silence.id} until {ends:%Y-%m-%d %H:%M} UTC: "
          f"{', '.join(str(m) for m in matchers)}")
    return EXIT_OK


def cmd_silences(args: argparse.Namespace) -> int:
    silences = _timeline(args).silences(include_expired=args.all)
    if not silences:
        print("no silences")
        return EXIT_OK
    rows = [[s.id, ", ".join(str(m) for m in s.matchers), f"{s.starts_at:%Y-%m-%d %H:%M}",
             f"{s.ends_at:%Y-%m-%d %H:%M}", s.created_by, s.comment] for s in silences]
    print(_table(rows, ["ID", "MATCHERS", "STARTS (UTC)", "ENDS (UTC)", "BY", "COMMENT"]))
    return EXIT_OK


def cmd_unsilence(args: argparse.Namespace) -> int:
    try:
        silence = _timeline(args).expire_silence(args.id, by=args.by)
    except TimelineError as exc:
        raise UsageError(str(exc)) from None
    print(f"silence {silence.id} expired")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    timeline = _timeline(args)
    if args.rule not in _rule_names(args, timeline):
        raise UsageError(f"unknown rule {args.rule!r} (see `alert-jobs rules validate`)")
    timeline.set_rule_disabled(args.rule, disabled, by=args.by, note=args.note or "")
    print(f"rule {args.rule} {'disabled' if disabled else 'enabled'}")
    return EXIT_OK


def cmd_rules_validate(args: argparse.Namespace) -> int:
    path = args.file or args.rules
    try:
        rules = load_rules(path)
    except RulesError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return EXIT_USAGE
    names = [r.name for r in rules.rules()]
    print(f"{path}: ok ({len(names)} rules: {', '.join(names) or 'none'}; "
          f"{len(rules.receivers)} receivers)")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    timeline = _timeline(args)
    applied = timeline.upgrade()
    where = safe_url(timeline.url)
    if applied:
        print(f"{where}: applied {', '.join(applied)}")
    else:
        print(f"{where}: up to date (schema version {timeline.schema_version()})")
    return EXIT_OK


def cmd_deliver(args: argparse.Namespace) -> int:
    from alert_jobs.runner import deliver

    rules = load_rules(args.rules)  # a RulesError exits 2 in main(), listing every problem
    report = deliver(rules, _timeline(args))
    print(f"delivery: {report}")
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


def cmd_redis_check(args: argparse.Namespace) -> int:
    """Check Redis targets now, like one scheduled run: the guide's "test the monitor"."""
    from alert_jobs.checks.formatting import fmt_number
    from alert_jobs.checks.redis_quota import fmt_bytes
    from alert_jobs.redis_check import check_targets
    from alert_jobs.runner import deliver

    rules = load_rules(args.rules)  # a RulesError exits 2 in main(), listing every problem
    by_name = {t.name: t for t in rules.checks.redis_quota}
    unknown = [n for n in args.targets if n not in by_name]
    if unknown:
        raise UsageError(f"unknown redis_quota target(s) {', '.join(unknown)} "
                         f"(known: {', '.join(by_name) or 'none'})")
    targets = [by_name[n] for n in args.targets] or list(by_name.values())
    if not targets:
        raise UsageError(f"{args.rules} has no redis_quota targets")
    timeline = _timeline(args)
    results = check_targets(rules, targets, timeline)
    for r in results:
        m = r.metrics
        print(f"{r.target}:")
        if r.error:
            print(f"  ERROR {r.error}")
        if "used" in m:
            print(f"  commands used: {fmt_number(round(m['used']))} of {fmt_number(m['limit'])} "
                  f"({m['percent']:.1f} %)")
        if "rate_ops_per_sec" in m:
            projected = fmt_number(round(m.get("projected", 0)))
            print(f"  rate: {m['rate_ops_per_sec']:.2f} ops/s, projected {projected}")
        if "keys" in m:
            hit = f"{m['hit_rate_percent']:.1f} %" if "hit_rate_percent" in m else "n/a"
            print(f"  keys: {fmt_number(m['keys'])}, hit rate: {hit}, "
                  f"memory: {fmt_bytes(m['memory_used_bytes'])}")
        print(f"  monitor spent {r.commands_spent} command(s) on this check")
        for outcome in r.outcomes:
            obs = outcome.observation
            level = f"{obs.severity}" if obs.severity else str(obs.status)
            print(f"  {obs.labels.get('check', 'quota')}: {level}, {outcome.state}: {obs.summary}")
    queued = [i for r in results for o in r.outcomes for i in o.result.outbox_ids]
    if queued:
        print(f"delivery: {deliver(rules, timeline, ids=queued)}")
    return EXIT_FAILED if any(r.error for r in results) else EXIT_OK


# ----- parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alert-jobs", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=None,
                   help="timeline database (default: $ALERT_JOBS_DATABASE_URL or "
                        "$DAGSTER_HOME/alerts.db)")
    p.add_argument("--rules", default=os.environ.get("ALERT_JOBS_RULES", "alerts.yaml"),
                   help="rules file (default: $ALERT_JOBS_RULES or alerts.yaml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int],
            help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def actor(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--by", default=_default_actor(), help="who does this (default: $USER)")
        sp.add_argument("--note", default="", help="free text recorded in the timeline")

    sp = add("status", cmd_status, "current alerts (pending, firing, recovering)")
    sp.add_argument("--all", action="store_true", help="include inactive and resolved alerts")
    sp.add_argument("--json", action="store_true")

    sp = add("timeline", cmd_timeline, "events, oldest first")
    sp.add_argument("--rule")
    sp.add_argument("--since", help="duration ago (1h, 2d) or ISO time")
    sp.add_argument("--kind", action="append", help="event kind (repeatable): firing, resolved, …")
    sp.add_argument("--run-id", help="only events of this Dagster run")
    sp.add_argument("--limit", type=int, default=200)
    sp.add_argument("--json", action="store_true")

    sp = add("ack", cmd_ack, "acknowledge: no more pages until resolved")
    sp.add_argument("target", help="rule name or fingerprint (prefix of 6+)")
    actor(sp)
    sp.add_argument("--outcome", choices=[str(o) for o in AckOutcome],
                    help="what the alert was, for alert-quality rollups")

    sp = add("snooze", cmd_snooze, "mute one alert until a time")
    sp.add_argument("target", help="rule name or fingerprint")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--for", dest="duration", help="how long (default 1h)")
    group.add_argument("--until", help="ISO time (UTC if no offset)")
    actor(sp)

    sp = add("silence", cmd_silence, "mute every alert matching label matchers")
    sp.add_argument("matchers", nargs="+", metavar="MATCHER",
                    help="name=value, name!=value, name=~regex, name!~regex (anchored)")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--for", dest="duration", default="2h", help="how long (default 2h)")
    group.add_argument("--until", help="ISO time (UTC if no offset)")
    sp.add_argument("--by", default=_default_actor())
    sp.add_argument("--comment", required=True, help="why (required)")

    sp = add("silences", cmd_silences, "list silences")
    sp.add_argument("--all", action="store_true", help="include expired")

    sp = add("unsilence", cmd_unsilence, "expire a silence now")
    sp.add_argument("id", help="silence id (or unique prefix)")
    sp.add_argument("--by", default=_default_actor())

    for name, disabled in (("disable", True), ("enable", False)):
        sp = add(name, lambda a, d=disabled: _set_disabled(a, d),  # type: ignore[misc]
                 f"{name} a rule (no notifications while disabled)")
        sp.add_argument("rule")
        actor(sp)

    rules = sub.add_parser("rules", help="rules file commands")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    sp = rules_sub.add_parser("validate", help="check a rules file; exit 0 if valid, 2 if not")
    sp.add_argument("file", nargs="?")
    sp.set_defaults(fn=cmd_rules_validate)

    db = sub.add_parser("db", help="timeline database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    sp = db_sub.add_parser("upgrade", help="create or migrate the timeline tables (idempotent)")
    sp.set_defaults(fn=cmd_db_upgrade)

    add("deliver", cmd_deliver, "send due notifications from the outbox now")

    notify = sub.add_parser("notify", help="receiver commands")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="COMMAND")
    sp = notify_sub.add_parser("test", help="send a clearly marked test message through a "
                                            "receiver; exit 1 if it fails")
    sp.add_argument("receiver")
    sp.add_argument("--by", default=_default_actor())
    sp.set_defaults(fn=cmd_notify_test)

    sp = add("serve", cmd_serve, "serve signed action links and /healthz over HTTP")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8787)

    redis_cmd = sub.add_parser("redis", help="Redis quota commands")
    redis_sub = redis_cmd.add_subparsers(dest="redis_command", required=True, metavar="COMMAND")
    sp = redis_sub.add_parser("check", help="check redis_quota targets now (all by default); "
                                            "exit 1 if any cannot be read")
    sp.add_argument("targets", nargs="*", metavar="TARGET")
    sp.set_defaults(fn=cmd_redis_check)
    cli_heartbeat.register(sub)

    from alert_jobs import cli_quality  # its commands import this module's helpers

    cli_quality.register(sub, rules_sub)

    from alert_jobs import cli_drift

    cli_drift.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
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
    except TimelineError as exc:
        print(f"alert-jobs: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a database that is down, a disk that is full
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None) or exc
            print(f"alert-jobs: timeline database error: {str(orig).splitlines()[0]}",
                  file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
