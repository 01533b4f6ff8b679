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
import logging
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
    """No check family is installed at all (alert-jobs runs from a source folder)."""


log = logging.getLogger("alert_jobs.families")
_added: list[FamilyPlugin] = []


@functools.cache
def _from_entry_points() -> tuple[tuple[FamilyPlugin, ...], tuple[str, ...]]:
    """The families the entry points name, and why any of them could not be loaded."""
    found: list[FamilyPlugin] = []
    problems: list[str] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            family = ep.load()
        except Exception as exc:
            problems.append(f"check family {ep.name!r} ({ep.value}) cannot be loaded: "
                            f"{type(exc).__name__}: {exc}")
            continue
        if not isinstance(getattr(family, "rules", None), RulesSection):
            problems.append(f"entry point {ep.name!r} ({ep.value}) is not a check family: "
                            "it has no RulesSection at .rules")
            continue
        found.append(family)
    for problem in problems:
        log.warning("%s; it is skipped, and a rules file that uses it is invalid", problem)
    return tuple(found), tuple(problems)


def family_problems() -> tuple[str, ...]:
    """Why installed families were skipped (cannot be loaded, or clash with another)."""
    return _from_entry_points()[1] + _installed()[1]


def installed_families() -> tuple[FamilyPlugin, ...]:
    """Every installed family that works (entry points, then any added with
    :func:`added_family`), in rules order.

    A family that cannot be loaded, or that claims a rules-file key another family has,
    is skipped (see :func:`family_problems`): one broken plugin must not stop
    ``alert-jobs ack`` or the other families' checks. Raises
    :class:`FamilyRegistryError` only when there is no family at all.
    """
    families, _ = _installed()
    if not families:
        raise FamilyRegistryError(
            f"no check families are installed (entry point group {ENTRY_POINT_GROUP!r}); "
            "install alert-jobs with pip (`make install`) rather than running it from a "
            "source folder")
    return families


def _installed() -> tuple[tuple[FamilyPlugin, ...], tuple[str, ...]]:
    candidates = sorted([*_from_entry_points()[0], *_added],
                        key=lambda f: (f.rules.order, f.name))
    kept: list[FamilyPlugin] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for family in candidates:
        keys = [f"checks.{family.rules.family}", *(k for k, _ in family.rules.settings)]
        clash = next((key for key in keys if key in seen), None)
        if clash is not None:
            problems.append(f"check family {family.name!r} is skipped: {seen[clash]!r} "
                            f"already defines {clash!r} in the rules file")
            continue
        seen.update(dict.fromkeys(keys, family.name))
        kept.append(family)
    return tuple(kept), tuple(problems)


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
