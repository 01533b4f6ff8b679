"""Parse and format the short durations used in rules (``30s``, ``5m``, ``1h30m``, ``7d``).

One grammar everywhere (rules file, CLI, Dagster job config) so a user never has
to remember which place wants seconds and which wants minutes.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


class DurationError(ValueError):
    """A duration string that does not follow the ``<number><unit>`` grammar."""


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Return a timedelta for ``text``; bare ``0`` is accepted, other bare numbers are not.

    Bare numbers are rejected because ``for: 5`` is ambiguous (seconds? minutes?)
    and silently guessing is how alerts end up firing 60x too late.
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise DurationError(f"expected a duration like 5m, got {text!r}")
    if isinstance(text, int | float):
        if text == 0:
            return timedelta(0)
        raise DurationError(f"expected a duration like 5m, got {text!r} (add a unit: s, m, h, d)")
    raw = str(text).strip().lower()
    if raw == "0":
        return timedelta(0)
    if not _WHOLE.match(raw):
        raise DurationError(f"expected a duration like 5m, got {text!r}")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(raw))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Format ``delta`` the way a person says it: ``30 minutes``, ``1 hour``, ``2 days``."""
    seconds = round(delta.total_seconds())
    if seconds == 0:
        return "0 seconds"
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    if seconds > 3600:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    if seconds > 60:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest:02d}s"
    return f"{seconds} second" + ("s" if seconds != 1 else "")


def short_duration(delta: timedelta) -> str:
    """Compact form for tables: ``90s`` → ``1m30s``, ``3600s`` → ``1h``."""
    seconds = round(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
