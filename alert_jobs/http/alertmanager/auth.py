"""Who may call the Alertmanager API v2 of ``alert-jobs serve``: never anyone by default.

* a **bearer token** from ``ALERT_JOBS_API_TOKENS`` (``name=token`` entries separated by
  commas; tokens of 24+ characters, e.g. ``python -c "import secrets;
  print(secrets.token_urlsafe(32))"``): for Prometheus (``alerting.alertmanagers[].
  authorization``), Grafana and deploy bots; the name is the actor in the timeline;
* **basic auth** with a responder-page account (``ALERT_JOBS_USERS``): for ``amtool``
  (``--http.config.file`` with ``basic_auth``) and people. A scrypt check costs ~0.1 s,
  so a success is remembered for a few minutes by a SHA-256 of the pair (a tool that
  calls several times a minute is not slowed down; a wrong password is never cached).

With neither configured every call is refused with 401 saying how to configure it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import Request

from alert_jobs.http.auth.passwords import PasswordHashError, dummy_hash, verify_password
from alert_jobs.http.auth.throttle import LoginThrottle

TOKENS_ENV = "ALERT_JOBS_API_TOKENS"
MIN_TOKEN = 24
#: How long a verified basic-auth pair is remembered.
BASIC_TTL_S = 300.0
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


class Throttled(Exception):
    """Too many failed basic-auth checks for the account or the address: retry later."""

    def __init__(self, seconds: int):
        super().__init__(f"too many failed sign-ins; try again in {seconds} s")
        self.seconds = seconds


class ApiAuthError(ValueError):
    """An API setting that cannot be used; the message names the variable, never a token."""


def parse_tokens(text: str) -> dict[str, str]:
    """``name=token,…`` → {token: name}."""
    tokens: dict[str, str] = {}
    for i, entry in enumerate(re.split(r"[,\s]+", text.strip()), start=1):
        if not entry:
            continue
        name, sep, token = entry.partition("=")
        if not sep or not _NAME.match(name):
            raise ApiAuthError(f"${TOKENS_ENV}: entry {i} is not NAME=TOKEN with a name of "
                               "letters, digits and ._@-")
        if len(token) < MIN_TOKEN:
            raise ApiAuthError(f"${TOKENS_ENV}: the token of {name!r} is shorter than "
                               f"{MIN_TOKEN} characters")
        if token in tokens:
            raise ApiAuthError(f"${TOKENS_ENV}: two entries share a token")
        tokens[token] = name
    return tokens


@dataclass
class ApiAuth:
    tokens: Mapping[str, str] = field(default_factory=dict)  # token → name
    accounts: Mapping[str, str] = field(default_factory=dict)  # name → scrypt hash
    #: The responder pages' throttle (shared, so the API is no side door for guessing).
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    _verified: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_env(cls, accounts: Mapping[str, str],
                 env: Mapping[str, str] | None = None) -> ApiAuth:
        env = os.environ if env is None else env
        return cls(parse_tokens(env.get(TOKENS_ENV, "")), dict(accounts))

    @property
    def configured(self) -> bool:
        return bool(self.tokens) or bool(self.accounts)

    def caller(self, request: Request) -> str | None:
        """The authenticated caller's name, or ``None`` (blocking: scrypt on a miss);
        raises :class:`Throttled` after too many failed basic-auth checks."""
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            for token, name in self.tokens.items():  # compare every one: constant time
                if hmac.compare_digest(token.encode(), credentials.encode()):
                    return name
            return None
        if scheme.lower() == "basic" and credentials:
            return self._basic(credentials, request.client.host if request.client else "")
        return None

    def _basic(self, credentials: str, client: str) -> str | None:
        try:
            user, sep, password = base64.b64decode(credentials, validate=True).decode(
                "utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        stored = self.accounts.get(user)
        key = hashlib.sha256(f"{user}\0{password}\0{stored}".encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            if stored is not None and self._verified.get(key, 0.0) > now:
                return user
        # As the sign-in page: checked and counted at once, an unknown name costs a
        # real scrypt check, and a success takes the count back.
        wait = self.throttle.attempt(user, client, datetime.now(UTC))
        if wait is not None:
            raise Throttled(wait)
        try:
            ok = verify_password(password, stored or dummy_hash()) and stored is not None
        except PasswordHashError:
            return None
        if ok:
            self.throttle.succeeded(user, client)
            with self._lock:
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[key] = now + BASIC_TTL_S
            return user
        return None
