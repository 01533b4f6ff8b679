"""Dagster resources: where the rules file and the timeline database are.

The rules file is re-read at every call to :meth:`AlertJobsResource.load_rules`, so
editing a threshold takes effect at the next run with no redeploy. Adding or
renaming a rule changes the asset graph and needs a code-location reload.
"""

from __future__ import annotations

import os
import threading

from dagster import ConfigurableResource
from pydantic import Field

from alert_jobs.config import RULES_FILE_ENV, RulesFile
from alert_jobs.rules_fallback import load_rules_or_last_good
from alert_jobs.timeline import Timeline, default_database_url

_TIMELINES: dict[str, Timeline] = {}
_LOCK = threading.Lock()


def shared_timeline(url: str | None = None) -> Timeline:
    """One :class:`Timeline` (one connection pool) per database URL per process."""
    url = url or default_database_url()
    with _LOCK:
        if url not in _TIMELINES:
            _TIMELINES[url] = Timeline(url)
        return _TIMELINES[url]


class AlertJobsResource(ConfigurableResource):
    """The rules file and the timeline database, injected into every asset, job and sensor.

    ``database_url`` may be an ``EnvVar`` (it holds a password in production); when
    empty, ``$ALERT_JOBS_DATABASE_URL`` or SQLite at ``$DAGSTER_HOME/alerts.db`` is used.
    """

    rules_file: str = Field(
        default_factory=lambda: os.environ.get(RULES_FILE_ENV, "alerts.yaml"),
        description="Path of the rules file (alerts.yaml).",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the timeline database."
    )

    def load_rules(self) -> RulesFile:
        return load_rules_or_last_good(self.rules_file).rules  # a broken edit keeps checks on

    def timeline(self) -> Timeline:
        return shared_timeline(self.database_url or None)
