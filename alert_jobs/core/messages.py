"""The message every receiver renders: one *group notification* (Alertmanager's model).

The engine decides per alert; the router puts alerts that share a route, a receiver
and the route's ``group_by`` labels into one group, and each flush of a group becomes
one :class:`GroupMessage` in the outbox. Receivers turn it into their wire format
(Slack blocks, Discord embeds, PagerDuty events, email, Alertmanager webhook v4 …)
and must enforce their own size limits. Everything here is plain JSON-able data and
holds no secrets, so it can be stored in the outbox and the timeline.

These are types only: the store writes them (a group flush) and the notifiers read
them, so they live below both.
"""

from __future__ import annotations

from typing import Literal, TypedDict

Status = Literal["firing", "resolved"]


class AlertLinks(TypedDict, total=False):
    """Signed action links (empty strings when no link secret/base URL is configured)."""

    ack: str
    snooze_1h: str
    snooze_6h: str
    actionable: str
    false_positive: str
    noise: str
    duplicate: str
    disable: str  # disable the rule (all its alerts), for a while or until enabled
    incident: str  # resolve messages: "how did it go?" (the episode's incident record)
    silence: str  # CLI command text: silencing by matchers needs a human to choose them
    edit_rule: str  # where the rule lives: an editor URL, or "file line N: rule X"


class AlertMessage(TypedDict, total=False):
    """One alert inside a group, in the order of the message standard (DESIGN.md §5)."""

    status: Status  # this alert's own status
    rule: str
    fingerprint: str
    severity: str  # info | warning | critical
    labels: dict[str, str]  # includes alertname and severity
    summary: str  # expected vs seen with the time frame: the first line people read
    expected: str
    seen: str
    window: str
    value: float | None
    description: str
    why: str  # why it matters
    first_steps: str
    audience: str  # engineering | data_science | business
    audience_text: str  # the rule's text for that audience, if any
    # Every audience's view, {"business": {"text", "dashboard_url"}}: a receiver with its
    # own audience shows that one (alert_jobs.notify.audience). Absent: one text for all.
    audiences: dict[str, dict[str, str]]
    runbook_url: str
    dashboard_url: str
    run_url: str  # the Dagster run that decided it
    starts_at: str | None  # ISO 8601
    ends_at: str | None
    notification_reason: str  # first | repeat | unmuted | severity_raised | resolved | escalation
    actions: AlertLinks
    drill: str  # a fire drill's id: the alert was injected on purpose (docs/drills.md)


class Attachment(TypedDict):
    """A file sent with a message by receivers that can carry files (email)."""

    filename: str
    content_type: str  # text/html, text/plain …
    content: str


class GroupMessage(TypedDict, total=False):
    """One notification for one receiver: a group of alerts at one flush."""

    receiver: str
    group_key: str  # stable per (route, receiver, group labels)
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    status: Status  # firing if any alert in it is firing
    notification_reason: str  # first | new_alerts | resolved | repeat | escalation | test
    dedup_key: str  # stable per group flush; receivers may pass it on for idempotency
    alerts: list[AlertMessage]  # firing first, then resolved; receivers may truncate
    truncated_alerts: int  # alerts left out of ``alerts`` by the router's max_alerts
    dagster_url: str
    test: bool  # True for `alert-jobs notify test`: render a clearly marked test message
    attachments: list[Attachment]  # e.g. the monthly review's HTML; only email sends them
