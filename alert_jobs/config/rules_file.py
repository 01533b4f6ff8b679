"""The whole rules file: defaults, receivers, routes, inhibition, and each family's part.

:class:`RulesFile` holds what every installation has; :func:`rules_model` extends it
with the installed families' sections (``checks.<family>`` lists and top-level
settings), so the loader validates a file whose families it has never imported.
Code that needs one family's rules asks for them by type::

    rules.rules_of(SqlMetricRule)      # the rules under checks.sql_metric
    rules.section(QualityConfig)       # the quality: section (its defaults if absent)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Literal, TypeVar

from pydantic import Field, create_model

from alert_jobs.config.families import RulesSection
from alert_jobs.config.receivers import ConsoleReceiverConfig, ReceiverConfig
from alert_jobs.config.routes import Defaults, InhibitRule, Route
from alert_jobs.config.rules import RuleBase
from alert_jobs.config.types import Strict
from alert_jobs.core.routing import Router

R = TypeVar("R", bound=RuleBase)
S = TypeVar("S", bound=Strict)


class Checks(Strict):
    """``checks:``: one list per installed family (see :func:`rules_model`)."""


def _console() -> ReceiverConfig:
    return ConsoleReceiverConfig(name="console", type="console")


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """"unknown rule 'x'; did you mean y?" — or, with nothing close, every known name
    (the rules file, the rule-test and dry-run commands all say it this way)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if close:
        return f"unknown {what} {name!r}; did you mean {', '.join(close)}?"
    return f"unknown {what} {name!r} (known {what}s: {', '.join(names) or 'none'})"


class RulesFile(Strict):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    receivers: list[ReceiverConfig] = Field(default_factory=lambda: [_console()])
    route: Route | None = None
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)

    def rules(self) -> list[RuleBase]:
        """Every rule of every family, in family order, then file order."""
        return [rule for name in type(self.checks).model_fields
                for rule in getattr(self.checks, name)]

    def rules_of(self, model: type[R]) -> list[R]:
        """The rules of one family, by its rule model."""
        return [rule for rule in self.rules() if isinstance(rule, model)]

    def section(self, model: type[S]) -> S:
        """A family's top-level settings section, by its model (defaults when the
        family was not installed when the file was read)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if type(value) is model:
                return value
        return model()

    def rule(self, name: str) -> RuleBase:
        for rule in self.rules():
            if rule.name == name:
                return rule
        raise KeyError(unknown_name("rule", name, [r.name for r in self.rules()]))

    def receiver(self, name: str) -> ReceiverConfig:
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(f"unknown receiver {name!r}")

    def fallback_receiver(self) -> str:
        """Where "receiver broken" alerts go: configured, else console, else the default."""
        names = [r.name for r in self.receivers]
        if self.defaults.fallback_receiver:
            return self.defaults.fallback_receiver
        return "console" if "console" in names else (self.defaults.receivers or names)[0]

    def direct_receivers(self, rule_name: str) -> tuple[str, ...]:
        """A rule's own ``receivers:`` (which bypass the route tree), or () to route."""
        for rule in self.rules():
            if rule.name == rule_name:
                return tuple(rule.receivers or ())
        return ()

    def router(self) -> Router:
        """The compiled route tree and inhibit rules of this file."""
        return Router(self.defaults.routing(), self.route.spec() if self.route else None,
                      [rule.compile() for rule in self.inhibit_rules])

    def schedule_for(self, rule: RuleBase) -> str:
        return rule.schedule or self.defaults.schedule

    def timezone_for(self, rule: RuleBase) -> str:
        return rule.timezone or self.defaults.timezone

    def repeat_interval_for(self, rule: RuleBase) -> timedelta:
        return rule.repeat_interval or self.defaults.repeat_interval


_MODELS: dict[tuple[RulesSection, ...], type[RulesFile]] = {}


def rules_model(sections: Sequence[RulesSection]) -> type[RulesFile]:
    """:class:`RulesFile` extended with these families' sections (built once per set)."""
    key = tuple(sections)
    if key not in _MODELS:
        checks: dict[str, Any] = {
            s.family: (list[s.rule_model], Field(default_factory=list))  # type: ignore[name-defined]
            for s in key if s.rule_model is not None}
        checks_model = create_model("Checks", __base__=Checks, **checks)
        settings: dict[str, Any] = {name: (model, Field(default_factory=model))
                                    for s in key for name, model in s.settings}
        _MODELS[key] = create_model(
            "RulesFile", __base__=RulesFile,
            checks=(checks_model, Field(default_factory=checks_model)), **settings)
    return _MODELS[key]
