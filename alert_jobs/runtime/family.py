"""The family seam: what a check family gives alert-jobs, in one object.

A family is one package under ``alert_jobs/families/`` (or any installed package)
whose ``FAMILY`` is registered as an entry point in the ``alert_jobs.families`` group::

    [project.entry-points."alert_jobs.families"]
    sql_metric = "alert_jobs.families.sql_metric:FAMILY"

It provides:

* ``rules``: its part of the rules file (:class:`~alert_jobs.config.RulesSection`: the
  rule model of ``checks.<name>``, settings sections, cross checks);
* ``evaluate``: one rule, now, end to end — read the source, judge it, let the engine
  decide (``alert-jobs check RULE``, and every family's own Dagster asset, go this way);
* ``definitions``: its Dagster assets, checks, schedules, sensors and jobs for the
  rules file (imported only when Dagster loads the code location);
* ``register_cli``: its ``alert-jobs`` subcommands (optional);
* ``http_routes``: routes ``alert-jobs serve`` answers for it, e.g. heartbeat pings
  (optional);
* ``threshold_keys`` and ``rejudge``: which thresholds ``alert-jobs rules backtest`` can
  change for its rules, and how a stored value is judged with them changed (optional);
* ``simulate``: its rules evaluated from a rule test's synthetic inputs on a simulated
  clock (``alert-jobs rules test``; :mod:`alert_jobs.runtime.simulation`) (optional).

Families never import each other; what they share is below them (core, config, store,
notify, runtime). See the README's "Adding a check family".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from alert_jobs.config import FamilyRegistryError, RuleBase, RulesFile, RulesSection
from alert_jobs.config import installed_families as _installed

if TYPE_CHECKING:  # only for types: registering a family stays cheap (no Dagster, no SQL)
    import dagster as dg

    from alert_jobs.core.model import Observation
    from alert_jobs.runtime.evaluate import RuleOutcome
    from alert_jobs.store import Timeline


class Rejudge(Protocol):
    """Judges the stored values of ONE alert instance again, with changed thresholds.

    ``judge(value, was_firing, at)``: the value the instance's evaluation at ``at`` stored,
    and whether the alert was active then (``was_firing`` selects the resolve range).
    The backtest makes one judge per alert instance and calls it with that instance's
    values in time order, so a judge may learn from them: a baseline judge keeps the
    values it judged (not those it judged alerts) as the history of the next ones, and
    adopts a level shift as the runtime would.

    ``history``: how far before the first value that counts the judge needs values to
    judge it as the rule would have (a baseline's ``history``; zero for fixed bounds);
    the backtest feeds it the instance's evaluations from that far back first (their
    episodes do not count). ``learn(points)``: ``(at, value)`` points the judge should
    know without judging them (a baseline rule's backfilled windows, all before its first
    evaluation), given before the first call.
    """

    @property
    def history(self) -> timedelta: ...

    def learn(self, points: Sequence[tuple[datetime, float]]) -> None: ...

    def __call__(self, value: float, was_firing: bool, at: datetime) -> Observation: ...


class Evaluate(Protocol):
    def __call__(self, rules: RulesFile, rule: Any, timeline: Timeline, *, now: datetime,
                 run_id: str | None) -> list[RuleOutcome]: ...


def lazy(target: str) -> Callable[..., Any]:
    """The function ``"package.module:name"``, imported when first called: a family's
    hooks name their modules this way so that registering the family (at every
    ``alert-jobs`` start) imports neither Dagster nor its sources."""
    module, _, name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = f"lazy({target})"
    return call


@dataclass(frozen=True)
class Family:
    """One check family (see the module docstring)."""

    name: str
    package: str  # the family's Python package (its ``store`` module holds its tables)
    description: str
    rules: RulesSection
    definitions: Callable[[RulesFile], dg.Definitions]
    evaluate: Evaluate | None = None
    register_cli: Callable[[Any], None] | None = None
    #: Routes ``alert-jobs serve`` answers for it (Starlette routes), given how to get the
    #: timeline and the rules: ``http_routes(get_timeline, get_rules)``.
    http_routes: Callable[[Callable[[], Timeline], Callable[[], RulesFile]], list[Any]] | None \
        = None
    #: ``alert-jobs rules backtest``: the ``--set KEY=VALUE`` keys that change this
    #: family's thresholds, and how a rule judges a stored value with them changed
    #: (raise ValueError for a bad value). Without it only ``for`` and
    #: ``keep_firing_for`` can be backtested.
    threshold_keys: tuple[str, ...] = ()
    rejudge: Callable[[Any, Mapping[str, str]], Rejudge] | None = None
    #: ``alert-jobs rules test``: ``simulate(rule, inputs, clock)`` checks one rule's
    #: ``input`` from a test file and returns what evaluates it at each simulated time
    #: (:class:`~alert_jobs.runtime.simulation.Simulate`). Without it the family's rules
    #: cannot be unit-tested (the test file is refused, naming the family).
    simulate: Callable[[Any, Mapping[str, Any], Any], Any] | None = None
    #: Its assets write the timeline (so the ``alert_timeline`` asset is downstream of
    #: them); false for a family that only reads it (alert quality).
    writes_timeline: bool = True
    #: Retention of the family's own tables (``timeline_retention``, daily):
    #: ``trim(db, policy, now, trimmed)`` removes what the ``retention:`` settings say is
    #: old, in batches (:func:`alert_jobs.store.retention.delete_in_batches`), and counts
    #: it in ``trimmed``.
    trim: Callable[..., None] | None = None

    def owns(self, rule: RuleBase) -> bool:
        model = self.rules.rule_model
        return model is not None and isinstance(rule, model)


def family_trims() -> dict[str, Callable[..., None]]:
    """Every installed family's retention hook, by family name."""
    return {f.name: f.trim for f in installed_families() if f.trim is not None}


def installed_families() -> tuple[Family, ...]:
    """Every installed family, in rules order."""
    families = _installed()
    for family in families:
        if not isinstance(family, Family):
            raise FamilyRegistryError(f"check family {family.name!r} is a "
                                      f"{type(family).__name__}, not an "
                                      "alert_jobs.runtime.family.Family")
    return families  # type: ignore[return-value]


def family_of(rule: RuleBase) -> Family:
    """The family a rule belongs to."""
    for family in installed_families():
        if family.owns(rule):
            return family
    raise LookupError(f"rule {rule.name!r} belongs to no installed check family")
