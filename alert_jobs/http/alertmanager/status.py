"""``GET /api/v2/status``: Alertmanager's ``alertmanagerStatus`` for tools that ask
(``amtool config show``, Grafana's data source check).

``config.original`` is NOT the rules file: that holds receiver URLs, webhook keys and
SMTP passwords, and Alertmanager shows its own file to any API caller. It is a short
YAML naming the receivers (name and type only) and the route tree (receiver names,
matchers, grouping and timers), enough to see where an alert would go and nothing a
caller could use to post to a receiver. There is no cluster (``status: disabled``)."""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable
from datetime import datetime
from typing import Any

import yaml
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alert_jobs.config import RulesFile
from alert_jobs.config.routes import Route as RouteConfig
from alert_jobs.core.durations import short_duration
from alert_jobs.http.alertmanager.auth import ApiAuth
from alert_jobs.http.alertmanager.errors import api
from alert_jobs.http.alertmanager.shapes import format_time
from alert_jobs.store import Timeline
from alert_jobs.store.db import utcnow

#: When this server process started serving (the module is imported as the app is made).
STARTED: datetime = utcnow()
PACKAGE = "alert-jobs"


def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def version_info() -> dict[str, str]:
    """``versionInfo``: every field is required; those a Python package has no notion
    of (a Go build's revision, branch, user, date) are empty."""
    return {"version": version(), "revision": "", "branch": "", "buildUser": "",
            "buildDate": "", "goVersion": f"python{platform.python_version()}"}


def _route(route: RouteConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if route.receiver:
        out["receiver"] = route.receiver
    if route.matchers:
        out["matchers"] = [str(m) for m in route.matchers]
    if route.group_by is not None:
        out["group_by"] = list(route.group_by)
    for name in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(route, name)
        if value is not None:
            out[name] = short_duration(value)
    if route.continue_:
        out["continue"] = True
    if route.routes:
        out["routes"] = [_route(child) for child in route.routes]
    return out


def routing_yaml(rules: RulesFile) -> str:
    """The rules file's routing, by name only: never a receiver's URL, key or password."""
    d = rules.defaults
    root: dict[str, Any] = {"receivers": list(d.receivers),
                            "group_by": list(d.group_by),
                            "group_wait": short_duration(d.group_wait),
                            "repeat_interval": short_duration(d.repeat_interval)}
    if rules.route is not None:
        root.update(_route(rules.route))
    doc: dict[str, Any] = {
        "route": root,
        "receivers": [{"name": r.name, "type": r.type} for r in rules.receivers],
    }
    if rules.inhibit_rules:
        doc["inhibit_rules"] = len(rules.inhibit_rules)
    return ("# alert-jobs routing, by name only: receivers' settings are not shown\n"
            + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def status(rules: RulesFile) -> dict[str, Any]:
    return {
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": version_info(),
        "config": {"original": routing_yaml(rules)},
        "uptime": format_time(STARTED),
    }


def routes(auth: ApiAuth, get_timeline: Callable[[], Timeline],
           get_rules: Callable[[], RulesFile]) -> list[Route]:

    async def get_status(request: Request, caller: str) -> Response:
        return JSONResponse(await run_in_threadpool(lambda: status(get_rules())))

    return [Route("/api/v2/status", api(auth, get_status), methods=["GET"])]
