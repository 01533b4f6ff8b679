"""``alert-jobs`` commands that run things: check rules now, deliver, test a receiver,
validate the rules file, upgrade the database, serve HTTP."""

from __future__ import annotations

import argparse
import os
import sys

from alert_jobs.config import RulesError, RulesFile, load_rules
from alert_jobs.runtime.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    UsageError,
    default_actor,
    deliver_now,
    rules_of,
    timeline_of,
    utcnow,
)


def cmd_check(args: argparse.Namespace) -> int:
    """Evaluate rules now through their family, as their Dagster runs do, and deliver."""
    from alert_jobs.runtime.family import family_of

    rules = rules_of(args)
    try:
        chosen = [rules.rule(name) for name in args.rule_names]
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    timeline = timeline_of(args)
    failed = False
    for rule in chosen:
        family = family_of(rule)
        if family.evaluate is None:
            raise UsageError(f"rule {rule.name!r} ({family.name}) is evaluated by its sensor, "
                             "not on demand")
        outcomes = family.evaluate(rules, rule, timeline, now=utcnow(), run_id=None)
        for outcome in outcomes:
            obs = outcome.observation
            failed = failed or str(obs.status) == "error"
            labels = ", ".join(f"{k}={v}" for k, v in sorted(obs.labels.items()))
            where = f" {{{labels}}}" if labels else ""
            print(f"{rule.name}{where}: {obs.status}, {outcome.state}: {obs.summary}")
    deliver_now(rules, timeline)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    from alert_jobs.runtime.actions import send_test

    rules = rules_of(args)
    try:
        error = send_test(rules, timeline_of(args), args.receiver, by=args.by)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if error is not None:
        print(f"test message to {args.receiver} failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"test message delivered to {args.receiver}")
    return EXIT_OK


def warn_fallback(path: str, error: Exception, doing: str) -> None:
    """The loud stderr warning of a command running on the last good rules."""
    from alert_jobs.config import last_good_path
    from alert_jobs.config.watch import problem_lines

    lines = problem_lines(error)
    print(f"alert-jobs: WARNING: rules file {path} is invalid ({len(lines)} problem(s)); "
          f"{doing} on its last good copy ({last_good_path(path)}) until it is fixed:",
          file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def no_last_good(path: str, error: RulesError) -> UsageError:
    """A broken rules file with nothing to fall back to: every problem, then why."""
    from alert_jobs.config import last_good_path

    for line in error.lines():
        print(line, file=sys.stderr)
    hint = ("" if os.environ.get("DAGSTER_HOME") else
            " (DAGSTER_HOME is unset, so the copy is looked for in ./.dagster_home; run "
            "with the Dagster instance's DAGSTER_HOME to share its copy)")
    return UsageError(f"rules file {path} is invalid and there is no last good copy "
                      f"({last_good_path(path)}) to fall back to{hint}; fix the file")


def rules_or_last_good(args: argparse.Namespace, doing: str) -> RulesFile:
    """The rules file, else its last good copy with a loud warning (a typo must not stop
    deliveries); a :class:`UsageError` (exit 2) when there is neither."""
    from alert_jobs.config import load_rules_or_last_good

    try:
        loaded = load_rules_or_last_good(args.rules)
    except RulesError as exc:
        raise no_last_good(args.rules, exc) from None
    if loaded.error is not None:
        warn_fallback(args.rules, loaded.error, doing)
    return loaded.rules


def cmd_serve(args: argparse.Namespace) -> int:
    import gc

    import uvicorn

    from alert_jobs.config import RulesWatcher
    from alert_jobs.http.alertmanager import ApiAuth
    from alert_jobs.http.alertmanager.auth import ApiAuthError
    from alert_jobs.http.app import create_app
    from alert_jobs.http.auth import AuthSettings, AuthSettingsError
    from alert_jobs.http.auth.settings import USERS_ENV
    from alert_jobs.notify.links import SECRET_ENV, link_secret
    from alert_jobs.store import shared_timeline

    try:
        auth = AuthSettings.from_env()
        api_auth = ApiAuth.from_env(auth.accounts)
    except (AuthSettingsError, ApiAuthError) as exc:
        raise UsageError(str(exc)) from None
    if not auth.configured:
        print(f"alert-jobs: warning: ${USERS_ENV} is unset: nobody can sign in to the "
              "responder pages (make an account with `alert-jobs users hash NAME`)",
              file=sys.stderr)
    if link_secret() is None:
        print(f"alert-jobs: warning: ${SECRET_ENV} is unset or shorter than 16 characters; "
              "action links are refused until it is set", file=sys.stderr)
    try:  # parsed once here; then re-read in the background only when the file changes
        watcher = RulesWatcher(args.rules)
    except RulesError as exc:
        raise no_last_good(args.rules, exc) from None
    if watcher.snapshot.error is not None:
        warn_fallback(args.rules, watcher.snapshot.error, "serving pings and links")
    database_url = args.database_url
    shared_timeline(database_url).ensure_schema()  # not on the first ping's clock
    app = create_app(lambda: shared_timeline(database_url), watcher=watcher, auth=auth,
                     api_auth=api_auth)
    # What start-up allocated (rules models, SQLAlchemy, Starlette) is never freed: keep
    # the collector from walking it again and again under load.
    gc.collect()
    gc.freeze()
    # proxy_headers=False: uvicorn would otherwise replace the peer address with one
    # from X-Forwarded-For, and the trusted-proxy check of the sign-in (which must see the
    # proxy's own address) would then judge an address the client chose.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False)
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


def cmd_rules_reset_baseline(args: argparse.Namespace) -> int:
    """Forget what baseline rules backfilled and adopted: after a rule's query changed,
    its old backfilled values describe another number. Evaluations stay (they are the
    timeline); the next run backfills again."""
    rules = rules_of(args)
    for name in args.names:
        try:
            rules.rule(name)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    timeline = timeline_of(args)
    for name in args.names:
        deleted = timeline.baselines.forget(name)
        print(f"{name}: {deleted:,} backfilled point(s) and state row(s) deleted; the next "
              "run backfills its history again")
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from alert_jobs.store import safe_url

    timeline = timeline_of(args)
    applied = timeline.upgrade()
    where = safe_url(timeline.url)
    if applied:
        print(f"{where}: applied {', '.join(applied)}")
    else:
        print(f"{where}: up to date (schema version {timeline.schema_version()})")
    return EXIT_OK


def cmd_db_trim(args: argparse.Namespace) -> int:
    """What the daily ``timeline_retention`` asset does, now: the ``retention:`` settings
    of the rules file (or its last good copy), every family's trim hook."""
    from alert_jobs.runtime.family import family_trims
    from alert_jobs.store import safe_url, utcnow
    from alert_jobs.store.retention import trim

    rules = rules_or_last_good(args, "trimming the timeline")
    if not rules.retention.enabled:
        print("retention is off (retention.enabled: false): nothing removed")
        return EXIT_OK
    timeline = timeline_of(args)
    trimmed = trim(timeline, rules.retention, utcnow(), family_trims())
    rows = ", ".join(f"{t} {n:,}" for t, n in sorted(trimmed.rows.items()) if n) or "nothing"
    print(f"{safe_url(timeline.url)}: removed {rows} ({trimmed.batches} batches, "
          f"{trimmed.seconds:.1f} s)")
    return EXIT_OK


def cmd_deliver(args: argparse.Namespace) -> int:
    from alert_jobs.runtime.deliver import deliver

    rules = rules_or_last_good(args, "delivering")
    report = deliver(rules, timeline_of(args))
    print(f"delivery: {report}")
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    return EXIT_OK if report.failed == 0 else EXIT_FAILED


def register(commands: Commands) -> None:
    sp = commands.add("check", cmd_check, "evaluate rules now, as their scheduled runs do, "
                                          "and deliver; exit 1 if a check cannot run")
    sp.add_argument("rule_names", nargs="+", metavar="RULE")

    rules = commands.group("rules", "rules file commands")
    sp = rules.add_parser("validate", help="check a rules file; exit 0 if valid, 2 if not")
    sp.add_argument("file", nargs="?")
    sp.set_defaults(fn=cmd_rules_validate)
    sp = rules.add_parser("reset-baseline", help="forget baseline rules' backfilled values "
                                                 "and adopted levels (after changing a "
                                                 "query): their next run backfills again")
    sp.add_argument("names", nargs="+", metavar="RULE")
    sp.set_defaults(fn=cmd_rules_reset_baseline)

    db = commands.group("db", "timeline database commands")
    sp = db.add_parser("upgrade", help="create or migrate the timeline tables (idempotent)")
    sp.set_defaults(fn=cmd_db_upgrade)
    sp = db.add_parser("trim", help="remove what the retention: settings say is old, now "
                                    "(as the daily timeline_retention asset does)")
    sp.set_defaults(fn=cmd_db_trim)

    commands.add("deliver", cmd_deliver, "send due notifications from the outbox now")

    notify = commands.group("notify", "receiver commands")
    sp = notify.add_parser("test", help="send a clearly marked test message through a "
                                        "receiver; exit 1 if it fails")
    sp.add_argument("receiver")
    sp.add_argument("--by", default=default_actor())
    sp.set_defaults(fn=cmd_notify_test)

    sp = commands.add("serve", cmd_serve, "serve the responder pages (sign-in), heartbeat "
                                          "pings, signed action links, /metrics and /healthz "
                                          "over HTTP")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8787)
