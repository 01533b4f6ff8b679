"""Routing in the rules file: ``defaults:``, ``route:`` and ``inhibit_rules:``.

The pydantic models validate what the user wrote; :meth:`Route.spec` and
:meth:`InhibitRule.compile` turn them into the plain values of
:mod:`alert_jobs.core.routing`, which knows nothing of the file.
"""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from alert_jobs.config.types import Cron, Duration, MatcherText, Strict, Timezone
from alert_jobs.core.model import Matcher
from alert_jobs.core.routing import CompiledInhibit, Escalation, RouteSpec, RoutingDefaults


class EscalationStep(Strict):
    """While an alert fires un-acked, after ``after`` also notify ``receiver``."""

    after: Duration
    receiver: str


class Route(Strict):
    """Alertmanager's route: matchers, receiver, grouping and timers, children, continue.

    Unset values are inherited from the parent; the root's defaults are in ``defaults``.
    ``mute_time_intervals`` and ``active_time_intervals`` name entries of the file's
    ``time_intervals:`` and, as in Alertmanager, are not inherited (the root may have
    none): see :mod:`alert_jobs.config.time_intervals`.
    """

    receiver: str | None = None
    matchers: list[MatcherText] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    escalation: list[EscalationStep] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    def spec(self) -> RouteSpec:
        """The plain route tree :class:`~alert_jobs.core.routing.Router` walks."""
        return RouteSpec(
            receiver=self.receiver, matchers=tuple(Matcher.parse(m) for m in self.matchers),
            continue_=self.continue_,
            group_by=tuple(self.group_by) if self.group_by is not None else None,
            group_wait=self.group_wait, group_interval=self.group_interval,
            repeat_interval=self.repeat_interval,
            escalation=tuple(Escalation(s.after, s.receiver) for s in self.escalation),
            routes=tuple(child.spec() for child in self.routes),
            mute_time_intervals=tuple(self.mute_time_intervals),
            active_time_intervals=tuple(self.active_time_intervals))


class InhibitRule(Strict):
    """Mute alerts matching ``target_matchers`` while an alert matching ``source_matchers``
    fires with the same values of the ``equal`` labels."""

    name: str = ""
    source_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    target_matchers: Annotated[list[MatcherText], Field(min_length=1)]
    equal: list[str] = Field(default_factory=list)

    def compile(self) -> CompiledInhibit:
        return CompiledInhibit(self.name, tuple(Matcher.parse(m) for m in self.source_matchers),
                               tuple(Matcher.parse(m) for m in self.target_matchers),
                               tuple(self.equal))


class Defaults(Strict):
    """``defaults:``: the root route's receivers and timers, and settings every rule
    inherits unless it says otherwise."""

    receivers: list[str] = Field(default_factory=lambda: ["console"])
    repeat_interval: Duration = timedelta(hours=4)
    timezone: Timezone = "UTC"
    schedule: Cron = "*/5 * * * *"
    dagster_url: str = "http://127.0.0.1:3000"
    redis_quota_schedule: Cron = "*/15 * * * *"
    source_concurrency: Annotated[int, Field(ge=1, le=64)] = 8  # sources read at once per run
    group_by: list[str] = Field(default_factory=lambda: ["alertname"])
    group_wait: Duration = timedelta(0)
    group_interval: Duration = timedelta(minutes=5)
    max_alerts: Annotated[int, Field(ge=1)] = 100
    fallback_receiver: str | None = None  # default: console if defined, else receivers[0]
    action_base_url: str = ""  # where `alert-jobs serve` answers signed links
    action_link_ttl: Duration = timedelta(days=2)
    #: Where a message's "edit rule" link opens the rule, e.g. a repository's web editor:
    #: ``https://github.com/acme/alerts/edit/main/{file}#L{line}`` (placeholders
    #: ``{file}``, ``{line}``, ``{rule}``). Empty: messages say "alerts.yaml line 42: rule X".
    edit_url: str = ""
    #: The rules file's path as ``{file}`` (e.g. its path in the repository); empty: the
    #: file name as configured (``$ALERT_JOBS_RULES`` or the path given to the loader).
    edit_path: str = ""

    @field_validator("edit_url")
    @classmethod
    def _edit_template(cls, value: str) -> str:
        return check_edit_template(value)

    def routing(self) -> RoutingDefaults:
        return RoutingDefaults(
            receivers=tuple(self.receivers), group_by=tuple(self.group_by),
            group_wait=self.group_wait, group_interval=self.group_interval,
            repeat_interval=self.repeat_interval, max_alerts=self.max_alerts,
            external_url=self.dagster_url)


EDIT_PLACEHOLDERS = ("file", "line", "rule")


def check_edit_template(template: str) -> str:
    """``template`` if it is an http(s) URL whose only placeholders are ``{file}``,
    ``{line}`` and ``{rule}``; ValueError saying what is wrong otherwise."""
    if not template:
        return template
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        raise ValueError(f"edit_url is not a valid template ({exc}); write placeholders as "
                         "{file}, {line}, {rule} and a literal brace as {{ or }}") from None
    for name, spec, conv in fields:
        if name not in EDIT_PLACEHOLDERS or spec or conv:
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"edit_url has an unknown placeholder {shown} (known: "
                             + ", ".join("{" + p + "}" for p in EDIT_PLACEHOLDERS) + ")")
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"edit_url must be an http(s) URL, got {template!r}")
    return template
