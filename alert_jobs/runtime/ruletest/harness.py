"""Run rule tests: the real path on a simulated clock and a private timeline.

For each test: a fresh SQLite timeline (a copy of one migrated template, so a file of
fifty tests migrates once), each input rule's simulator from its family
(``Family.simulate``), and then, at every evaluation time ``start + k × interval``:

1. the people's actions due by then (ack, unack, snooze, silence, expire), through the
   timeline's own action and silence stores;
2. every input rule evaluated by its family at ``now`` (its real judging and state);
3. escalation steps due (:func:`~alert_jobs.runtime.actions.escalate_due`);
4. notification groups due flushed into the outbox, and the outbox delivered to
   recording receivers — each the rules file's real receiver (its ``send_resolved``,
   its rendering) with the network call replaced by "write it down";
5. the alerts active now, kept for the expectations at this time.

Nothing of the user's is read or written: the sources are the test's inputs, the
timeline lives in a temporary directory, and no receiver sends.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from alert_jobs.config import RulesError, RulesFile, load_rules, unknown_name
from alert_jobs.core.model import AlertRecord, AlertState
from alert_jobs.notify.base import Receiver
from alert_jobs.notify.contract import GroupMessage
from alert_jobs.notify.registry import build_receivers
from alert_jobs.runtime.actions import escalate_due
from alert_jobs.runtime.deliver import deliver_due
from alert_jobs.runtime.family import family_of
from alert_jobs.runtime.ruletest.spec import (
    Action,
    Checkpoint,
    ExpectedAlert,
    ExpectedNotification,
    TestCase,
    TestFile,
    TestFileError,
    offset_text,
    read_test_file,
)
from alert_jobs.runtime.simulation import InputError, RuleSimulator, TestClock
from alert_jobs.store import Timeline
from alert_jobs.store.db import TimelineError

ACTIVE = (AlertState.PENDING, AlertState.FIRING, AlertState.RECOVERING)


@dataclass(frozen=True)
class Sent:
    """One notification a recording receiver got."""

    at: timedelta  # offset from the test's start
    receiver: str
    kind: str
    rules: tuple[str, ...]
    text: str  # the alerts' texts and the receiver's rendered message
    summary: str = ""  # the first alert's summary, for the report

    def describe(self, *, summary: bool = False) -> str:
        head = f"{self.kind} to {self.receiver} at {offset_text(self.at)} for " \
               f"{', '.join(self.rules) or '?'}"
        if not summary or not self.summary:
            return head
        text = " ".join(self.summary.split())
        return f"{head}: {text if len(text) <= 110 else text[:109] + '…'}"


@dataclass(frozen=True)
class Mismatch:
    """One expectation that did not hold: what was expected and what happened."""

    what: str
    line: int | None
    expected: Sequence[str]
    got: Sequence[str]


@dataclass
class CaseResult:
    case: TestCase
    mismatches: list[Mismatch] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass
class FileResult:
    test_file: TestFile
    cases: list[CaseResult]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


def kind_of(group: Mapping[str, Any]) -> str:
    """What a test calls a message: ``firing`` (first or new alerts), ``repeat``,
    ``escalation``, ``acknowledged`` or ``resolved``."""
    if group.get("status") == "resolved":
        return "resolved"
    reason = str(group.get("notification_reason", ""))
    return reason if reason in ("repeat", "escalation", "acknowledged") else "firing"


class Recording(Receiver[Any]):
    """A rules-file receiver that writes down what it would send instead of sending it.

    It keeps the real receiver's decisions (``wants``, ``prepare``: ``send_resolved``,
    acknowledgements) and renders the message with it, so the test sees what that
    receiver's people would have read.
    """

    def __init__(self, real: Receiver[Any]):
        super().__init__(real.config)
        self.real = real
        self.got: list[GroupMessage] = []

    def wants(self, group: GroupMessage) -> bool:
        return self.real.wants(group)

    def prepare(self, group: GroupMessage) -> GroupMessage:
        return self.real.prepare(group)

    def render(self, group: GroupMessage) -> Any:
        return self.real.render(group)

    async def deliver(self, group: GroupMessage, http: httpx.AsyncClient) -> None:
        self.got.append(group)

    def text_of(self, group: GroupMessage) -> str:
        parts = [str(a.get(k, "")) for a in group.get("alerts", [])
                 for k in ("summary", "why", "description")]
        try:
            rendered = self.real.render(group)
        except Exception as exc:  # a message the receiver cannot render is a finding too
            rendered = f"(the receiver could not render this message: {exc})"
        parts.append(rendered if isinstance(rendered, str)
                     else json.dumps(rendered, ensure_ascii=False, default=str))
        return "\n".join(parts)


@dataclass
class Prepared:
    case: TestCase
    simulators: dict[str, RuleSimulator]


def prepare(test_file: TestFile) -> tuple[RulesFile, list[Prepared]]:
    """The rules file and each test's simulators; a :class:`TestFileError` for anything
    that cannot run (unknown rules or receivers, inputs a family refuses)."""
    try:
        rules = load_rules(test_file.rules_path)
    except RulesError as exc:
        raise TestFileError(exc.file, [(p.path, p.reason, p.line) for p in exc.problems]) \
            from None
    name = str(test_file.path)
    problems: list[tuple[str, str, int | None]] = []
    known = {r.name for r in rules.rules()}
    receivers = {r.name for r in rules.receivers}
    prepared = []
    for case in test_file.cases:
        where = f"tests[{case.index}]"
        simulators: dict[str, RuleSimulator] = {}
        clock = TestClock(case.start, case.interval)
        for rule_name, inputs in case.inputs.items():
            loc = f"{where}.input.{rule_name}"
            line = case.input_line(rule_name, ())
            if rule_name not in known:
                problems.append((loc, unknown_name("rule", rule_name, known), line))
                continue
            rule = rules.rule(rule_name)
            family = family_of(rule)
            if family.simulate is None:
                problems.append((loc, f"the {family.name} family's rules cannot be run in "
                                 "rule tests (it has no simulate hook)", line))
                continue
            try:
                simulators[rule_name] = family.simulate(rule, inputs, clock)
            except InputError as exc:
                sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
                problems.append((loc + sub, exc.reason, case.input_line(rule_name, exc.path)))
        for action in case.actions:
            if action.verb in ("ack", "unack", "snooze") and action.target not in known:
                problems.append((f"{where}.actions", unknown_name("rule", action.target, known),
                                 action.line))
        names = {a.target for a in case.actions if a.verb == "silence" and a.target}
        for action in case.actions:
            if action.verb == "expire" and action.target not in names:
                problems.append((f"{where}.actions", f"no silence named {action.target!r} in "
                                 "this test (give the silence name: …)", action.line))
        for point in case.expect:
            for rule_name in point.alerts:
                if rule_name not in known:
                    problems.append((f"{where}.expect", unknown_name("rule", rule_name, known),
                                     point.line))
        for note in case.notifications or ():
            if note.receiver not in receivers:
                problems.append((f"{where}.notifications",
                                 unknown_name("receiver", note.receiver, receivers), note.line))
        prepared.append(Prepared(case, simulators))
    if problems:
        raise TestFileError(name, sorted(problems, key=lambda p: (p[2] or 0, p[0])))
    return rules, prepared


def run_file(path: str | Path) -> FileResult:
    """Read, prepare and run every test of one file (``TestFileError`` if broken)."""
    started = time.perf_counter()
    test_file = read_test_file(path)
    rules, prepared = prepare(test_file)
    with private_timelines() as fresh:
        results = [run_case(rules, p, fresh()) for p in prepared]
    return FileResult(test_file, results, time.perf_counter() - started)


@contextmanager
def private_timelines() -> Iterator[Any]:
    """``fresh()`` gives a new migrated SQLite timeline in a temporary directory; all
    of them are removed at the end."""
    with tempfile.TemporaryDirectory(prefix="alert-jobs-rule-test-") as tmp:
        template = Path(tmp) / "template.db"
        Timeline(f"sqlite:///{template}").upgrade()
        made: list[Timeline] = []

        def fresh() -> Timeline:
            path = Path(tmp) / f"test-{len(made)}.db"
            shutil.copyfile(template, path)
            timeline = Timeline(f"sqlite:///{path}")
            made.append(timeline)
            return timeline

        try:
            yield fresh
        finally:
            for timeline in made:
                timeline.engine.dispose()


def run_case(rules: RulesFile, prepared: Prepared, timeline: Timeline) -> CaseResult:
    """Run one test on ``timeline`` (fresh and private) and compare with its expectations."""
    case = prepared.case
    started = time.perf_counter()
    result = CaseResult(case)
    receivers = {name: Recording(r) for name, r in build_receivers(rules.receivers).items()}
    router = rules.router()
    silences: dict[str, str] = {}
    seen: dict[timedelta, list[AlertRecord]] = {}
    checkpoints = sorted({c.at for c in case.expect})
    steps = int(case.duration / case.interval)
    actions = sorted(case.actions, key=lambda a: a.at)
    since: datetime | None = None
    for k in range(steps + 1):
        offset = k * case.interval
        now = case.start + offset
        while actions and actions[0].at <= offset:
            _act(timeline, actions.pop(0), now, silences, result)
        for simulator in prepared.simulators.values():
            simulator.step(rules, timeline, now=now, since=since)
            result.evaluations += 1
        escalate_due(rules, timeline, now=now)
        timeline.outbox.flush_due(router=router, now=now)
        deliver_due(timeline, receivers, now=lambda now=now: now)  # type: ignore[misc]
        for name, receiver in receivers.items():
            result.sent += [Sent(offset, name, kind_of(g), _rules_of(g), receiver.text_of(g),
                                 _first_summary(g)) for g in receiver.got]
            receiver.got.clear()
        while checkpoints and checkpoints[0] < offset + case.interval:
            seen[checkpoints.pop(0)] = [a for a in timeline.alerts.list()
                                        if a.state in ACTIVE]
        since = now
    for point in case.expect:
        result.mismatches += compare_alerts(point, seen.get(point.at, []))
    if case.notifications is not None:
        result.mismatches += compare_notifications(case.notifications, result.sent)
    result.seconds = time.perf_counter() - started
    return result


def _first_summary(group: Mapping[str, Any]) -> str:
    alerts = group.get("alerts") or [{}]
    return str(alerts[0].get("summary", ""))


def _rules_of(group: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(a.get("rule", "")) for a in group.get("alerts", [])))


def _act(timeline: Timeline, action: Action, now: datetime, silences: dict[str, str],
         result: CaseResult) -> None:
    """Apply one action; one that cannot be done (no such alert to ack) is a mismatch."""
    where = f"action {action.verb} at {offset_text(action.at)}"
    try:
        if action.verb == "silence":
            assert action.lasting is not None
            starts = now + (action.starts or timedelta(0))
            made = timeline.silences.add(action.matchers, starts_at=starts,
                                         ends_at=starts + action.lasting,
                                         created_by=action.by, comment=action.comment,
                                         source="rule-test", now=now)
            if action.target:
                silences[action.target] = made.id
            return
        if action.verb == "expire":
            timeline.silences.expire(silences[action.target], by=action.by, source="rule-test",
                                     now=now)
            return
        record = _instance(timeline, action)
        if action.verb == "ack":
            timeline.actions.ack(record.fingerprint, by=action.by, source="rule-test", now=now)
        elif action.verb == "unack":
            timeline.actions.unack(record.fingerprint, by=action.by, source="rule-test",
                                   now=now)
        elif action.verb == "snooze":
            assert action.lasting is not None
            timeline.actions.snooze(record.fingerprint, until=now + action.lasting,
                                    by=action.by, source="rule-test", now=now)
    except LookupError as exc:
        result.mismatches.append(Mismatch(where, action.line, ["an alert to act on"],
                                          [str(exc).strip("'\"")]))
    except (TimelineError, ValueError) as exc:  # refused (e.g. acking a pending alert)
        result.mismatches.append(Mismatch(where, action.line, ["the action is accepted"],
                                          [f"refused: {exc}"]))


def _instance(timeline: Timeline, action: Action) -> AlertRecord:
    matching = [a for a in timeline.alerts.list() if a.rule == action.target
                and a.state in ACTIVE and all(a.labels.get(k) == v
                                               for k, v in action.labels.items())]
    if len(matching) != 1:
        what = "no active alert" if not matching else f"{len(matching)} active alerts"
        hint = "" if not matching else " (pick one with labels: {…})"
        raise LookupError(f"{what} of {action.target}{hint}")
    return matching[0]


def describe_alert(record: AlertRecord) -> str:
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(record.labels.items()))
    text = f"{record.state} {record.severity}" + (f" {{{labels}}}" if labels else "")
    summary = record.last_summary if len(record.last_summary) <= 120 else \
        record.last_summary[:119] + "…"
    return text + (f" {summary!r}" if summary else "")


def alert_matches(expected: ExpectedAlert, record: AlertRecord) -> bool:
    return ((expected.state is None or expected.state == record.state)
            and (expected.severity is None or expected.severity == record.severity)
            and all(record.labels.get(k) == v for k, v in expected.labels.items())
            and (expected.message is None
                 or expected.message.lower() in record.last_summary.lower()))


def compare_alerts(point: Checkpoint, active: list[AlertRecord]) -> list[Mismatch]:
    """Each rule named must have exactly the alerts listed (matched one to one)."""
    out = []
    for rule, wanted in point.alerts.items():
        got = [a for a in active if a.rule == rule]
        if not _one_to_one(wanted, got):
            out.append(Mismatch(f"alerts of {rule} at {offset_text(point.at)}", point.line,
                                [w.describe() for w in wanted] or ["none active"],
                                [describe_alert(a) for a in got] or ["none active"]))
    return out


def _one_to_one(wanted: Sequence[ExpectedAlert], got: Sequence[AlertRecord]) -> bool:
    """Whether each expected alert matches a different actual one and none is left over
    (a small bipartite matching: alert lists in tests are short)."""
    if len(wanted) != len(got):
        return False
    taken: dict[int, int] = {}

    def place(i: int, seen: set[int]) -> bool:
        for j, record in enumerate(got):
            if j in seen or not alert_matches(wanted[i], record):
                continue
            seen.add(j)
            if j not in taken or place(taken[j], seen):
                taken[j] = i
                return True
        return False

    return all(place(i, set()) for i in range(len(wanted)))


def notification_matches(expected: ExpectedNotification, sent: Sent) -> bool:
    return (expected.receiver == sent.receiver and expected.kind == sent.kind
            and (expected.at is None or expected.at == sent.at)
            and (expected.rule is None or expected.rule in sent.rules)
            and (expected.message is None or expected.message.lower() in sent.text.lower()))


def compare_notifications(wanted: Sequence[ExpectedNotification], sent: Sequence[Sent]
                          ) -> list[Mismatch]:
    """The notifications sent, in order, must be exactly those listed."""
    out = []
    for i in range(max(len(wanted), len(sent))):
        w = wanted[i] if i < len(wanted) else None
        s = sent[i] if i < len(sent) else None
        if w is not None and s is not None and notification_matches(w, s):
            continue
        out.append(Mismatch(f"notification #{i + 1}", w.line if w else None,
                            [w.describe()] if w else ["no more notifications"],
                            [s.describe()] if s else ["no more notifications"]))
        break  # after the first difference the rest would only repeat it, shifted
    return out
