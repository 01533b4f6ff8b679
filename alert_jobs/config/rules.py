"""What every rule has, whatever its check family: name, severity, timing, labels, links.

A family's rule model subclasses :class:`RuleBase` (``checks.<family>[i]`` in the
rules file) and adds what its source and check need.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from alert_jobs.config.types import Cron, Duration, Name, Strict, Timezone
from alert_jobs.core.model import NoDataPolicy, Severity


class Annotations(Strict):
    """Text and links the message standard puts in every notification."""

    why: str = ""
    runbook_url: str = ""
    dashboard_url: str = ""
    audience: Literal["engineering", "data_science", "business"] = "engineering"
    # Text per audience, e.g. {business: "Checkout conversions may drop."}; the rule's
    # audience picks which one goes into messages.
    audience_text: dict[Literal["engineering", "data_science", "business"], str] = Field(
        default_factory=dict)


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

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise PydanticCustomError("label", "bad label name {key}", {"key": repr(key)})
            if key in ("alertname", "severity"):
                raise PydanticCustomError(
                    "label", "label {key} is set by alert-jobs itself", {"key": repr(key)}
                )
        return labels
