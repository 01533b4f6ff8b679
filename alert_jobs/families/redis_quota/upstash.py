"""Upstash Developer API: the billing-aligned command counts of a database.

``GET {api}/redis/stats/{id}`` gives ``daily_net_commands`` and
``total_monthly_requests``; ``GET {api}/redis/database/{id}`` gives the plan
(``type``), ``state`` (active / suspended) and ``db_request_limit``. Both use HTTP
Basic auth with the account email and a management API key. These calls are not
database commands, so reading usage this way costs no quota.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from alert_jobs.core.errors import SourceError


@dataclass(frozen=True)
class UpstashUsage:
    daily_commands: float
    monthly_commands: float
    state: str
    plan: str
    request_limit: float | None
    current_storage: float | None

    def used(self, window: str) -> float:
        return self.daily_commands if window == "day" else self.monthly_commands


def _number(payload: dict[str, Any], key: str, where: str) -> float:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceError(f"{where}: response has no number {key!r}; is this the stats "
                          "endpoint of the Upstash Developer API?")
    return float(value)


def read_usage(api_url: str, database_id: str, email: str, api_key: str, *,
               timeout: float, client: httpx.Client | None = None) -> UpstashUsage:
    """Read today's and this month's command counts and the database's state."""
    base = api_url.rstrip("/")
    where = f"Upstash database {database_id}"
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        stats = _get(http, f"{base}/redis/stats/{database_id}", email, api_key, timeout, where)
        database = _get(http, f"{base}/redis/database/{database_id}", email, api_key, timeout,
                        where)
    finally:
        if own:
            http.close()
    limit = database.get("db_request_limit")
    storage = stats.get("current_storage")
    return UpstashUsage(
        daily_commands=_number(stats, "daily_net_commands", where),
        monthly_commands=_number(stats, "total_monthly_requests", where),
        state=str(database.get("state", "unknown")),
        plan=str(database.get("type", "unknown")),
        request_limit=float(limit) if isinstance(limit, int | float) and limit > 0 else None,
        current_storage=float(storage) if isinstance(storage, int | float) else None,
    )


def _get(http: httpx.Client, url: str, email: str, api_key: str, timeout: float,
         where: str) -> dict[str, Any]:
    try:
        response = http.get(url, auth=(email, api_key), timeout=timeout)
    except httpx.TimeoutException:
        raise SourceError(f"{where}: Upstash API timed out after {timeout:g} s") from None
    except httpx.TransportError as exc:
        raise SourceError(f"{where}: cannot reach the Upstash API ({type(exc).__name__})") \
            from None
    if response.status_code in (401, 403):
        raise SourceError(f"{where}: Upstash API rejected the credentials "
                          f"(HTTP {response.status_code}); check the email and API key")
    if response.status_code == 404:
        raise SourceError(f"{where}: Upstash API does not know this database (HTTP 404)")
    if not response.is_success:
        raise SourceError(f"{where}: Upstash API error (HTTP {response.status_code})")
    try:
        payload = response.json()
    except ValueError:
        raise SourceError(f"{where}: Upstash API answered with something that is not JSON") \
            from None
    if not isinstance(payload, dict):
        raise SourceError(f"{where}: unexpected Upstash API answer ({type(payload).__name__})")
    return payload
