"""Read a Redis server's ``INFO`` with exactly one command per check.

Every command counts against a provider's quota (Upstash bills the monitor's own
INFO too), so the connection is set up to send nothing else: no ``CLIENT SETINFO``
(redis-py sends two by default), no ``HELLO``; only ``AUTH`` when a password is
configured and ``SELECT`` for a database other than 0. The snapshot reports how many
commands it spent, so the check can show the monitor's own cost.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
import redis.exceptions as rex

from alert_jobs.core.errors import SourceError


@dataclass(frozen=True)
class InfoSnapshot:
    """The INFO fields the checks use, plus what reading them cost."""

    at: datetime
    fields: dict[str, Any]
    commands_spent: int
    latency_ms: float

    def num(self, name: str, default: float = 0.0) -> float:
        value = self.fields.get(name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            return default

    @property
    def server_id(self) -> str:
        return str(self.fields.get("run_id", ""))

    @property
    def keys(self) -> float:
        """Keys over all databases (``db0:keys=…``)."""
        total = 0.0
        for name, value in self.fields.items():
            if name.startswith("db") and name[2:].isdigit() and isinstance(value, dict):
                total += float(value.get("keys", 0))
        return total


@dataclass(frozen=True)
class RedisEndpoint:
    """Resolved connection settings (secrets already resolved; never logged)."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout: float = 2.0
    ca_file: str | None = None
    verify_tls: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def masked(url: str) -> str:
    """``rediss://user:***@host:port/db`` — the URL as it may be shown."""
    try:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}:***@" if parts.username else ("***@" if parts.password else "")
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"
    except ValueError:
        return "<redis URL that cannot be parsed>"


def _client(ep: RedisEndpoint) -> redis.Redis:
    kwargs: dict[str, Any] = {
        "socket_timeout": ep.timeout,
        "socket_connect_timeout": ep.timeout,
        "lib_name": None,
        "lib_version": None,
        "protocol": 2,
        "retry_on_timeout": False,
        "retry": None,
        "single_connection_client": True,
        **ep.extra,
    }
    if ep.username is not None:
        kwargs["username"] = ep.username
    if ep.password is not None:
        kwargs["password"] = ep.password
    if ep.url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED if ep.verify_tls else ssl.CERT_NONE
        kwargs["ssl_check_hostname"] = ep.verify_tls
        if ep.ca_file:
            kwargs["ssl_ca_certs"] = ep.ca_file
    return redis.Redis.from_url(ep.url, **kwargs)


def handshake_commands(ep: RedisEndpoint) -> int:
    """Commands redis-py sends on connect with :func:`_client`'s settings."""
    from urllib.parse import urlsplit

    parts = urlsplit(ep.url)
    has_auth = ep.password is not None or parts.password is not None
    db = parts.path.strip("/")
    return int(has_auth) + int(bool(db) and db != "0")


def read_info(ep: RedisEndpoint, *, now: datetime) -> InfoSnapshot:
    """One ``INFO``; errors become :class:`SourceError` naming the masked URL and the cause."""
    where = masked(ep.url)
    started = time.monotonic()
    client: redis.Redis | None = None
    try:
        client = _client(ep)  # single_connection_client connects (and AUTHs) right here
        fields = client.execute_command("INFO")
    except rex.AuthenticationError:
        raise SourceError(f"{where}: authentication failed (wrong password or ACL user)") from None
    except rex.ResponseError as exc:
        text = str(exc)
        if "WRONGPASS" in text or "AUTH" in text or "NOAUTH" in text:
            raise SourceError(f"{where}: authentication failed ({text.split(',')[0]})") from None
        raise SourceError(f"{where}: INFO refused: {text[:200]}") from None
    except rex.TimeoutError as exc:
        step = "connecting" if "connect" in str(exc).lower() else "waiting for INFO"
        if ep.url.startswith("rediss://"):
            step += "; is the port TLS-enabled?"
        raise SourceError(f"{where}: timed out after {ep.timeout:g} s ({step})") from None
    except rex.ConnectionError as exc:
        raise SourceError(f"{where}: {_connection_reason(exc)}") from None
    except (ssl.SSLError, OSError) as exc:
        raise SourceError(f"{where}: {_connection_reason(exc)}") from None
    finally:
        if client is not None:
            client.close()
    if not isinstance(fields, dict):
        raise SourceError(f"{where}: unexpected INFO reply ({type(fields).__name__})")
    return InfoSnapshot(now, fields, handshake_commands(ep) + 1,
                        (time.monotonic() - started) * 1000)


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    lower = text.lower()
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError) or "ssl" in lower \
            or "tls" in lower or "certificate" in lower:
        return f"TLS handshake failed ({text.splitlines()[0][:160]})"
    if "refused" in lower:
        return "connection refused"
    if "timed out" in lower or "timeout" in lower:
        return "timed out connecting"
    if "name or service not known" in lower or "nodename" in lower or "resolve" in lower:
        return "cannot resolve host"
    if "closed" in lower:
        return "connection closed by server"
    return f"cannot connect ({text.splitlines()[0][:160] if text else type(exc).__name__})"
