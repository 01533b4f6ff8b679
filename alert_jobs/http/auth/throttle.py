"""Failed sign-ins are rate-limited, per account and per client address.

After ``limit`` failures within ``window`` for a user name (someone guessing one
account's password) or for a client address (someone trying many accounts), further
attempts are refused with 429 and a ``Retry-After`` until the oldest failure leaves the
window, whether or not the password would be right. A success clears the account's
count. Counts live in the server process: each ``serve`` replica limits on its own,
which still caps a guesser at replicas × ``limit`` per window.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

#: Remembered keys, at most: a flood of random user names cannot grow memory forever.
MAX_KEYS = 10_000


class LoginThrottle:
    def __init__(self, limit: int = 5, window: timedelta = timedelta(minutes=15)):
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, client: str) -> tuple[str, str]:
        return f"user:{username.lower()}", f"addr:{client}"

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, username: str, client: str, now: datetime) -> int | None:
        """Seconds until a sign-in may be tried again, or ``None`` if it may be now."""
        with self._lock:
            waits = []
            for key in self._keys(username, client):
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    waits.append((times[0] + self.window - now).total_seconds())
            return max(1, int(max(waits)) + 1) if waits else None

    def attempt(self, username: str, client: str, now: datetime) -> int | None:
        """Check and count one sign-in attempt at once (under the lock): the seconds to
        wait if blocked (nothing counted), else ``None`` with the attempt counted as a
        failure until :meth:`succeeded` clears it. Checking first and counting after the
        slow password check would let a burst of parallel guesses all pass the check."""
        with self._lock:
            waits = []
            for key in self._keys(username, client):
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    waits.append((times[0] + self.window - now).total_seconds())
            if waits:
                return max(1, int(max(waits)) + 1)
            self._record(username, client, now)
            return None

    def failed(self, username: str, client: str, now: datetime) -> None:
        with self._lock:
            self._record(username, client, now)

    def _record(self, username: str, client: str, now: datetime) -> None:
        """Count a failure (the caller holds the lock)."""
        if len(self._failures) >= MAX_KEYS:  # drop the stalest keys
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[
                    :MAX_KEYS // 10]:
                del self._failures[key]
        for key in self._keys(username, client):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, client: str) -> None:
        """A right password: the account's count is cleared, and the attempt that
        :meth:`attempt` counted for the address is taken back."""
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)
            times = self._failures.get(f"addr:{client}")
            if times:
                times.pop()
