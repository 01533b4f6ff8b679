"""Build live receivers from the rules file.

Each receiver is a Dagster ``ConfigurableResource``; secrets written as ``{env: NAME}``
become ``dg.EnvVar("NAME")`` and are resolved only here, when a delivery needs them.
A receiver whose secret is missing fails its sends (retryably, so nothing is lost
while someone sets the variable) instead of failing every receiver.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import httpx

from alert_jobs.config import (
    AlertmanagerReceiverConfig,
    ConsoleReceiverConfig,
    DiscordReceiverConfig,
    EmailReceiverConfig,
    EnvRef,
    PagerDutyReceiverConfig,
    ReceiverConfig,
    RulesFile,
    SecretOrText,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alert_jobs.notify.alertmanager import AlertmanagerReceiver
from alert_jobs.notify.base import DeliveryError, Receiver
from alert_jobs.notify.console import ConsoleReceiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.discord import DiscordReceiver
from alert_jobs.notify.email import EmailReceiver
from alert_jobs.notify.pagerduty import PagerDutyReceiver
from alert_jobs.notify.slack import SlackReceiver
from alert_jobs.notify.webhook import WebhookReceiver


class UnavailableReceiver(Receiver):
    """Stands in for a receiver that cannot be built (a missing secret): sends fail retryably."""

    reason: str

    def render(self, group: GroupMessage) -> Any:
        return None

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        raise DeliveryError(f"receiver {self.name!r} unavailable: {self.reason}")


def _secret(value: SecretOrText) -> Any:
    return dg.EnvVar(value.env) if isinstance(value, EnvRef) else value


def receiver_resource(config: ReceiverConfig) -> Receiver:
    """The unresolved resource (EnvVars still as names): safe to show in the Dagster UI."""
    common: dict[str, Any] = {"name": config.name,
                              "timeout_seconds": config.timeout.total_seconds()}
    if config.send_resolved is not None:
        common["send_resolved"] = config.send_resolved
    if isinstance(config, ConsoleReceiverConfig):
        return ConsoleReceiver(**common)
    if isinstance(config, WebhookReceiverConfig):
        return WebhookReceiver(url=_secret(config.url), max_alerts=config.max_alerts,
                               headers={k: _secret(v) for k, v in config.headers.items()},
                               **common)
    if isinstance(config, SlackReceiverConfig):
        return SlackReceiver(webhook_url=_secret(config.webhook_url), **common)
    if isinstance(config, DiscordReceiverConfig):
        return DiscordReceiver(webhook_url=_secret(config.webhook_url), **common)
    if isinstance(config, PagerDutyReceiverConfig):
        return PagerDutyReceiver(routing_key=_secret(config.routing_key),
                                 events_url=config.events_url, **common)
    if isinstance(config, EmailReceiverConfig):
        return EmailReceiver(
            host=config.host, port=config.port, security=config.security,
            username=_secret(config.username) if config.username is not None else None,
            password=_secret(config.password) if config.password is not None else None,
            from_address=config.from_address, to=list(config.to), **common)
    if isinstance(config, AlertmanagerReceiverConfig):
        return AlertmanagerReceiver(url=_secret(config.url),
                                    headers={k: _secret(v) for k, v in config.headers.items()},
                                    **common)
    raise TypeError(f"unknown receiver config {type(config).__name__}")  # pragma: no cover


def build_receiver(config: ReceiverConfig) -> Receiver:
    """The resource with its EnvVars resolved, ready to send."""
    resource = receiver_resource(config)
    try:
        # The context-manager form, not ``process_config_and_initialize()``: that one
        # builds an init context without an instance, which enters an ephemeral
        # DagsterInstance and exits it only when the garbage collector gets to it; that
        # late exit resets Dagster's "current defs-state storage" to a disposed
        # instance's, so a later run in the process fails with "Attempted to resolve
        # undefined DagsterInstance weakref". Here it is entered and exited in order.
        with resource.process_config_and_initialize_cm() as ready:
            return ready
    except Exception as exc:  # DagsterInvalidConfigError for an unset EnvVar
        missing = [v.env for v in _env_refs(config) if not _is_set(v.env)]
        reason = (f"environment variable {', '.join(missing)} is not set" if missing
                  else f"invalid configuration ({type(exc).__name__})")
        return UnavailableReceiver(name=config.name, reason=reason)


def _env_refs(config: ReceiverConfig) -> list[EnvRef]:
    found: list[EnvRef] = []

    def walk(value: Any) -> None:
        if isinstance(value, EnvRef):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for name in type(config).model_fields:
        walk(getattr(config, name))
    return found


def _is_set(name: str) -> bool:
    import os

    return bool(os.environ.get(name))


def build_receivers(rules: RulesFile) -> dict[str, Receiver]:
    return {r.name: build_receiver(r) for r in rules.receivers}
