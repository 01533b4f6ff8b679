"""The timeline: one database and the stores that share it.

``Timeline(url)`` is what the rest of alert-jobs passes around; each concern has its
own store on it::

    timeline.alerts     # evaluate observations through the engine; read alert instances
    timeline.actions    # ack, snooze, outcomes, escalation
    timeline.silences   # Alertmanager-style silences
    timeline.rule_settings  # rules a person disabled
    timeline.outbox     # notification groups and the outbox (claim, send, mark)
    timeline.events     # the append-only event timeline
    timeline.sessions   # who is signed in to the responder pages

Family state (heartbeats, Redis counters, drift references) lives in the families'
own stores, on the same database.
"""

from __future__ import annotations

import threading

from sqlalchemy.engine import Engine

from alert_jobs.store.actions import ActionStore
from alert_jobs.store.alerts import AlertStore
from alert_jobs.store.baselines import BaselineStore
from alert_jobs.store.db import Database, default_database_url
from alert_jobs.store.events import EventStore
from alert_jobs.store.incidents import IncidentStore
from alert_jobs.store.outbox import OutboxStore
from alert_jobs.store.rule_settings import RuleSettingsStore
from alert_jobs.store.sessions import SessionStore
from alert_jobs.store.silences import SilenceStore


class Timeline(Database):
    """The timeline database with its stores (see the module docstring)."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None):
        super().__init__(url, engine=engine)
        self.alerts = AlertStore(self)
        self.actions = ActionStore(self)
        self.silences = SilenceStore(self)
        self.rule_settings = RuleSettingsStore(self)
        self.outbox = OutboxStore(self)
        self.events = EventStore(self)
        self.baselines = BaselineStore(self)
        self.sessions = SessionStore(self)
        self.incidents = IncidentStore(self)


_SHARED: dict[str, Timeline] = {}
_SHARED_LOCK = threading.Lock()


def shared_timeline(url: str | None = None) -> Timeline:
    """One :class:`Timeline` (one connection pool) per database URL per process."""
    url = url or default_database_url()
    with _SHARED_LOCK:
        if url not in _SHARED:
            _SHARED[url] = Timeline(url)
        return _SHARED[url]
