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
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import timedelta
from pathlib import PurePath
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from alert_jobs.config.baseline import Baseline
from alert_jobs.config.families import RulesSection
from alert_jobs.config.freshness import FreshnessConfig
from alert_jobs.config.incidents import IncidentsConfig
from alert_jobs.config.receivers import ConsoleReceiverConfig, ReceiverConfig
from alert_jobs.config.retention import RetentionConfig
from alert_jobs.config.routes import Defaults, InhibitRule, Route
from alert_jobs.config.rules import RuleBase
from alert_jobs.config.time_intervals import TimeIntervalConfig
from alert_jobs.config.types import Strict
from alert_jobs.core.durations import format_duration
from alert_jobs.core.routing import Router

R = TypeVar("R", bound=RuleBase)
S = TypeVar("S", bound=Strict)


class Checks(Strict):
    """``checks:``: one list per installed family (see :func:`rules_model`)."""


def _console() -> ReceiverConfig:
    return ConsoleReceiverConfig(name="console", type="console")


def _baselines(model: Any) -> Iterator[Baseline]:
    """Every ``Baseline`` inside a rule's settings (``expect.baseline``, a family's own)."""
    if isinstance(model, Baseline):
        yield model
    elif isinstance(model, BaseModel):
        for value in model.__dict__.values():
            yield from _baselines(value)
    elif isinstance(model, (list, tuple)):
        for item in model:
            yield from _baselines(item)


def unknown_name(what: str, name: str, known: Iterable[str]) -> str:
    """"unknown rule 'x'; did you mean y?" — or, with nothing close, every known name
    (the rules file, the rule-test and dry-run commands all say it this way)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if close:
        return f"unknown {what} {name!r}; did you mean {', '.join(close)}?"
    return f"unknown {what} {name!r} (known {what}s: {', '.join(names) or 'none'})"


#: The names under ``time_intervals:`` of the file being validated, read from its raw
#: data, so a route's references are checked even when an interval itself is invalid
#: (all errors at once).
_INTERVAL_NAMES: ContextVar[list[str] | None] = ContextVar("_INTERVAL_NAMES", default=None)


def _raise(problems: Sequence[tuple[tuple[str | int, ...], str, object]]) -> None:
    """Report problems found by a validator at their own YAML paths (below the field
    being validated), so the loader names the path and line of each."""
    if problems:
        raise ValidationError.from_exception_data("RulesFile", [
            InitErrorDetails(type=PydanticCustomError("reference", "{reason}",
                                                      {"reason": reason}),
                             loc=loc, input=value)
            for loc, reason, value in problems])


class RulesFile(Strict):
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    receivers: list[ReceiverConfig] = Field(default_factory=lambda: [_console()])
    time_intervals: list[TimeIntervalConfig] = Field(default_factory=list)
    route: Route | None = None
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    checks: Checks = Field(default_factory=Checks)
    #: Where the rules were read from (set by the loader): the file name as configured,
    #: and each rule's line (its ``name:``), for "edit rule" links and texts.
    _source_file: str = PrivateAttr(default="alerts.yaml")
    _rule_lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def located(self, file: str, rule_lines: dict[str, int]) -> RulesFile:
        """Remember where this file's rules are (the loader calls it once); returns self."""
        self._source_file, self._rule_lines = file, dict(rule_lines)
        return self

    def rule_location(self, name: str) -> tuple[str, int | None]:
        """``(file, line)`` of rule ``name``: ``defaults.edit_path``, else the file's
        base name (a deployment's absolute path is no repository path, and messages need
        not show it), and the line of its ``name:`` (None when unknown, e.g. a built-in
        rule or rules not read from a file)."""
        return (self.defaults.edit_path or PurePath(self._source_file).name,
                self._rule_lines.get(name))

    @field_validator("time_intervals")
    @classmethod
    def _unique_intervals(cls, value: list[TimeIntervalConfig]) -> list[TimeIntervalConfig]:
        seen: set[str] = set()
        problems = []
        for i, interval in enumerate(value):
            if interval.name in seen:
                problems.append(((i, "name"), f"time interval name {interval.name!r} is "
                                              "used twice", interval.name))
            seen.add(interval.name)
        _raise(problems)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _interval_names(cls, data: Any, handler: ModelWrapValidatorHandler[RulesFile]
                        ) -> RulesFile:
        """Make the file's interval names (as written) known to the route's check."""
        raw = data.get("time_intervals") if isinstance(data, dict) else None
        names = [t["name"] for t in raw if isinstance(t, dict) and isinstance(
            t.get("name"), str)] if isinstance(raw, list) else []
        token = _INTERVAL_NAMES.set(names)
        try:
            return handler(data)
        finally:
            _INTERVAL_NAMES.reset(token)

    @model_validator(mode="after")
    def _retention_keeps_baseline_history(self) -> RulesFile:
        """A baseline learns from the rule's own evaluations: retention must keep them at
        least as long as its history (and a day), or the baseline would silently learn
        from less than it says."""
        if not self.retention.enabled:
            return self
        for rule in self.rules():
            for baseline in _baselines(rule):
                needed = baseline.history + timedelta(days=1)
                if self.retention.evaluations < needed:
                    raise ValueError(
                        f"retention.evaluations ({format_duration(self.retention.evaluations)}) "
                        f"is shorter than rule {rule.name!r}'s baseline history "
                        f"({format_duration(baseline.history)}) and a day: retention would "
                        f"cut the history it learns from; set retention.evaluations to at "
                        f"least {format_duration(needed)}")
        return self

    @field_validator("route")
    @classmethod
    def _known_intervals(cls, route: Route | None) -> Route | None:
        """Every time interval a route names is defined; the root names none (as in
        Alertmanager: it would mute or limit every alert)."""
        known = _INTERVAL_NAMES.get()
        if route is None or known is None:
            return route
        problems: list[tuple[tuple[str | int, ...], str, object]] = [
            ((key,), f"the root route cannot have {key} (it would apply to every alert): "
                     "put them on a child route", getattr(route, key))
            for key in ("mute_time_intervals", "active_time_intervals") if getattr(route, key)]

        def walk(node: Route, loc: tuple[str | int, ...]) -> None:
            for key in ("mute_time_intervals", "active_time_intervals"):
                for j, name in enumerate(getattr(node, key)):
                    if name not in known:
                        problems.append(((*loc, key, j),
                                         unknown_name("time interval", name, known), name))
            for k, child in enumerate(node.routes):
                walk(child, (*loc, "routes", k))

        walk(route, ())
        _raise(problems)
        return route

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
                      [rule.compile() for rule in self.inhibit_rules],
                      {t.name: t.compile() for t in self.time_intervals})

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
