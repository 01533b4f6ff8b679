"""``external:`` in the rules file: alerts pushed to ``POST /api/v2/alerts`` (Prometheus).

Example::

    external:
      resolve_timeout: 5m          # an alert pushed without endsAt resolves this long after
                                   # its last push (Alertmanager's global.resolve_timeout)
      severity: warning            # when the alert's severity label is not critical,
                                   # warning or info
      severities: {page: critical, ticket: warning}   # other severity label values
      receivers: []                # empty: the route tree decides (as for every rule)
      sweep_interval_seconds: 30   # how often the sensor resolves alerts past endsAt

Pushed alerts have no rules of their own: Prometheus evaluated the rule (and its
``for``); the alert's ``alertname`` is the rule name everywhere here (routes, silences,
the timeline), as in Alertmanager.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, field_validator

from alert_jobs.config import Duration, RulesSection, Strict
from alert_jobs.config.families import AddProblem
from alert_jobs.core.model import Severity


class ExternalSettings(Strict):
    """How pushed alerts enter the engine."""

    resolve_timeout: Duration = timedelta(minutes=5)
    severity: Severity = Severity.WARNING
    severities: dict[str, Severity] = Field(default_factory=dict)
    receivers: list[str] = Field(default_factory=list)
    sweep_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 30

    @field_validator("resolve_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("resolve_timeout must be positive (e.g. 5m)")
        return value

    def severity_of(self, label: str | None) -> Severity:
        """The severity of an alert whose ``severity`` label is ``label``."""
        if label is None:
            return self.severity
        if label in self.severities:
            return self.severities[label]
        try:
            return Severity(label.lower())
        except ValueError:
            return self.severity


def cross_check(data: dict[str, Any], receiver_names: Sequence[str], add: AddProblem) -> None:
    """``external.receivers`` must name receivers of the file."""
    external = data.get("external")
    names = external.get("receivers") if isinstance(external, dict) else None
    for i, name in enumerate(names if isinstance(names, list) else []):
        if isinstance(name, str) and name not in receiver_names:
            add(("external", "receivers", i),
                f"unknown receiver {name!r} (known: {', '.join(receiver_names) or 'none'})")


SECTION = RulesSection(family="external", settings=(("external", ExternalSettings),),
                       cross_check=cross_check, order=80)
