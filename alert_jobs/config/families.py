"""How a check family extends the rules file, and which families are installed.

A family is found through the ``alert_jobs.families`` entry point group (one line in
``pyproject.toml`` per family; a separately installed package can add its own). Its
entry point object carries a :class:`RulesSection`: the rule model of
``checks.<family>``, any top-level settings sections it owns, and its checks over the
whole file. So the loader validates every family's rules without importing any family
by name; the rest of the family seam (evaluation, Dagster definitions, CLI commands)
is :class:`alert_jobs.runtime.family.Family`.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from alert_jobs.config.rules import RuleBase
from alert_jobs.config.types import Strict

ENTRY_POINT_GROUP = "alert_jobs.families"

#: Report one problem: the YAML path (a tuple of keys and indexes) and the reason.
AddProblem = Callable[[tuple[Any, ...], str], None]
#: Checks over the raw YAML (so they are reported together with schema errors):
#: ``(data, receiver_names, add)``.
CrossCheck = Callable[[dict[str, Any], Sequence[str], AddProblem], None]


@dataclass(frozen=True)
class RulesSection:
    """What one family adds to the rules file.

    ``family`` names the list ``checks.<family>`` of ``rule_model`` rules (``None``: the
    family has no rules of its own, e.g. alert quality). ``settings`` are top-level
    sections it owns (``quality:``), as ``(key, model)`` pairs; ``reserved_rules`` are
    rule names it alerts under itself, which the file may not use; ``order`` places the
    family's rules among the others (``rules validate`` lists them in this order).
    """

    family: str
    rule_model: type[RuleBase] | None = None
    settings: tuple[tuple[str, type[Strict]], ...] = ()
    reserved_rules: tuple[str, ...] = ()
    cross_check: CrossCheck | None = None
    order: int = 100


class FamilyPlugin(Protocol):
    """The part of a family the rules file needs (see ``alert_jobs.runtime.family``)."""

    @property
    def name(self) -> str: ...

    @property
    def rules(self) -> RulesSection: ...


class FamilyRegistryError(RuntimeError):
    """An installed family is broken or clashes with another."""


_added: list[FamilyPlugin] = []


@functools.cache
def _from_entry_points() -> tuple[FamilyPlugin, ...]:
    found: list[FamilyPlugin] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            family = ep.load()
        except Exception as exc:
            raise FamilyRegistryError(f"check family {ep.name!r} ({ep.value}) cannot be "
                                      f"loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(getattr(family, "rules", None), RulesSection):
            raise FamilyRegistryError(f"entry point {ep.name!r} ({ep.value}) is not a check "
                                      "family: it has no RulesSection at .rules")
        found.append(family)
    return tuple(found)


def installed_families() -> tuple[FamilyPlugin, ...]:
    """Every installed family (entry points, then any added with :func:`added_family`),
    in rules order. Raises :class:`FamilyRegistryError` if two share a name or a key."""
    families = sorted([*_from_entry_points(), *_added], key=lambda f: (f.rules.order, f.name))
    if not families:
        raise FamilyRegistryError(
            f"no check families are installed (entry point group {ENTRY_POINT_GROUP!r}); "
            "install alert-jobs with pip (`make install`) rather than running it from a "
            "source folder")
    seen: dict[str, str] = {}
    for family in families:
        keys = [f"checks.{family.rules.family}", *(k for k, _ in family.rules.settings)]
        for key in keys:
            if key in seen:
                raise FamilyRegistryError(f"families {seen[key]!r} and {family.name!r} both "
                                          f"define {key!r} in the rules file")
            seen[key] = family.name
    return tuple(families)


def sections() -> tuple[RulesSection, ...]:
    return tuple(f.rules for f in installed_families())


@contextmanager
def added_family(family: FamilyPlugin) -> Iterator[None]:
    """Install a family for the duration of the block (tests, and embedding a family
    that is not packaged with an entry point)."""
    _added.append(family)
    try:
        yield
    finally:
        _added.remove(family)
