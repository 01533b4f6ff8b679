"""Read a rule-test file (``docs/rule-tests.md``) into plain objects, or say where it is
broken: every problem names the file, the YAML path, the line and what to write instead.

Only the shape is checked here. Whether each rule's ``input`` makes sense is its family's
business (``Family.simulate``), and whether the rules named exist is checked against the
rules file in :mod:`alert_jobs.runtime.ruletest.harness`; both report through
:class:`TestFileError` too, so a broken file always exits 2 before any test runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from alert_jobs.config.loader import line_index, nearest_line, yaml_path
from alert_jobs.core.durations import parse_duration
from alert_jobs.core.model import Matcher, MatcherError

#: The simulated clock starts here unless the file says otherwise: a Monday at
#: midnight UTC, so ``at: 9h`` reads as Monday 09:00.
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
DEFAULT_INTERVAL = timedelta(minutes=1)
#: Evaluations one test may simulate (a week of minutes is 10,080).
MAX_STEPS = 50_000

STATES = ("pending", "firing", "recovering")
KINDS = ("firing", "resolved", "repeat", "escalation", "acknowledged")
VERBS = ("ack", "unack", "snooze", "silence", "expire")
KeyPath = tuple[str | int, ...]


class TestFileError(ValueError):
    """A test file that cannot be run; ``problems`` lists ``(path, reason, line)``."""

    __test__ = False

    def __init__(self, file: str, problems: Sequence[tuple[str, str, int | None]]):
        self.file = file
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        out = []
        for path, reason, line in self.problems:
            where = f"{self.file}:{line}: " if line else f"{self.file}: "
            out.append(f"{where}{path + ': ' if path else ''}{reason}")
        return "\n".join(out)


@dataclass(frozen=True)
class ExpectedAlert:
    state: str | None = None
    severity: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None

    def describe(self) -> str:
        parts = [self.state or "active"]
        if self.severity:
            parts.append(self.severity)
        if self.labels:
            parts.append("{" + ", ".join(f'{k}="{v}"' for k, v in self.labels.items()) + "}")
        if self.message:
            parts.append(f"message ~ {self.message!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class Checkpoint:
    """The complete list of active instances of each rule named, at ``at``."""

    at: timedelta
    alerts: Mapping[str, tuple[ExpectedAlert, ...]]
    line: int | None


@dataclass(frozen=True)
class ExpectedNotification:
    receiver: str
    kind: str
    at: timedelta | None = None
    rule: str | None = None
    message: str | None = None
    line: int | None = None

    def describe(self) -> str:
        parts = [f"{self.kind} to {self.receiver}"]
        if self.at is not None:
            parts.append(f"at {offset_text(self.at)}")
        if self.rule:
            parts.append(f"for {self.rule}")
        if self.message:
            parts.append(f"message ~ {self.message!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class Action:
    at: timedelta
    verb: str  # one of VERBS
    target: str  # the rule (ack, unack, snooze) or the silence's name (expire)
    by: str = "rule-test"
    labels: Mapping[str, str] = field(default_factory=dict)
    lasting: timedelta | None = None  # snooze and silence: for how long
    matchers: tuple[Matcher, ...] = ()
    comment: str = ""
    starts: timedelta | None = None  # a silence that starts later than it is created
    line: int | None = None


@dataclass(frozen=True)
class TestCase:
    __test__ = False

    name: str
    index: int
    line: int | None
    start: datetime
    interval: timedelta
    duration: timedelta
    inputs: Mapping[str, Mapping[str, Any]]
    input_lines: Mapping[KeyPath, int]  # (rule, *path inside its input) → line
    actions: tuple[Action, ...]
    expect: tuple[Checkpoint, ...]
    notifications: tuple[ExpectedNotification, ...] | None  # None: not checked

    def input_line(self, rule: str, path: KeyPath) -> int | None:
        return nearest_line((rule, *path), dict(self.input_lines))


@dataclass(frozen=True)
class TestFile:
    __test__ = False

    path: Path
    rules_path: Path
    cases: tuple[TestCase, ...]


def offset_text(delta: timedelta) -> str:
    """``delta`` the way the test file writes it: ``0m``, ``8m``, ``1h30m``, ``90s``."""
    seconds = round(delta.total_seconds())
    if seconds == 0:
        return "0m"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return sign + out


class _Reader:
    """Walks the parsed YAML, collecting problems with their paths and lines."""

    def __init__(self, file: str, lines: dict[tuple[Any, ...], int]):
        self.file = file
        self.lines = lines
        self.problems: list[tuple[str, str, int | None]] = []

    def fail(self, loc: KeyPath, reason: str) -> None:
        self.problems.append((yaml_path(loc), reason, nearest_line(loc, self.lines)))

    def line(self, loc: KeyPath) -> int | None:
        return nearest_line(loc, self.lines)

    def mapping(self, value: Any, loc: KeyPath, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(loc, f"expected a mapping with {', '.join(allowed)}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail((*loc, key), f"unknown key (allowed here: {', '.join(allowed)})")
        return dict(value)

    def duration(self, value: Any, loc: KeyPath, *, positive: bool = False
                 ) -> timedelta | None:
        try:
            delta = parse_duration(value)
        except (TypeError, ValueError):
            self.fail(loc, f"expected a duration like 90s, 5m, 2h or 1d, got {value!r}")
            return None
        if delta < timedelta(0) or (positive and delta == timedelta(0)):
            self.fail(loc, f"must be {'positive' if positive else 'zero or more'}")
            return None
        return delta

    def text(self, value: Any, loc: KeyPath) -> str | None:
        if not isinstance(value, str | int | float) or isinstance(value, bool) \
                or not str(value).strip():
            self.fail(loc, "expected a non-empty text")
            return None
        return str(value)

    def labels(self, value: Any, loc: KeyPath) -> dict[str, str]:
        if not isinstance(value, Mapping):
            self.fail(loc, 'expected a mapping of label names to values, e.g. {team: data}')
            return {}
        return {str(k): str(v) for k, v in value.items()}

    def time(self, value: Any, loc: KeyPath) -> datetime | None:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(loc, f"expected a time like 2026-01-05T09:00:00Z, got {value!r}")
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_test_file(path: str | Path) -> TestFile:
    """Parse ``path``; raises :class:`TestFileError` listing every problem found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TestFileError(str(file), [("", f"cannot read: {exc.strerror}", None)]) from None
    return parse_test_file(text, file)


