"""``alert-jobs users hash NAME``: an entry for ``$ALERT_JOBS_USERS`` (the responder
pages' built-in accounts). The password is read without echo from the terminal, or
from standard input with ``--stdin`` (for scripts and secret managers); it is never an
argument, which would land in the shell's history and the process list."""

from __future__ import annotations

import argparse
import getpass
import sys

from alert_jobs.runtime.commands import EXIT_OK, Commands, UsageError

MIN_LENGTH = 12


def cmd_users_hash(args: argparse.Namespace) -> int:
    from alert_jobs.http.auth.passwords import hash_password
    from alert_jobs.http.auth.settings import USERS_ENV, parse_accounts

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ; nothing printed")
    if len(password) < MIN_LENGTH:
        raise UsageError(f"a password needs at least {MIN_LENGTH} characters")
    entry = f"{args.name}:{hash_password(password)}"
    try:
        parse_accounts(entry)  # the same check the server makes at start-up
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(entry)
    print(f"add it to ${USERS_ENV} (entries separated by commas)", file=sys.stderr)
    return EXIT_OK


def register(commands: Commands) -> None:
    users = commands.group("users", "accounts of the responder pages (alert-jobs serve)")
    sp = users.add_parser("hash", help=f"print NAME:HASH for $ALERT_JOBS_USERS (password of "
                                       f"{MIN_LENGTH}+ characters, asked without echo)")
    sp.add_argument("name")
    sp.add_argument("--stdin", action="store_true",
                    help="read the password from the first line of standard input")
    sp.set_defaults(fn=cmd_users_hash)
