"""Alertmanager's API v2, the subset tools use (``api/v2/openapi.yaml`` of
prometheus/alertmanager): silences, alerts (pushed by Prometheus, listed, grouped) and
status, with Alertmanager's JSON shapes and matcher semantics, behind a bearer token or
basic auth (:mod:`~alert_jobs.http.alertmanager.auth`). Under ``/api/v2/``, which the
responder pages' sign-in leaves to this module."""

from __future__ import annotations

from collections.abc import Callable

from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.store import Timeline


def api_routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
               get_rules: Callable[[], RulesFile]) -> list[Route]:
    from alert_jobs.http.alertmanager import alerts, push, silences, status

    return [*silences.routes(auth, get_timeline, get_rules),
            *push.routes(auth, get_timeline, get_rules),  # POST /api/v2/alerts
            *alerts.routes(auth, get_timeline, get_rules),  # GET /api/v2/alerts[/groups]
            *status.routes(auth, get_timeline, get_rules)]


__all__ = ["ApiAuth", "api_routes"]
