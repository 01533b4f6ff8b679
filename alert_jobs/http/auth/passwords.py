"""Password hashes for the responder pages' built-in accounts (scrypt, standard library).

A hash is ``scrypt$<n>$<r>$<p>$<salt>$<key>`` (salt and key in URL-safe base64), so it
can sit in an environment variable and be checked without any other setting.
``alert-jobs users hash NAME`` prints one; the server never sees a password in its
configuration. scrypt is memory-hard, so a leaked hash is expensive to guess.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
#: 2**15 × 8 × 128 bytes = 32 MiB and ~0.1 s per check: slow for a guesser, fine for a login.
N, R, P = 2**15, 8, 1
MAXMEM = 64 * 1024 * 1024
KEY_BYTES = 32


class PasswordHashError(ValueError):
    """A stored hash that is not ``scrypt$n$r$p$salt$key``."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    if not password:
        raise ValueError("a password cannot be empty")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM,
                         dklen=KEY_BYTES)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, checked when a user name is unknown, so an unknown
    name costs the same time as a wrong password (the answer's timing names no account)."""
    return hash_password(secrets.token_urlsafe(16))


def check_hash_format(stored: str) -> None:
    """Raise :class:`PasswordHashError` (without echoing the hash) unless well-formed."""
    _parse(stored)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PasswordHashError("not a scrypt$n$r$p$salt$key hash (make one with "
                                "`alert-jobs users hash NAME`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise PasswordHashError("a scrypt hash with unreadable numbers or base64 (make one "
                                "with `alert-jobs users hash NAME`)") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(key) < 16:
        raise PasswordHashError("a scrypt hash with impossible parameters (make one with "
                                "`alert-jobs users hash NAME`)")
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; constant-time in the key comparison."""
    n, r, p, salt, key = _parse(stored)
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM,
                         dklen=len(key))
    return hmac.compare_digest(got, key)
