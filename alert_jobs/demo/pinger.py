"""The demo's jobs: ``demo_etl`` pings every 30 s, ``demo_backup`` once and never again.

Absence detection, live: ``demo_backup`` is pinged once, then falls silent, so the
heartbeat sensor pages that it is down a few minutes later. That only happens if the
one ping lands: on a busy machine ``alert-jobs serve`` may take well over 5 seconds to
listen, and a single early ping (``ConnectError``) leaves the check ``new`` forever,
which never goes down. So the first ping is retried with backoff until the server
accepts it, and only then does the silence start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from alert_jobs.heartbeat import monitored, ping

Sleep = Callable[[float], None]


def ping_until_accepted(slug: str, base_url: str, *, deadline: float = 300.0,
                        sleep: Sleep = time.sleep, clock: Callable[[], float] = time.monotonic,
                        should_stop: Callable[[], bool] = lambda: False) -> int | None:
    """Ping ``slug`` until the server accepts it (0.5 s, 1 s, 2 s … at most 10 s apart).
    Returns how many attempts it took, or None if ``deadline`` seconds passed (or a stop
    was asked for) first."""
    quiet = logging.getLogger("alert_jobs.heartbeat")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "ConnectError" while serve starts is expected here
    try:
        started, delay, attempts = clock(), 0.5, 0
        while True:
            attempts += 1
            if ping(slug, base_url=base_url, timeout=5.0):
                return attempts
            if clock() - started >= deadline or should_stop():
                return None
            sleep(delay)
            delay = min(delay * 2, 10.0)
    finally:
        quiet.setLevel(level)


def run(base_url: str, *, every: float = 30.0, should_stop: Callable[[], bool] = lambda: False,
        sleep: Sleep = time.sleep) -> int:
    """Ping ``demo_backup`` once (retried until it lands), then ``demo_etl`` (start,
    then success) every ``every`` seconds until ``should_stop()``."""
    attempts = ping_until_accepted("demo_backup", base_url, sleep=sleep,
                                   should_stop=should_stop)
    if attempts is None:
        print(f"demo heartbeats: {base_url} never accepted a ping; demo_backup stays new",
              flush=True)
    else:
        print(f"demo heartbeats: demo_backup pinged once (attempt {attempts}), now silent; "
              f"demo_etl every {every:g} s", flush=True)
    while not should_stop():
        with monitored("demo_etl", base_url=base_url):
            sleep(1)
        sleep(every)
    return 0
