"""Who may sign in to the responder pages, read from the environment.

* ``ALERT_JOBS_USERS``: built-in accounts, ``name:hash`` separated by commas or
  whitespace; each hash made by ``alert-jobs users hash NAME`` (scrypt). Names are
  letters, digits and ``._@-``.
* ``ALERT_JOBS_TRUSTED_USER_HEADER``: the header in which a reverse proxy that
  authenticated the user names them (e.g. ``X-Forwarded-User``, oauth2-proxy's
  ``X-Auth-Request-User``). Honoured only when set, and only from the addresses in
  ``ALERT_JOBS_TRUSTED_PROXIES`` (default ``127.0.0.1,::1``): anyone else could send it.
* ``ALERT_JOBS_SESSION_HOURS`` (default 12): a session ends this long after sign-in;
  ``ALERT_JOBS_SESSION_IDLE_MINUTES`` (default 120): or after this long without a request.

With neither accounts nor a header, nobody can sign in: the pages are closed, never
open by default, and the sign-in page says how to configure it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from alert_jobs.http.auth.passwords import PasswordHashError, check_hash_format

USERS_ENV = "ALERT_JOBS_USERS"
HEADER_ENV = "ALERT_JOBS_TRUSTED_USER_HEADER"
PROXIES_ENV = "ALERT_JOBS_TRUSTED_PROXIES"
HOURS_ENV = "ALERT_JOBS_SESSION_HOURS"
IDLE_ENV = "ALERT_JOBS_SESSION_IDLE_MINUTES"

_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class AuthSettingsError(ValueError):
    """A sign-in setting that cannot be used; the message names the variable, never a hash."""


@dataclass(frozen=True)
class AuthSettings:
    accounts: Mapping[str, str] = field(default_factory=dict)  # name → scrypt hash
    user_header: str | None = None
    trusted_proxies: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle: timedelta = timedelta(hours=2)

    @property
    def configured(self) -> bool:
        return bool(self.accounts) or self.user_header is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthSettings:
        env = os.environ if env is None else env
        return cls(accounts=parse_accounts(env.get(USERS_ENV, "")),
                   user_header=_header(env.get(HEADER_ENV, "")),
                   trusted_proxies=frozenset(
                       p.strip() for p in env.get(PROXIES_ENV, "127.0.0.1,::1").split(",")
                       if p.strip()),
                   session_lifetime=timedelta(hours=_positive(env, HOURS_ENV, 12)),
                   session_idle=timedelta(minutes=_positive(env, IDLE_ENV, 120)))


def parse_accounts(text: str) -> dict[str, str]:
    accounts: dict[str, str] = {}
    for i, entry in enumerate(re.split(r"[,\s]+", text.strip()), start=1):
        if not entry:
            continue
        name, sep, hashed = entry.partition(":")
        if not sep or not _NAME.match(name):
            raise AuthSettingsError(
                f"${USERS_ENV}: entry {i} is not NAME:HASH with a name of letters, digits "
                "and ._@- (make an entry with `alert-jobs users hash NAME`)")
        try:
            check_hash_format(hashed)
        except PasswordHashError as exc:
            raise AuthSettingsError(f"${USERS_ENV}: the hash of {name!r} is {exc}") from None
        if name in accounts:
            raise AuthSettingsError(f"${USERS_ENV}: {name!r} is given twice")
        accounts[name] = hashed
    return accounts


def _header(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not _HEADER.match(text):
        raise AuthSettingsError(f"${HEADER_ENV}: {text!r} is not a header name")
    return text.lower()


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AuthSettingsError(f"${name}: {raw!r} is not a number") from None
    if value <= 0:
        raise AuthSettingsError(f"${name}: must be above 0, not {raw}")
    return value
