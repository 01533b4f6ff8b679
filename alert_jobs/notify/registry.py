"""Build live receivers from the rules file: one receiver class per config type.

Each ``receivers:`` entry has a ``type``; :data:`RECEIVERS` maps it to the class that
sends it, which is built from the entry itself (its one config model). Secrets stay
env references until a send needs them, so an unset variable fails that receiver's
sends (retryably, naming the variable) and never the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alert_jobs.config import RECEIVER_TYPES, ReceiverConfig
from alert_jobs.notify.alertmanager import AlertmanagerReceiver
from alert_jobs.notify.base import Receiver
from alert_jobs.notify.console import ConsoleReceiver
from alert_jobs.notify.discord import DiscordReceiver
from alert_jobs.notify.email import EmailReceiver
from alert_jobs.notify.pagerduty import PagerDutyReceiver
from alert_jobs.notify.slack import SlackReceiver
from alert_jobs.notify.webhook import WebhookReceiver

RECEIVERS: dict[str, type[Receiver[Any]]] = {
    "console": ConsoleReceiver,
    "webhook": WebhookReceiver,
    "slack": SlackReceiver,
    "discord": DiscordReceiver,
    "pagerduty": PagerDutyReceiver,
    "email": EmailReceiver,
    "alertmanager": AlertmanagerReceiver,
}
assert set(RECEIVERS) == set(RECEIVER_TYPES), "every receiver type needs its class"


def build_receiver(config: ReceiverConfig) -> Receiver[Any]:
    """The live receiver for one ``receivers:`` entry."""
    return RECEIVERS[config.type](config)


def build_receivers(configs: Iterable[ReceiverConfig]) -> dict[str, Receiver[Any]]:
    """Live receivers by name (``rules.receivers``)."""
    return {c.name: build_receiver(c) for c in configs}
