"""Receivers in the rules file (``receivers:``): one config model per receiver type.

Each model is the one description of its receiver: :mod:`alert_jobs.notify` builds the
live receiver from it (``notify/<type>.py``), and the Dagster UI shows it through the
one ``receivers`` resource. Secret fields are :data:`SecretOrText` (``{env: NAME}``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from alert_jobs.config.rules import Audience
from alert_jobs.config.types import Duration, Name, SecretOrText, Strict


class ReceiverBase(Strict):
    """What every receiver has: a name rules and routes refer to, a timeout, whether it
    is told about resolves (``None``: its type's default), and who reads it.

    ``audience``: the words of which audience (a rule's ``audience_text``) this receiver
    shows. Unset: each rule's own ``annotations.audience`` (``engineering`` unless the rule
    says otherwise), as before receivers had one. Routes have no audience: a route picks
    receivers, and a receiver is read by one audience (give other readers their own).
    """

    name: Name
    timeout: Duration = timedelta(seconds=10)
    send_resolved: bool | None = None  # None: the receiver type's default
    audience: Audience | None = None


class ConsoleReceiverConfig(ReceiverBase):
    type: Literal["console"]


class WebhookReceiverConfig(ReceiverBase):
    """Alertmanager webhook format v4, for existing webhook consumers."""

    type: Literal["webhook"]
    url: SecretOrText
    headers: dict[str, SecretOrText] = Field(default_factory=dict)
    max_alerts: Annotated[int, Field(ge=0)] = 0  # 0: all


class SlackReceiverConfig(ReceiverBase):
    type: Literal["slack"]
    webhook_url: SecretOrText


class DiscordReceiverConfig(ReceiverBase):
    type: Literal["discord"]
    webhook_url: SecretOrText


class PagerDutyReceiverConfig(ReceiverBase):
    type: Literal["pagerduty"]
    routing_key: SecretOrText
    events_url: str = "https://events.pagerduty.com/v2/enqueue"


class EmailReceiverConfig(ReceiverBase):
    type: Literal["email"]
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)] = 587
    security: Literal["starttls", "ssl", "plain"] = "starttls"
    username: SecretOrText | None = None
    password: SecretOrText | None = None
    from_address: str
    to: Annotated[list[str], Field(min_length=1)]
    verify_tls: bool = True  # false accepts any certificate: a self-signed relay only


class AlertmanagerReceiverConfig(ReceiverBase):
    """Push to an existing Alertmanager's ``/api/v2/alerts``; it routes from there."""

    type: Literal["alertmanager"]
    url: SecretOrText
    headers: dict[str, SecretOrText] = Field(default_factory=dict)


ReceiverConfig = Annotated[
    ConsoleReceiverConfig | WebhookReceiverConfig | SlackReceiverConfig
    | DiscordReceiverConfig | PagerDutyReceiverConfig | EmailReceiverConfig
    | AlertmanagerReceiverConfig,
    Field(discriminator="type"),
]
RECEIVER_TYPES = ("console", "webhook", "slack", "discord", "pagerduty", "email",
                  "alertmanager")
