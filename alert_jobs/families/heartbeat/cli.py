"""CLI for heartbeats: ``alert-jobs ping SLUG`` and
``alert-jobs heartbeat list|pause|resume|pings``."""

from __future__ import annotations

import argparse
import os
import sys

from alert_jobs.core.durations import format_duration
from alert_jobs.families.heartbeat.check import evaluate
from alert_jobs.runtime.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    ago,
    deliver_now,
    rules_of,
    timeline_of,
    utcnow,
)


def cmd_ping(args: argparse.Namespace) -> int:
    from alert_jobs.heartbeat import TOKEN_ENV, URL_ENV, ping

    signal: str | int = ""
    if args.start:
        signal = "start"
    elif args.fail:
        signal = "fail"
    elif args.exit_code is not None:
        if not 0 <= args.exit_code <= 255:
            print("alert-jobs: error: --exit-code must be 0-255", file=sys.stderr)
            return EXIT_USAGE
        signal = args.exit_code
    body = None
    if args.body_file:
        try:
            with open(args.body_file, "rb") as fh:
                body = fh.read()
        except OSError as exc:  # the job's signal matters more than its log: ping anyway
            print(f"alert-jobs: warning: cannot read --body-file {args.body_file} "
                  f"({exc.strerror}); pinging without a body", file=sys.stderr)
    token = os.environ.get(args.token_env) if args.token_env else None
    if args.token_env and not token:
        print(f"alert-jobs: error: environment variable {args.token_env} is not set",
              file=sys.stderr)
        return EXIT_USAGE
    ok = ping(args.slug, signal, base_url=args.url, token=token, rid=args.rid, body=body,
              timeout=args.timeout)
    where = args.url or os.environ.get(URL_ENV) or "the local server"
    if not ok:
        print(f"alert-jobs: ping {args.slug} to {where} failed (see the warning above; "
              f"token from --token-env or ${TOKEN_ENV})", file=sys.stderr)
        return EXIT_FAILED
    print(f"pinged {args.slug}" + (f" ({signal})" if signal != "" else ""))
    return EXIT_OK


def cmd_heartbeat_list(args: argparse.Namespace) -> int:
    from alert_jobs.families.heartbeat.store import HeartbeatStore

    now = utcnow()
    rows = HeartbeatStore(timeline_of(args)).rows()
    if not rows:
        print("no heartbeats (declare them under checks.heartbeat, or enable auto_create)")
        return EXIT_OK
    for row in rows:
        st = row.state
        ev = evaluate(st, now)
        s = st.schedule
        sched = (f"every {format_duration(s.period)}" if s.kind == "simple" and s.period
                 else f"cron '{s.cron}' {s.timezone}")
        due = f", due {ev.grace_start:%Y-%m-%d %H:%M} UTC" if ev.grace_start else ""
        print(f"{st.slug:<32} {ev.status!s:<8} {sched} (grace {format_duration(s.grace)}), "
              f"last ping {ago(st.last_ping, now)}{due}")
    return EXIT_OK


def cmd_heartbeat_pause(args: argparse.Namespace, paused: bool) -> int:
    from alert_jobs.families.heartbeat.run import evaluate_slug
    from alert_jobs.families.heartbeat.store import HeartbeatStore

    timeline = timeline_of(args)
    now = utcnow()
    row = HeartbeatStore(timeline).set_paused(args.slug, paused, now)
    rules = rules_of(args)
    evaluated = evaluate_slug(rules, timeline, args.slug, now=now).outcomes
    print(f"{row.state.slug}: {'paused' if paused else 'resumed (new until its next ping)'}")
    if evaluated:  # pausing resolves what is open: say so to whoever was paged
        deliver_now(rules, timeline)
    return EXIT_OK


def cmd_heartbeat_pings(args: argparse.Namespace) -> int:
    from alert_jobs.families.heartbeat.store import HeartbeatStore

    for p in HeartbeatStore(timeline_of(args)).pings(args.slug, args.limit):
        extra = f" exit={p['exit_code']}" if p["exit_code"] is not None else ""
        extra += f" took={p['duration_seconds']:.1f}s" if p["duration_seconds"] else ""
        body = f"  {p['body'][:80]!r}" if p["body"] else ""
        print(f"{p['at']:%Y-%m-%d %H:%M:%S} {p['kind']:<8}{extra} {p['remote_addr']}{body}")
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add ``ping`` and ``heartbeat`` to the ``alert-jobs`` parser."""
    sp = commands.add("ping", cmd_ping, "ping a heartbeat (success, --start, --fail, --exit-code)")
    sp.add_argument("slug")
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--start", action="store_true")
    group.add_argument("--fail", action="store_true")
    group.add_argument("--exit-code", type=int)
    sp.add_argument("--rid", help="run id pairing a start with its finish")
    sp.add_argument("--url", help="ping server (default $ALERT_JOBS_PING_URL or "
                                  "http://127.0.0.1:8787)")
    sp.add_argument("--token-env", help="environment variable holding the check's token")
    sp.add_argument("--body-file", help="send this file as the body (log tail)")
    sp.add_argument("--timeout", type=float, default=5.0)

    hb_sub = commands.group("heartbeat", "heartbeat commands")
    sp = hb_sub.add_parser("list", help="every heartbeat with its state and next deadline")
    sp.set_defaults(fn=cmd_heartbeat_list)
    for name, paused in (("pause", True), ("resume", False)):
        sp = hb_sub.add_parser(name, help=f"{name} a heartbeat" + (
            " (no alerts; open ones resolve)" if paused else ""))
        sp.add_argument("slug")
        sp.set_defaults(fn=lambda a, p=paused: cmd_heartbeat_pause(a, p))
    sp = hb_sub.add_parser("pings", help="a heartbeat's latest pings, newest first")
    sp.add_argument("slug")
    sp.add_argument("--limit", type=int, default=20)
    sp.set_defaults(fn=cmd_heartbeat_pings)
