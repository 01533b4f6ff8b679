"""The ping client for jobs (a stable import path)::

    from alert_jobs.heartbeat import monitored, ping

    ping("nightly_backup")              # success
    with monitored("nightly_backup"):   # /start, then success, or /fail on an exception
        run_backup()

It lives in the heartbeat family (:mod:`alert_jobs.families.heartbeat.client`) and needs
only httpx: importing it costs a job nothing else.
"""

from alert_jobs.families.heartbeat.client import (
    DEFAULT_URL,
    TOKEN_ENV,
    URL_ENV,
    monitored,
    ping,
)

__all__ = ["DEFAULT_URL", "TOKEN_ENV", "URL_ENV", "monitored", "ping"]
