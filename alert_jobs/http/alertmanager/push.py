"""Placeholder: filled in by the push (POST /api/v2/alerts) work of the Alertmanager API."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.store import Timeline


def routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:
    return []
