"""Code locations that fail to load become alerts (``dagster_location_failed``).

A code location whose Python does not import (a missing dependency, a broken rules
file read at import time, a syntax error) runs none of its schedules, sensors or
jobs, and open-source Dagster tells no one. Worse, it records the failure nowhere a
sensor can read: in Dagster 1.13 a location's load error is a field of the in-memory
``CodeLocationEntry`` of whichever process loaded the workspace
(``dagster/_core/workspace/context.py``: ``_load_location`` catches the exception and
keeps it as ``load_error``; ``get_code_location_error`` reads it back from memory). The
daemon's scheduler only uses it to keep the location's schedule states
(``dagster/_scheduler/scheduler.py``: ``error_locations``); nothing is written to the
instance's storage.

The webserver does hold it, and its GraphQL API (public; what the UI's code-locations
page uses) reports every workspace entry with its load status and, for a failed one,
the Python error. So a sensor of this code location asks the webserver:

* :func:`location_statuses` queries ``workspaceOrError``; an unreachable webserver, an
  HTTP error, a body that is not JSON or a GraphQL error is a
  :class:`LocationQueryError` with a short, secret-free message;
* :func:`location_observations` (pure) turns the statuses into observations: an alert
  per failed location, an ok for each open alert whose location loads again or is gone
  from the workspace. A location still ``LOADING`` (a reload under way) changes nothing.

What the webserver reports is what *it* loaded: a fix deployed but not yet reloaded
(UI "Reload", a redeploy of the code server) still shows the old error, which is right:
Dagster still runs the old, broken state.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from alert_jobs.core.model import AlertRecord, Observation, Status, fingerprint
from alert_jobs.families.heartbeat.config import LOCATION_FAILED

ERROR_LIMIT = 300  # characters of a load error in a summary (Slack, PagerDuty limits)

#: Field names from dagster-graphql 1.13's schema (``schema/external.py``:
#: ``WorkspaceLocationEntry``; ``schema/errors.py``: ``PythonError``). ``causes`` lists
#: the explicit causes, outermost first, so the last is the root: Dagster wraps the
#: user's exception (``DagsterImportError``, ``DagsterUserCodeLoadError``).
QUERY = """
query AlertJobsLocationStatuses {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message cause { message } causes { message } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


class LocationQueryError(Exception):
    """The webserver could not tell which code locations load (the message says why)."""


@dataclass(frozen=True)
class LocationStatus:
    """One workspace entry as the webserver sees it. ``loaded`` is False both while it is
    still loading (``error`` None) and when it failed (``error`` says why)."""

    name: str
    loaded: bool
    error: str | None = None

    @property
    def loading(self) -> bool:
        return not self.loaded and self.error is None


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _trim(text: str, limit: int = ERROR_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def error_text(error: Mapping[str, Any]) -> str:
    """The one line that says why a location fails: the root cause's first line (the
    user's own exception, e.g. ``ModuleNotFoundError: No module named 'x'``), then the
    first line of Dagster's wrapper around it; trimmed to :data:`ERROR_LIMIT`."""
    outer = _first_line(error.get("message"))
    causes = [c for c in error.get("causes") or [] if isinstance(c, Mapping)]
    if not causes and isinstance(error.get("cause"), Mapping):
        causes = [error["cause"]]
    root = _first_line(causes[-1].get("message")) if causes else ""
    if root and outer and root != outer:
        return _trim(f"{root} (raised as {outer})")
    return _trim(root or outer or "no error message")


def _safe_url(url: str) -> str:
    """The URL without credentials, query or fragment: fit for a log or an alert."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(an invalid URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(exc: Exception) -> str:
    """Why a request failed, without the URL: the OS's words for a refused or unknown
    host (they hold no URL), else only the kind of failure (a proxy error's text may
    hold the proxy's credentials)."""
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        return f"{type(exc).__name__}: {_trim(_first_line(str(exc)), 120)}"
    return type(exc).__name__


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: httpx builds a new one per call otherwise, which
    was 80 % of a look's CPU (benchmarks/watch_bench.py)."""
    return httpx.create_ssl_context()


def location_statuses(graphql_url: str, timeout: float) -> list[LocationStatus]:
    """Every code location of the webserver's workspace, in its order.

    Raises :class:`LocationQueryError` when the answer is not a workspace: the message
    names the endpoint (without credentials) and the reason, never a traceback.
    """
    where = _safe_url(graphql_url)
    try:
        response = httpx.post(graphql_url, json={"query": QUERY}, timeout=timeout,
                              headers={"Accept": "application/json"}, verify=_tls())
    except httpx.TimeoutException:
        raise LocationQueryError(
            f"the Dagster webserver at {where} did not answer within {timeout:g} s "
            "(self_monitoring.graphql_timeout)") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise LocationQueryError(
            f"cannot reach the Dagster webserver at {where} ({_reason(exc)}); is "
            "dagster-webserver running there? (self_monitoring.graphql_url)") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    refused = _graphql_error(body)
    if response.status_code != 200 or refused:
        # Dagster answers a query it cannot run with 400 and GraphQL errors: say which.
        raise LocationQueryError(
            f"the Dagster webserver at {where} answered HTTP {response.status_code} to the "
            f"code-location query" + (f": {refused}" if refused else ""))
    if body is None:
        kind = response.headers.get("content-type", "no content type")
        raise LocationQueryError(
            f"the Dagster webserver at {where} answered with something that is not JSON "
            f"({kind}); is self_monitoring.graphql_url its /graphql endpoint?")
    return _parse(body, where)


def _graphql_error(body: Any) -> str:
    """The first GraphQL error's first line ("" when there is none)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return ""
    first = errors[0] if isinstance(errors, list) else errors
    message = first.get("message") if isinstance(first, dict) else first
    return _trim(_first_line(str(message)) or "an error without a message", 200)


def _parse(body: Any, where: str) -> list[LocationStatus]:
    if not isinstance(body, dict):
        raise LocationQueryError(f"the answer of {where} is not a GraphQL response")
    workspace = (body.get("data") or {}).get("workspaceOrError")
    if not isinstance(workspace, dict):
        raise LocationQueryError(f"the answer of {where} has no workspace")
    if workspace.get("__typename") == "PythonError":
        raise LocationQueryError(
            f"the Dagster webserver at {where} could not list its workspace: "
            f"{error_text(workspace)}")
    entries = workspace.get("locationEntries")
    if not isinstance(entries, list):
        raise LocationQueryError(f"the answer of {where} has no code locations")
    return [_status(entry) for entry in entries if isinstance(entry, dict)]


def _status(entry: dict[str, Any]) -> LocationStatus:
    name = str(entry.get("name", "?"))
    if entry.get("loadStatus") == "LOADING":
        return LocationStatus(name, loaded=False)
    found = entry.get("locationOrLoadError") or {}
    if found.get("__typename") == "PythonError":
        return LocationStatus(name, loaded=False, error=error_text(found))
    if found.get("__typename") == "RepositoryLocation":
        return LocationStatus(name, loaded=True)
    # LOADED with neither a location nor an error: Dagster has nothing to say yet.
    return LocationStatus(name, loaded=False)


def open_location_names(alerts: Iterable[AlertRecord]) -> set[str]:
    """The locations of open ``dagster_location_failed`` alerts (from
    ``timeline.alerts.list()``): a location removed from the workspace is resolved by
    name, since a fingerprint cannot be turned back into one."""
    return {a.labels["location"] for a in alerts
            if a.rule == LOCATION_FAILED and "location" in a.labels}


def location_observations(statuses: list[LocationStatus], active: set[str], *,
                          dagster_url: str,
                          open_locations: Iterable[str] = ()) -> list[Observation]:
    """An alert per location that fails to load; an ok per open alert (its fingerprint
    in ``active``) whose location loads again or is no longer in the workspace.

    ``open_locations``: names of the open alerts' locations
    (:func:`open_location_names`), needed to resolve a removed location. ``active`` is
    updated, as the instance watch does.
    """
    link = f"{dagster_url.rstrip('/')}/deployment/locations"
    out: list[Observation] = []
    for status in statuses:
        labels = {"location": status.name}
        fp = fingerprint(LOCATION_FAILED, labels)
        if status.error is not None:
            out.append(Observation(
                LOCATION_FAILED, Status.ALERT, labels, 1.0,
                summary=f"Code location {status.name} fails to load: {status.error} "
                        f"({link})",
                expected="the code location to load", seen=status.error,
                details={"location": status.name, "locations_url": link}))
            active.add(fp)
        elif status.loaded and fp in active:
            out.append(Observation(LOCATION_FAILED, Status.OK, labels, 0.0,
                                   summary=f"Code location {status.name} loads again"))
            active.discard(fp)
    present = {s.name for s in statuses}
    for name in sorted(set(open_locations) - present):
        labels = {"location": name}
        fp = fingerprint(LOCATION_FAILED, labels)
        if fp in active:
            out.append(Observation(
                LOCATION_FAILED, Status.OK, labels, 0.0,
                summary=f"Code location {name} is no longer in the workspace (removed)"))
            active.discard(fp)
    return out


__all__ = ["ERROR_LIMIT", "LocationQueryError", "LocationStatus", "error_text",
           "location_observations", "location_statuses", "open_location_names"]
