"""The one small interface every receiver implements, and how HTTP failures are classified.

A receiver is a plain class built from its one config model (``receivers:`` in the
rules file, :mod:`alert_jobs.config.receivers`), with two methods:

* :meth:`Receiver.render` — the wire body for one :class:`GroupMessage`, pure, limits
  enforced (golden tests pin it);
* :meth:`Receiver.deliver` — send it, on a shared ``httpx.AsyncClient`` whose pool bounds
  concurrency; raise :class:`DeliveryError` on failure.

Secrets stay env references in the config and are resolved by :meth:`Receiver.secret`
at the moment of sending; an unset variable fails that send retryably (nothing is lost
while someone sets it) with a message naming the variable, never a value.
"""

from __future__ import annotations

import email.utils
import json
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from alert_jobs.config import (
    ReceiverBase,
    SecretMissingError,
    SecretOrText,
    env_refs,
    resolve,
)
from alert_jobs.notify.audience import for_audience
from alert_jobs.notify.contract import GroupMessage

C = TypeVar("C", bound=ReceiverBase)

#: 401/403/404/410: the receiver's address or credentials are wrong; retrying cannot help.
PERMANENT_STATUSES = frozenset({401, 403, 404, 410})
RETRY_AFTER_CAP_SECONDS = 3600.0


@dataclass(eq=False)  # exceptions compare by identity and must stay hashable
class DeliveryError(Exception):
    """A send that did not succeed.

    ``permanent`` means retrying cannot help (401/403/404/410, another 4xx but 408/429);
    ``retry_after`` is the receiver's own wait in seconds (HTTP ``Retry-After``).
    ``message`` must never contain a secret (URL, token): callers store it.
    """

    message: str
    permanent: bool = False
    retry_after: float | None = None
    status: int | None = None

    def __str__(self) -> str:
        return self.message


class Receiver(Generic[C]):
    """Base class of every receiver, built from its config model ``C``.

    ``name`` is how rules and routes refer to it. ``repr`` shows the type and name only:
    logging a receiver never prints an address or a key.
    """

    #: ``send_resolved`` when the config leaves it unset (email: false, as Alertmanager).
    default_send_resolved: ClassVar[bool] = True

    def __init__(self, config: C):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def send_resolved(self) -> bool:
        configured = self.config.send_resolved
        return self.default_send_resolved if configured is None else configured

    @property
    def timeout_seconds(self) -> float:
        return self.config.timeout.total_seconds()

    def secret(self, value: SecretOrText) -> str:
        """The value of a secret field now; an unset env variable fails this send
        retryably, naming every variable of this receiver that is unset."""
        try:
            return resolve(value)
        except SecretMissingError:
            missing = [n for n in env_refs(self.config) if not os.environ.get(n)]
            raise DeliveryError(f"receiver {self.name!r} unavailable: environment "
                                f"variable {', '.join(missing)} is not set") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def wants(self, group: GroupMessage) -> bool:
        """Whether this receiver sends ``group`` at all. Resolved groups follow
        ``send_resolved``; acknowledgements only matter to receivers that track incidents
        (PagerDuty overrides this)."""
        if group.get("notification_reason") == "acknowledged":
            return False
        return group.get("status") != "resolved" or self.send_resolved

    def prepare(self, group: GroupMessage) -> GroupMessage:
        """The group as this receiver should see it: in its audience's words, and without
        resolved alerts when ``send_resolved`` is off (Alertmanager does the same in
        mixed groups)."""
        group = for_audience(group, self.config.audience)
        if self.send_resolved or group.get("status") == "resolved":
            return group
        alerts = [a for a in group.get("alerts", []) if a.get("status") != "resolved"]
        return {**group, "alerts": alerts}

    def render(self, group: GroupMessage) -> Any:
        raise NotImplementedError

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """What the receiver is, for logs and the CLI: type and name, never an address."""
        return f"{type(self).__name__}({self.name})"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def retry_after_of(response: httpx.Response) -> float | None:
    """The wait a 429/503 asks for: the header first, then a JSON body's ``retry_after``.

    Discord sends ``retry_after`` in seconds (a float) in the body; some reports have
    seen milliseconds, so a body value above an hour without a header is read as ms.
    Whatever the source, the wait is capped at an hour.
    """
    header = parse_retry_after(response.headers.get("Retry-After"))
    if header is not None:
        return min(header, RETRY_AFTER_CAP_SECONDS)
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    value = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    seconds = float(value) / 1000 if value > RETRY_AFTER_CAP_SECONDS else float(value)
    return min(seconds, RETRY_AFTER_CAP_SECONDS)


def classify(response: httpx.Response) -> None:
    """Return on 2xx; otherwise raise a :class:`DeliveryError` with the right retry policy."""
    code = response.status_code
    if response.is_success:
        return
    if code == 429 or code == 408 or code >= 500:
        raise DeliveryError(f"HTTP {code}", retry_after=retry_after_of(response), status=code)
    if code in PERMANENT_STATUSES:
        raise DeliveryError(f"HTTP {code}: the receiver refuses this address or credentials; "
                            "fix its configuration", permanent=True, status=code)
    raise DeliveryError(f"HTTP {code}: the receiver rejected the message", permanent=True,
                        status=code)


async def post_json(http: httpx.AsyncClient, url: str, body: Any, *, timeout: float,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """POST JSON and classify the answer. Errors never include the URL (it is a secret)."""
    try:
        response = await http.post(url, json=body, headers=headers or {}, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"timed out after {timeout:g} s") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise DeliveryError("invalid receiver URL; fix its configuration", permanent=True) \
            from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"cannot connect ({type(exc).__name__})") from None
    classify(response)
    return response


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker
