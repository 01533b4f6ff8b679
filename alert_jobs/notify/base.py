"""The one small interface every receiver implements, and how failures are classified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class DeliveryError(Exception):
    """A send that did not succeed.

    ``permanent`` means retrying cannot help (401/403/404, a missing secret);
    ``retry_after`` is the receiver's own wait in seconds (HTTP ``Retry-After``).
    ``message`` must never contain a secret (URL, token): callers store it.
    """

    message: str
    permanent: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


class Receiver(Protocol):
    """Sends one rendered message. Raises :class:`DeliveryError` on failure."""

    name: str
    send_resolved: bool

    def send(self, message: dict[str, Any]) -> None: ...
