"""Read the rules file (``alerts.yaml``): errors that say where and what, all at once.

Every error names the file, the YAML path and the reason, and all errors are
reported at once::

    alerts.yaml: checks.sql_metric[0].for: expected a duration like 5m, got '5 minutes' (line 14)

The file is validated against the model of every installed family
(:mod:`alert_jobs.config.families`), so a family's rules are checked here without
this module importing any family.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alert_jobs.config.families import RulesSection, family_problems, sections
from alert_jobs.config.receivers import RECEIVER_TYPES
from alert_jobs.config.rules_file import RulesFile, rules_model

DEFAULT_RULES_FILE = "alerts.yaml"
RULES_FILE_ENV = "ALERT_JOBS_RULES"


@dataclass(frozen=True)
class RuleFileProblem:
    """One problem in a rules file, with where it is."""

    path: str
    reason: str
    line: int | None = None


class RulesError(ValueError):
    """The rules file is unreadable or invalid; ``problems`` lists every error found."""

    def __init__(self, file: str, problems: list[RuleFileProblem]):
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def lines(self) -> list[str]:
        out = []
        for p in self.problems:
            where = f"{self.file}: {p.path}: " if p.path else f"{self.file}: "
            line = f" (line {p.line})" if p.line else ""
            out.append(f"{where}{p.reason}{line}")
        return out

    def render(self) -> str:
        return "\n".join(self.lines())


def default_rules_path() -> Path:
    return Path(os.environ.get(RULES_FILE_ENV, DEFAULT_RULES_FILE))


def installed_rules_model() -> type[RulesFile]:
    """The rules file model of the installed families."""
    return rules_model(sections())


def load_rules(path: str | os.PathLike[str] | None = None, *,
               families: tuple[RulesSection, ...] | None = None) -> RulesFile:
    """Read and validate a rules file. Raises :class:`RulesError` listing every problem.

    ``families``: the sections to validate against (default: every installed family).
    """
    file = Path(path) if path is not None else default_rules_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(str(file), [RuleFileProblem("", "file not found")]) from None
    except OSError as exc:
        raise RulesError(str(file), [RuleFileProblem("", f"cannot read: {exc.strerror}")]) from None
    return parse_rules(text, str(file), families=families)


#: libyaml's safe loader where PyYAML was built with it: every run, sensor tick and
#: `serve` reload parses the rules file, and the pure-Python loader took ~600 ms of CPU
#: for a 1,000-rule file (benchmarks/watch_bench.py); the same documents, ~10× faster.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, from one parse (what
    ``yaml.load`` does, keeping the nodes: parsing twice doubled the cost)."""
    loader = _LOADER(text)  # a safe loader (C or Python)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def parse_rules(text: str, filename: str = DEFAULT_RULES_FILE, *,
                families: tuple[RulesSection, ...] | None = None) -> RulesFile:
    """Validate rules given as YAML text; ``filename`` is only used in messages."""
    chosen = sections() if families is None else families
    try:
        node, data = _parse(text)
        lines = line_index(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        line = mark.line + 1 if mark is not None else None
        raise RulesError(filename, [RuleFileProblem("", reason, line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(filename, [RuleFileProblem("", "expected a mapping at the top level")])
    problems = _cross_checks(data, lines, chosen)
    try:
        rules = rules_model(chosen).model_validate(data)
    except ValidationError as exc:
        schema_problems = [_problem(err, lines) for err in exc.errors()]
        raise RulesError(filename, _in_file_order(schema_problems + problems)) from None
    if problems:
        raise RulesError(filename, _in_file_order(problems))
    return rules.located(filename, rule_lines(data, lines))


def rule_lines(data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> dict[str, int]:
    """Each rule's line (that of its ``name:``) from the index errors already use."""
    checks = data.get("checks")
    out: dict[str, int] = {}
    for family, rules in (checks.items() if isinstance(checks, dict) else []):
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(rule, dict) and isinstance(rule.get("name"), str):
                line = nearest_line(("checks", family, i, "name"), lines)
                if line is not None:
                    out.setdefault(rule["name"], line)
    return out


def _in_file_order(problems: list[RuleFileProblem]) -> list[RuleFileProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _problem(err: Any, lines: dict[tuple[Any, ...], int]) -> RuleFileProblem:
    loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
    if len(loc) > 2 and loc[0] == "receivers" and loc[2] in RECEIVER_TYPES:
        loc = loc[:2] + loc[3:]  # the discriminator tag pydantic adds; the user never wrote it
    reason = err["msg"]
    if err["type"] == "extra_forbidden":
        reason = "unknown key"
        if len(loc) == 2 and loc[0] == "checks":  # a family that is installed but broken?
            why = [p for p in family_problems() if f"{loc[1]!r}" in p]
            reason += f" ({why[0]})" if why else " (no installed check family has it)"
    elif err["type"] == "missing":
        reason = "required key is missing"
    elif reason.startswith("Value error, "):
        reason = reason[len("Value error, ") :]
    return RuleFileProblem(yaml_path(loc), reason, nearest_line(loc, lines))


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member's type name in the location (``str``, ``EnvRef``);
    # the user never wrote it, so it must not show in the path.
    return isinstance(part, str) and (part in ("str", "EnvRef") or part.startswith("function-"))


def yaml_path(loc: tuple[Any, ...]) -> str:
    """``('checks', 'sql_metric', 0, 'for')`` → ``checks.sql_metric[0].for``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map each YAML path to its 1-based line, so errors can point at the line."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                child = (*path, key.value)
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def nearest_line(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _cross_checks(data: dict[str, Any], lines: dict[tuple[Any, ...], int],
                  families: tuple[RulesSection, ...]) -> list[RuleFileProblem]:
    """Checks that span several parts of the file: names unique, receivers known, no
    rule under a name the system alerts under itself, and each family's own checks.

    They read the raw YAML (not the validated model) so they are reported together
    with schema errors elsewhere in the file: all errors at once.
    """
    problems: list[RuleFileProblem] = []

    def add(loc: tuple[Any, ...], reason: str) -> None:
        problems.append(RuleFileProblem(yaml_path(loc), reason, nearest_line(loc, lines)))

    def items(value: Any) -> list[tuple[int, dict[str, Any]]]:
        return [(i, x) for i, x in enumerate(value) if isinstance(x, dict)] \
            if isinstance(value, list) else []

    receivers = data.get("receivers", [{"name": "console"}])
    receiver_names: list[str] = []
    for i, receiver in items(receivers):
        name = receiver.get("name")
        if isinstance(name, str):
            if name in receiver_names:
                add(("receivers", i, "name"), f"receiver name {name!r} is used twice")
            receiver_names.append(name)
    known = ", ".join(receiver_names) or "none"

    def check_refs(loc: tuple[Any, ...], refs: Any) -> None:
        for j, name in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(name, str) and name not in receiver_names:
                add((*loc, j), f"unknown receiver {name!r} (known: {known})")

    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)
    if "receivers" in defaults:
        check_refs(("defaults", "receivers"), defaults.get("receivers"))
    elif "console" not in receiver_names:
        add(("defaults",), "rules without receivers go to 'console', which is not defined: "
                           "add defaults.receivers or a console receiver")
    fallback = defaults.get("fallback_receiver")
    if isinstance(fallback, str) and fallback not in receiver_names:
        add(("defaults", "fallback_receiver"), f"unknown receiver {fallback!r} (known: {known})")

    def check_route(route: Any, loc: tuple[Any, ...]) -> None:
        if not isinstance(route, dict):
            return
        name = route.get("receiver")
        if isinstance(name, str) and name not in receiver_names:
            add((*loc, "receiver"), f"unknown receiver {name!r} (known: {known})")
        for j, step in enumerate(route.get("escalation") or []):
            if isinstance(step, dict) and isinstance(step.get("receiver"), str) \
                    and step["receiver"] not in receiver_names:
                add((*loc, "escalation", j, "receiver"),
                    f"unknown receiver {step['receiver']!r} (known: {known})")
        for j, child in enumerate(route.get("routes") or []):
            check_route(child, (*loc, "routes", j))

    check_route(data.get("route"), ("route",))
    reserved = tuple(name for s in families for name in s.reserved_rules)
    checks = data.get("checks")
    seen_rules: set[str] = set()
    for family, rules in (checks.items() if isinstance(checks, dict) else []):
        for i, rule in items(rules):
            name = rule.get("name")
            if isinstance(name, str) and name in reserved:
                add(("checks", family, i, "name"),
                    f"rule name {name!r} is reserved for the system's own alerts "
                    f"({', '.join(reserved)})")
            if isinstance(name, str):
                if name in seen_rules:
                    add(("checks", family, i, "name"), f"rule name {name!r} is used twice")
                seen_rules.add(name)
            check_refs(("checks", family, i, "receivers"), rule.get("receivers"))
    for section in families:
        if section.cross_check is not None:
            section.cross_check(data, receiver_names, add)
    return problems
