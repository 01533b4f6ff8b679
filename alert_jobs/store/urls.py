"""Database URLs: which driver to use, and how to show one without its secrets."""

from __future__ import annotations

import re

import sqlalchemy as sa

_SECRET_KEYS = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)


def driver_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` use psycopg 3 (the driver the lock installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL with its password masked, in the user part and in query parameters
    (libpq accepts ``?password=…``)."""
    try:
        parsed = sa.make_url(url)
    except Exception:
        return "<database URL that cannot be parsed>"
    query = {k: ("***" if _SECRET_KEYS.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)
