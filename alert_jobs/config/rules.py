"""What every rule has, whatever its check family: name, severity, timing, labels, links.

A family's rule model subclasses :class:`RuleBase` (``checks.<family>[i]`` in the
rules file) and adds what its source and check need.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config.types import Cron, Duration, Name, Strict, Timezone
from alert_jobs.core.model import NoDataPolicy, Severity

Audience = Literal["engineering", "data_science", "business"]
AUDIENCES: tuple[Audience, ...] = ("engineering", "data_science", "business")


class AudienceText(Strict):
    """What one audience reads about an alert (the ML guide's three columns): its own
    words, the numbers it cares about, and where it looks.

    ``metrics`` name numbers of the check's observation (its ``value`` or a detail the
    family reports, e.g. ``psi``, ``projected``); each is shown as ``name: value`` after
    the text, so a business reader sees orders, a data scientist the statistic.
    A plain string is short for ``{text: ...}``.
    """

    text: str = ""
    metrics: list[str] = Field(default_factory=list)
    dashboard_url: str = ""  # replaces the rule's dashboard for this audience

    @model_validator(mode="before")
    @classmethod
    def _text_alone(cls, data: Any) -> Any:
        return {"text": data} if isinstance(data, str) else data


class Annotations(Strict):
    """Text and links the message standard puts in every notification."""

    why: str = ""
    runbook_url: str = ""
    dashboard_url: str = ""
    #: Who reads this rule's messages on receivers that do not say their own audience.
    audience: Audience = "engineering"
    # Per audience, e.g. {business: "Checkout conversions may drop."} or {data_science:
    # {text: ..., metrics: [psi], dashboard_url: ...}}; every audience's entry travels in
    # the message and each receiver shows its audience's (receivers.audience).
    audience_text: dict[Audience, AudienceText] = Field(default_factory=dict)


class AnnotationsOverride(Strict):
    """Some of :class:`Annotations`, laid over a rule's own for part of its alerts (e.g.
    one ``score_drift`` segment): what is given wins, ``audience_text`` per audience."""

    why: str | None = None
    runbook_url: str | None = None
    dashboard_url: str | None = None
    audience: Audience | None = None
    audience_text: dict[Audience, AudienceText] = Field(default_factory=dict)

    def over(self, base: Annotations) -> Annotations:
        given = self.model_dump(exclude_none=True, exclude={"audience_text"})
        return base.model_copy(update={
            **given, "audience_text": {**base.audience_text, **self.audience_text}})


class RuleBase(Strict):
    """Fields every rule has, whatever its check family."""

    name: Name
    description: str = ""
    severity: Severity = Severity.WARNING
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    repeat_interval: Duration | None = None
    nodata: NoDataPolicy = NoDataPolicy.ALERT
    error: NoDataPolicy = NoDataPolicy.ALERT
    schedule: Cron | None = None
    timezone: Timezone | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=Annotations)
    receivers: list[str] | None = None
    enabled: bool = True
    #: How soon after the condition starts its first notification must be delivered
    #: (fire drills and the chaos test hold the rule to it). Unset: ``for`` + the
    #: rule's evaluation interval + its route's ``group_wait`` + 1 minute.
    sla: Duration | None = None

    def annotations_for(self, labels: dict[str, str]) -> Annotations:
        """The annotations of this rule's alert instance with ``labels``: the rule's own.

        A family whose rule covers several things of different meaning (score_drift's
        segments: a fraud model and a churn model) overrides this, so that "why it
        matters" and the runbook fit the instance, not the whole rule.
        """
        return self.annotations

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise PydanticCustomError("label", "bad label name {key}", {"key": repr(key)})
            if key in ("alertname", "severity", "drill"):  # drill: a fire drill's mark
                raise PydanticCustomError(
                    "label", "label {key} is set by alert-jobs itself", {"key": repr(key)}
                )
        return labels