def parse_test_file(text: str, file: Path) -> TestFile:
    name = str(file)
    try:
        data = yaml.safe_load(text)
        lines = line_index(yaml.compose(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TestFileError(name, [("", f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                                    mark.line + 1 if mark is not None else None)]) from None
    r = _Reader(name, lines)
    top = r.mapping(data if data is not None else {}, (),
                    ("rule_files", "evaluation_interval", "start", "tests"))
    rules_path = file.parent / "alerts.yaml"
    if "rule_files" in top:
        files = top["rule_files"]
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list) or len(files) != 1 or not isinstance(files[0], str):
            r.fail(("rule_files",), "expected one rules file, e.g. rule_files: [alerts.yaml] "
                   "(alert-jobs loads one rules file)")
        else:
            rules_path = file.parent / files[0]
    interval = DEFAULT_INTERVAL
    if "evaluation_interval" in top:
        interval = r.duration(top["evaluation_interval"], ("evaluation_interval",),
                              positive=True) or interval
    start = DEFAULT_START
    if "start" in top:
        start = r.time(top["start"], ("start",)) or start
    tests = top.get("tests")
    cases: list[TestCase] = []
    if not isinstance(tests, list) or not tests:
        r.fail(("tests",), "expected a list of tests (each with name, input and expect)")
    else:
        for i, raw in enumerate(tests):
            case = _case(r, raw, i, start, interval)
            if case is not None:
                cases.append(case)
    if r.problems:
        raise TestFileError(name, sorted(r.problems, key=lambda p: (p[2] or 0, p[0])))
    return TestFile(file, rules_path, tuple(cases))


_CASE_KEYS = ("name", "interval", "start", "duration", "input", "actions", "expect",
              "notifications")


def _case(r: _Reader, raw: Any, i: int, start: datetime, interval: timedelta
          ) -> TestCase | None:
    loc: KeyPath = ("tests", i)
    body = r.mapping(raw, loc, _CASE_KEYS)
    name = r.text(body.get("name", f"test {i + 1}"), (*loc, "name")) or f"test {i + 1}"
    if "interval" in body:
        interval = r.duration(body["interval"], (*loc, "interval"), positive=True) or interval
    if "start" in body:
        start = r.time(body["start"], (*loc, "start")) or start
    inputs = body.get("input", {})
    if not isinstance(inputs, Mapping) or not all(isinstance(v, Mapping)
                                                  for v in inputs.values()):
        r.fail((*loc, "input"), "expected a mapping of rule names to their inputs, e.g. "
               "dead_letters: {values: '0 0 5+1x10'}")
        inputs = {}
    input_lines = {k[3:]: v for k, v in r.lines.items()
                   if len(k) > 3 and k[:3] == (*loc, "input")}
    actions = tuple(a for j, raw_a in enumerate(_list(r, body.get("actions"), (*loc, "actions")))
                    if (a := _action(r, raw_a, (*loc, "actions", j))) is not None)
    expect = tuple(c for j, raw_c in enumerate(_list(r, body.get("expect"), (*loc, "expect")))
                   if (c := _checkpoint(r, raw_c, (*loc, "expect", j))) is not None)
    notes: tuple[ExpectedNotification, ...] | None = None
    if "notifications" in body:
        items = _list(r, body["notifications"], (*loc, "notifications"))
        notes = tuple(n for j, raw_n in enumerate(items)
                      if (n := _notification(r, raw_n, (*loc, "notifications", j))) is not None)
    ats = [a.at for a in actions] + [c.at for c in expect] + [
        n.at for n in notes or () if n.at is not None]
    duration = None
    if "duration" in body:
        duration = r.duration(body["duration"], (*loc, "duration"), positive=True)
    elif not ats:
        r.fail(loc, "nothing to check: give expect (alerts at times), notifications with "
               "at, or a duration")
    duration = duration or max(ats, default=timedelta(0))
    if duration / interval > MAX_STEPS:
        r.fail((*loc, "duration"), f"{offset_text(duration)} at {offset_text(interval)} is "
               f"more than {MAX_STEPS:,} evaluations; use a longer interval")
    if not inputs and not actions:
        r.fail((*loc, "input"), "a test needs input for at least one rule")
    return TestCase(name, i, r.line(loc), start, interval, duration,
                    {str(k): dict(v) for k, v in inputs.items()}, input_lines, actions, expect,
                    notes)


def _list(r: _Reader, value: Any, loc: KeyPath) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        r.fail(loc, "expected a list")
        return []
    return value


def _at(r: _Reader, body: Mapping[str, Any], loc: KeyPath, *, required: bool = True
        ) -> timedelta | None:
    if "at" not in body:
        if required:
            r.fail(loc, "needs at: when, as an offset from the test's start (e.g. at: 5m)")
        return None
    return r.duration(body["at"], (*loc, "at"))


def _checkpoint(r: _Reader, raw: Any, loc: KeyPath) -> Checkpoint | None:
    body = r.mapping(raw, loc, ("at", "alerts"))
    at = _at(r, body, loc)
    alerts = body.get("alerts")
    if not isinstance(alerts, Mapping) or not alerts:
        r.fail((*loc, "alerts"), "expected a mapping of rule names to the list of their "
               "active alerts ([] for none), e.g. dead_letters: [{state: firing}]")
        return None
    expected: dict[str, tuple[ExpectedAlert, ...]] = {}
    for rule, items in alerts.items():
        where = (*loc, "alerts", rule)
        if items is None:
            items = []
        if not isinstance(items, list):
            r.fail(where, "expected a list of alerts ([] for none)")
            continue
        got = []
        for k, item in enumerate(items):
            spec = r.mapping(item, (*where, k), ("state", "severity", "labels", "message"))
            state = spec.get("state")
            if state is not None and state not in STATES:
                r.fail((*where, k, "state"), f"expected one of {', '.join(STATES)} (an alert "
                       "that is not active is left out of the list)")
            got.append(ExpectedAlert(
                state, str(spec["severity"]) if "severity" in spec else None,
                r.labels(spec["labels"], (*where, k, "labels")) if "labels" in spec else {},
                r.text(spec["message"], (*where, k, "message")) if "message" in spec else None))
        expected[str(rule)] = tuple(got)
    return None if at is None else Checkpoint(at, expected, r.line(loc))


def _notification(r: _Reader, raw: Any, loc: KeyPath) -> ExpectedNotification | None:
    body = r.mapping(raw, loc, ("at", "receiver", "kind", "rule", "message"))
    receiver = r.text(body.get("receiver"), (*loc, "receiver")) if "receiver" in body else None
    if "receiver" not in body:
        r.fail(loc, "needs receiver: the receiver's name")
    kind = body.get("kind")
    if kind not in KINDS:
        r.fail((*loc, "kind"), f"expected one of {', '.join(KINDS)}")
    at = _at(r, body, loc, required=False)
    if receiver is None or kind not in KINDS:
        return None
    return ExpectedNotification(
        receiver, str(kind), at,
        r.text(body["rule"], (*loc, "rule")) if "rule" in body else None,
        r.text(body["message"], (*loc, "message")) if "message" in body else None,
        r.line(loc))


_ACTION_KEYS = ("at", *VERBS, "by", "labels", "for", "comment", "name", "starts")


def _action(r: _Reader, raw: Any, loc: KeyPath) -> Action | None:
    body = r.mapping(raw, loc, _ACTION_KEYS)
    verbs = [v for v in VERBS if v in body]
    if len(verbs) != 1:
        r.fail(loc, f"an action has exactly one of {', '.join(VERBS)}")
        return None
    verb = verbs[0]
    at = _at(r, body, loc)
    by = r.text(body.get("by", "rule-test"), (*loc, "by")) or "rule-test"
    labels = r.labels(body["labels"], (*loc, "labels")) if "labels" in body else {}
    lasting = None
    if verb in ("snooze", "silence"):
        if "for" not in body:
            r.fail(loc, f"{verb} needs for: how long, e.g. for: 1h")
        else:
            lasting = r.duration(body["for"], (*loc, "for"), positive=True)
    matchers: tuple[Matcher, ...] = ()
    target = ""
    if verb == "silence":
        raw_matchers = body["silence"]
        raw_matchers = [raw_matchers] if isinstance(raw_matchers, str) else raw_matchers
        if not isinstance(raw_matchers, list) or not raw_matchers:
            r.fail((*loc, "silence"), "expected a list of matchers, e.g. "
                   "['alertname=\"dead_letters\"', 'team=~\"data.*\"']")
        else:
            parsed = []
            for m in raw_matchers:
                try:
                    parsed.append(Matcher.parse(str(m)))
                except MatcherError as exc:
                    r.fail((*loc, "silence"), str(exc))
            matchers = tuple(parsed)
        if not str(body.get("comment", "")).strip():
            r.fail(loc, "a silence needs comment: why (as a real one does)")
        target = str(body.get("name", ""))
    else:
        target = r.text(body[verb], (*loc, verb)) or ""
    starts = r.duration(body["starts"], (*loc, "starts")) if "starts" in body else None
    if at is None:
        return None
    return Action(at, verb, target, by, labels, lasting, matchers,
                  str(body.get("comment", "")), starts, r.line(loc))
