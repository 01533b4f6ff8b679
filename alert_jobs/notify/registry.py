"""Build live receivers from the rules file, resolving secrets only here, at send time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alert_jobs.config import ReceiverConfig, RulesFile, SecretMissingError, resolve
from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.console import ConsoleReceiver
from alert_jobs.notify.webhook import WebhookReceiver


@dataclass
class UnavailableReceiver:
    """Stands in for a receiver whose secret is missing: every send fails, retryably.

    Failing at send time (not at load time) keeps other receivers working and keeps
    the message in the outbox until the secret is provided.
    """

    name: str
    reason: str
    send_resolved: bool = True

    def send(self, message: dict[str, Any]) -> None:
        raise DeliveryError(f"receiver {self.name!r} unavailable: {self.reason}")


def build_receiver(config: ReceiverConfig) -> Receiver:
    try:
        if config.type == "console":
            return ConsoleReceiver(name=config.name, send_resolved=config.send_resolved)
        assert config.url is not None
        return WebhookReceiver(
            name=config.name,
            url=resolve(config.url),
            headers={k: resolve(v) for k, v in config.headers.items()},
            timeout=config.timeout.total_seconds(),
            send_resolved=config.send_resolved,
        )
    except SecretMissingError as exc:
        return UnavailableReceiver(config.name, str(exc), config.send_resolved)


def build_receivers(rules: RulesFile) -> dict[str, Receiver]:
    return {r.name: build_receiver(r) for r in rules.receivers}
