"""Table-driven tests of the pure engine (``alert_jobs.core.engine.evaluate``), DESIGN.md §3.

Every test drives ``evaluate`` with an injected clock (``T0`` plus minute offsets),
threading ``decision.record`` into the next call as ``prior``, exactly as the
timeline does, and asserts exact states, event kinds and notification kinds/reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alert_jobs.core.durations import DurationError, parse_duration
from alert_jobs.core.engine import Decision, RulePolicy, evaluate
from alert_jobs.core.model import (
    AlertRecord,
    Matcher,
    MatcherError,
    NoDataPolicy,
    Observation,
    Severity,
    Silence,
    Status,
    fingerprint,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULE = "orders_stale"
LABELS = {"team": "payments", "env": "prod"}

A = Status.ALERT
OK = Status.OK
ND = Status.NODATA
ER = Status.ERROR
X = "X"  # placeholder for the nodata/error status under test

NONE: tuple[tuple[str, str], ...] = ()
FIRST = (("firing", "first"),)
REPEAT = (("firing", "repeat"),)
UNMUTED = (("firing", "unmuted"),)
RESOLVED = (("resolved", "resolved"),)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def mins(n: float) -> timedelta:
    return timedelta(minutes=n)


def policy(**kw: Any) -> RulePolicy:
    return RulePolicy(rule=RULE, **kw)


def silence(*matchers: str, start: float = -60, end: float = 10_000, sid: str = "s1") -> Silence:
    return Silence(
        id=sid,
        matchers=tuple(Matcher.parse(m) for m in matchers),
        starts_at=at(start),
        ends_at=at(end),
        created_by="alice",
        comment="planned maintenance",
    )


def ack(who: str = "alice", minute: float = 1) -> Callable[[AlertRecord | None], AlertRecord]:
    def edit(record: AlertRecord | None) -> AlertRecord:
        assert record is not None
        return record.evolve(acked_at=at(minute), acked_by=who)

    return edit


def snooze(until: float) -> Callable[[AlertRecord | None], AlertRecord]:
    def edit(record: AlertRecord | None) -> AlertRecord:
        assert record is not None
        return record.evolve(snoozed_until=at(until))

    return edit


@dataclass
class Trace:
    """What a sequence of evaluations decided, step by step."""

    minutes: list[float]
    decisions: list[Decision]

    @property
    def states(self) -> list[str]:
        return [str(d.record.state) for d in self.decisions]

    @property
    def kinds(self) -> list[tuple[str, ...]]:
        return [tuple(e.kind for e in d.events) for d in self.decisions]

    @property
    def notes(self) -> list[tuple[tuple[str, str], ...]]:
        return [tuple((n.kind, n.reason) for n in d.notifications) for d in self.decisions]

    @property
    def record(self) -> AlertRecord:
        return self.decisions[-1].record

    def minutes_with(self, kind: str) -> list[float]:
        return [m for m, d in zip(self.minutes, self.decisions, strict=True)
                for e in d.events if e.kind == kind]

    def events_of(self, kind: str) -> list[Any]:
        return [e for d in self.decisions for e in d.events if e.kind == kind]


def run(
    steps: Sequence[tuple[Any, ...]],
    pol: RulePolicy | None = None,
    *,
    prior: AlertRecord | None = None,
    silences: Sequence[Silence] = (),
    rule_disabled: bool = False,
    labels: dict[str, str] | None = None,
) -> Trace:
    """Feed ``(minute, status[, opts])`` steps through ``evaluate``, threading the record.

    ``opts`` may override ``silences`` / ``rule_disabled`` for that step, or ``edit``
    the prior record first (an ack or snooze made by a person between evaluations).
    """
    pol = pol or policy()
    decisions = []
    for minute, status, *rest in steps:
        opts = rest[0] if rest else {}
        if "edit" in opts:
            prior = opts["edit"](prior)
        obs = Observation(RULE, status, labels=dict(labels if labels is not None else LABELS))
        decision = evaluate(
            obs,
            prior,
            pol,
            at(minute),
            silences=opts.get("silences", silences),
            rule_disabled=opts.get("rule_disabled", rule_disabled),
        )
        decisions.append(decision)
        prior = decision.record
    return Trace([s[0] for s in steps], decisions)


# ----- 1-3, 5: for, keep_firing_for, repeat_interval ------------------------------------

STATE_MACHINE = [
    pytest.param(
        dict(for_=mins(5)),
        [(0, A), (1, A), (4, A), (5, A), (6, A)],
        ["pending", "pending", "pending", "firing", "firing"],
        [NONE, NONE, NONE, FIRST, NONE],
        [("pending",), (), (), ("firing", "notify"), ()],
        id="for-fires-only-once-bad-for-5m",
    ),
    pytest.param(
        dict(for_=mins(5)),
        [(0, A), (2, OK), (3, OK), (10, OK)],
        ["pending", "inactive", "inactive", "inactive"],
        [NONE, NONE, NONE, NONE],
        [("pending",), ("cleared",), (), ()],
        id="for-pending-that-clears-goes-inactive-without-resolve",
    ),
    pytest.param(
        dict(for_=mins(5)),
        [(0, A), (3, OK), (4, A), (8, A), (9, A)],
        ["pending", "inactive", "pending", "pending", "firing"],
        [NONE, NONE, NONE, NONE, FIRST],
        [("pending",), ("cleared",), ("pending",), (), ("firing", "notify")],
        id="for-clock-restarts-after-clear",
    ),
    pytest.param(
        dict(for_=mins(0)),
        [(0, A)],
        ["firing"],
        [FIRST],
        [("firing", "notify")],
        id="for-zero-fires-immediately",
    ),
    pytest.param(
        dict(),
        [(0, A), (1, A), (2, OK), (3, OK)],
        ["firing", "firing", "resolved", "resolved"],
        [FIRST, NONE, RESOLVED, NONE],
        [("firing", "notify"), (), ("resolved", "notify"), ()],
        id="no-keep-firing-for-resolves-on-first-good",
    ),
    pytest.param(
        dict(keep_firing_for=mins(10)),
        [(0, A), (1, OK), (3, A), (4, OK), (10, OK), (14, OK), (15, OK)],
        ["firing", "recovering", "firing", "recovering", "recovering", "resolved", "resolved"],
        [FIRST, NONE, NONE, NONE, NONE, RESOLVED, NONE],
        [("firing", "notify"), ("recovering",), ("firing",), ("recovering",), (),
         ("resolved", "notify"), ()],
        id="keep-firing-for-relapse-is-silent-then-resolves-after-10m-good",
    ),
    pytest.param(
        dict(for_=mins(5), keep_firing_for=mins(10)),
        [(0, A), (5, A), (6, OK), (15, OK), (16, OK)],
        ["pending", "firing", "recovering", "recovering", "resolved"],
        [NONE, FIRST, NONE, NONE, RESOLVED],
        [("pending",), ("firing", "notify"), ("recovering",), (), ("resolved", "notify")],
        id="for-and-keep-firing-for-together",
    ),
    pytest.param(
        dict(),
        [(0, A), (1, OK), (2, A), (3, OK)],
        ["firing", "resolved", "firing", "resolved"],
        [FIRST, RESOLVED, FIRST, RESOLVED],
        [("firing", "notify"), ("resolved", "notify"), ("firing", "notify"),
         ("resolved", "notify")],
        id="fires-again-after-resolve-as-new-episode",
    ),
    pytest.param(
        dict(for_=mins(5)),
        [(0, A), (5, A), (6, OK), (7, A), (11, A), (12, A)],
        ["pending", "firing", "resolved", "pending", "pending", "firing"],
        [NONE, FIRST, RESOLVED, NONE, NONE, FIRST],
        [("pending",), ("firing", "notify"), ("resolved", "notify"), ("pending",), (),
         ("firing", "notify")],
        id="for-applies-again-after-resolve",
    ),
    pytest.param(
        dict(repeat_interval=mins(60)),
        [(0, A), (30, A), (59, A), (60, A), (90, A), (119, A), (120, A)],
        ["firing"] * 7,
        [FIRST, NONE, NONE, REPEAT, NONE, NONE, REPEAT],
        [("firing", "notify"), (), (), ("notify",), (), (), ("notify",)],
        id="repeat-only-after-repeat-interval",
    ),
    pytest.param(
        dict(repeat_interval=mins(60), keep_firing_for=mins(10)),
        [(0, A), (50, OK), (55, A), (59, A), (60, A)],
        ["firing", "recovering", "firing", "firing", "firing"],
        [FIRST, NONE, NONE, NONE, REPEAT],
        [("firing", "notify"), ("recovering",), ("firing",), (), ("notify",)],
        id="relapse-does-not-reset-repeat-clock",
    ),
]


@pytest.mark.parametrize("pol_kw, steps, states, notes, kinds", STATE_MACHINE)
def test_state_machine(pol_kw, steps, states, notes, kinds):
    trace = run(steps, policy(**pol_kw))
    assert trace.states == states
    assert trace.notes == notes
    assert trace.kinds == kinds


def test_for_transition_reasons_explain_themselves():
    trace = run([(0, A), (2, OK), (5, A), (10, A)], policy(for_=mins(5)))
    pending, cleared, _, fired = (d.events for d in trace.decisions)
    assert "pending until bad for 5 minutes" in pending[0].reason
    assert "cleared before 'for' elapsed, nothing sent" in cleared[0].reason
    assert "bad for 5 minutes" in fired[0].reason
    assert fired[1].reason == "firing queued: first notification"


def test_relapse_event_is_marked_and_explained():
    trace = run([(0, A), (1, OK), (2, A)], policy(keep_firing_for=mins(10)))
    (relapse,) = trace.decisions[2].events
    assert relapse.kind == "firing"
    assert relapse.payload == {"relapse": True}
    assert "bad again while recovering" in relapse.reason
    assert "resolves if good for 10 minutes" in trace.decisions[1].events[0].reason


def test_repeat_reason_names_the_interval():
    trace = run([(0, A), (60, A)], policy(repeat_interval=mins(60)))
    (event,) = trace.decisions[1].events
    assert event.reason == "firing queued: repeat_interval 1 hour elapsed"
    assert event.payload["reason"] == "repeat"


# ----- 4: nodata / error -------------------------------------------------------------

NODATA_CASES = [
    pytest.param(
        NoDataPolicy.ALERT, {}, [(0, X)],
        ["firing"], [FIRST], [(X, "firing", "notify")],
        id="alert-fires",
    ),
    pytest.param(
        NoDataPolicy.ALERT, dict(for_=mins(5)), [(0, X), (4, X), (5, X)],
        ["pending", "pending", "firing"], [NONE, NONE, FIRST],
        [(X, "pending"), (), ("firing", "notify")],
        id="alert-respects-for",
    ),
    pytest.param(
        NoDataPolicy.OK, {}, [(0, X), (10, X)],
        ["inactive", "inactive"], [NONE, NONE], [(X,), ()],
        id="ok-no-alert",
    ),
    pytest.param(
        NoDataPolicy.OK, {}, [(0, A), (1, X)],
        ["firing", "resolved"], [FIRST, RESOLVED],
        [("firing", "notify"), (X, "resolved", "notify")],
        id="ok-resolves-firing",
    ),
    pytest.param(
        NoDataPolicy.OK, dict(for_=mins(5)), [(0, A), (1, X)],
        ["pending", "inactive"], [NONE, NONE], [("pending",), (X, "cleared")],
        id="ok-clears-pending",
    ),
    pytest.param(
        NoDataPolicy.KEEP_LAST, {}, [(0, A), (1, X), (2, X)],
        ["firing", "firing", "firing"], [FIRST, NONE, NONE],
        [("firing", "notify"), (X,), ()],
        id="keep_last-keeps-firing",
    ),
    pytest.param(
        NoDataPolicy.KEEP_LAST, dict(for_=mins(5)), [(0, A), (1, X), (2, X)],
        ["pending", "pending", "pending"], [NONE, NONE, NONE],
        [("pending",), (X,), ()],
        id="keep_last-keeps-pending",
    ),
    pytest.param(
        NoDataPolicy.KEEP_LAST, {}, [(0, OK), (1, X), (2, X)],
        ["inactive", "inactive", "inactive"], [NONE, NONE, NONE],
        [(), (X,), ()],
        id="keep_last-stays-inactive-when-good",
    ),
    pytest.param(
        NoDataPolicy.KEEP_LAST, {}, [(0, X)],
        ["inactive"], [NONE], [(X,)],
        id="keep_last-new-alert-is-good",
    ),
    pytest.param(
        NoDataPolicy.KEEP_LAST, {}, [(0, A), (1, OK), (2, X)],
        ["firing", "resolved", "resolved"], [FIRST, RESOLVED, NONE],
        [("firing", "notify"), ("resolved", "notify"), (X,)],
        id="keep_last-stays-resolved-when-good",
    ),
]


@pytest.mark.parametrize("status", [ND, ER], ids=["nodata", "error"])
@pytest.mark.parametrize("mapping, pol_kw, steps, states, notes, kinds", NODATA_CASES)
def test_nodata_and_error_mapping(status, mapping, pol_kw, steps, states, notes, kinds):
    field = "nodata" if status == ND else "error"
    other = NoDataPolicy.OK if mapping == NoDataPolicy.ALERT else NoDataPolicy.ALERT
    other_field = "error" if status == ND else "nodata"
    pol = policy(**pol_kw, **{field: mapping, other_field: other})
    real_steps = [(m, status if s == X else s) for m, s in steps]
    trace = run(real_steps, pol)
    assert trace.states == states
    assert trace.notes == notes
    assert trace.kinds == [tuple(str(status) if k == X else k for k in ks) for ks in kinds]


@pytest.mark.parametrize(
    "status, other", [(ND, ER), (ER, ND)], ids=["nodata", "error"]
)
def test_nodata_error_event_only_when_status_changes_into_it(status, other):
    pol = policy(nodata=NoDataPolicy.OK, error=NoDataPolicy.OK)
    steps = [(0, status), (1, status), (2, status), (3, OK), (4, status), (5, other), (6, status)]
    trace = run(steps, pol)
    assert trace.minutes_with(str(status)) == [0, 4, 6]
    assert trace.minutes_with(str(other)) == [5]
    assert trace.states == ["inactive"] * 7


def test_nodata_event_carries_summary_as_reason():
    obs = Observation(RULE, ND, labels=LABELS, summary="query returned no rows")
    decision = evaluate(obs, None, policy(nodata=NoDataPolicy.ALERT), T0)
    assert decision.events[0].kind == "nodata"
    assert decision.events[0].reason == "query returned no rows"
    assert decision.events[1].reason == "no data: query returned no rows"


# ----- 6: disabled rule ---------------------------------------------------------------

DISABLED = [
    pytest.param(dict(rule_disabled=True), {}, id="rule_disabled-arg"),
    pytest.param({}, dict(enabled=False), id="policy-enabled-false"),
]


@pytest.mark.parametrize("run_kw, pol_kw", DISABLED)
def test_disabled_rule_moves_state_but_never_notifies_firing(run_kw, pol_kw):
    trace = run([(0, A), (5, A), (6, A), (10, OK)], policy(for_=mins(5), **pol_kw), **run_kw)
    assert trace.states == ["pending", "firing", "firing", "resolved"]
    assert trace.notes == [NONE, NONE, NONE, NONE]
    assert trace.kinds == [("pending",), ("firing", "suppressed"), (), ("resolved",)]
    (suppressed,) = trace.events_of("suppressed")
    assert "disabled" in suppressed.reason
    assert suppressed.payload == {"would_send": "first"}
    assert trace.decisions[1].muted_by == "rule disabled"


def test_reenabled_rule_sends_unmuted():
    off = {"rule_disabled": True}
    trace = run([(0, A, off), (1, A, off), (2, A)])
    assert trace.notes == [NONE, NONE, UNMUTED]
    assert trace.decisions[2].events[0].reason == "firing queued: no longer muted"


# ----- 7: silences and matchers -------------------------------------------------------

SILENCE_MATCH = [
    pytest.param(["team=payments"], True, id="eq-match"),
    pytest.param(["team=pay"], False, id="eq-no-prefix"),
    pytest.param(["team!=payments"], False, id="neq-same"),
    pytest.param(["team!=search"], True, id="neq-other"),
    pytest.param(["team=~pay"], False, id="regex-is-anchored"),
    pytest.param(["team=~pay.*"], True, id="regex-prefix"),
    pytest.param(["team=~.*ments"], True, id="regex-suffix"),
    pytest.param(["team=~ments"], False, id="regex-anchored-start"),
    pytest.param(["team=~payments|search"], True, id="regex-alternation-anchored"),
    pytest.param(["team!~pay.*"], False, id="nregex-match"),
    pytest.param(["team!~pay"], True, id="nregex-anchored"),
    pytest.param(["alertname=orders_stale"], True, id="alertname-match"),
    pytest.param(["alertname=other_rule"], False, id="alertname-other"),
    pytest.param(["severity=critical"], True, id="severity-match"),
    pytest.param(["severity=warning"], False, id="severity-other"),
    pytest.param(["severity=~crit.*", "alertname=~orders_.*"], True, id="severity-and-alertname"),
    pytest.param(["region!=eu"], True, id="missing-label-is-empty-neq"),
    pytest.param(["region=~.+"], False, id="missing-label-is-empty-regex"),
    pytest.param(['team="payments"'], True, id="quoted-value"),
    pytest.param(["team=payments", "env=staging"], False, id="all-matchers-must-match"),
    pytest.param(["team=payments", "env=prod"], True, id="all-matchers-match"),
]


@pytest.mark.parametrize("matchers, muted", SILENCE_MATCH)
def test_silence_matchers(matchers, muted):
    sil = silence(*matchers)
    trace = run([(0, A)], policy(severity=Severity.CRITICAL), silences=[sil])
    assert trace.states == ["firing"]
    if muted:
        assert trace.notes == [NONE]
        assert trace.kinds == [("firing", "suppressed")]
        assert trace.decisions[0].muted_by == sil.describe()
    else:
        assert trace.notes == [FIRST]
        assert trace.decisions[0].muted_by is None


@pytest.mark.parametrize(
    "minute, muted",
    [
        pytest.param(5, False, id="before-starts_at"),
        pytest.param(10, True, id="at-starts_at"),
        pytest.param(19, True, id="inside"),
        pytest.param(20, False, id="at-ends_at"),
        pytest.param(25, False, id="after-ends_at"),
    ],
)
def test_silence_window(minute, muted):
    sil = silence("team=payments", start=10, end=20)
    trace = run([(minute, A)], silences=[sil])
    assert trace.notes == [NONE if muted else FIRST]
    assert ("suppressed" in trace.kinds[0]) is muted


def test_silence_ending_sends_unmuted():
    sil = silence("team=payments", start=0, end=30)
    trace = run([(0, A), (10, A), (29, A), (30, A), (31, A)], silences=[sil])
    assert trace.notes == [NONE, NONE, NONE, UNMUTED, NONE]
    assert trace.kinds == [("firing", "suppressed"), (), (), ("notify",), ()]
    (suppressed,) = trace.events_of("suppressed")
    assert "s1" in suppressed.reason
    assert "alice" in suppressed.reason
    assert "planned maintenance" in suppressed.reason


def test_silence_for_other_labels_does_not_mute():
    sil = silence("team=payments")
    trace = run([(0, A)], silences=[sil], labels={"team": "search"})
    assert trace.notes == [FIRST]


@pytest.mark.parametrize(
    "text, name, op, value",
    [
        pytest.param("team=payments", "team", "=", "payments", id="eq"),
        pytest.param("team!=payments", "team", "!=", "payments", id="neq"),
        pytest.param("team=~pay.*", "team", "=~", "pay.*", id="regex"),
        pytest.param("team!~pay.*", "team", "!~", "pay.*", id="nregex"),
        pytest.param("  team = payments  ", "team", "=", "payments", id="whitespace"),
        pytest.param('team="pay ments"', "team", "=", "pay ments", id="double-quoted"),
        pytest.param("team='x'", "team", "=", "x", id="single-quoted"),
        pytest.param("team=", "team", "=", "", id="empty-value"),
        pytest.param("_a1=~a=b", "_a1", "=~", "a=b", id="value-with-equals"),
    ],
)
def test_matcher_parse(text, name, op, value):
    assert Matcher.parse(text) == Matcher(name, op, value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("team", id="no-operator"),
        pytest.param("=payments", id="no-name"),
        pytest.param("9team=x", id="name-starts-with-digit"),
        pytest.param("te-am=x", id="name-with-dash"),
        pytest.param("team~=x", id="unknown-operator"),
        pytest.param("team=~(", id="bad-regex"),
        pytest.param("team!~[a-", id="bad-negative-regex"),
    ],
)
def test_matcher_parse_rejects_bad_input(text):
    with pytest.raises(MatcherError):
        Matcher.parse(text)


def test_matcher_rejects_unknown_operator_directly():
    with pytest.raises(MatcherError, match="unknown matcher operator"):
        Matcher("team", "==", "x")


# ----- suppression order --------------------------------------------------------------


@pytest.mark.parametrize(
    "disabled, with_silence, snoozed, acked, expected",
    [
        pytest.param(True, True, True, True, "rule disabled", id="disabled-first"),
        pytest.param(False, True, True, True, "silence s1", id="silence-before-snooze"),
        pytest.param(False, False, True, True, "snoozed until 2026-01-01T01:00",
                     id="snooze-before-ack"),
        pytest.param(False, False, False, True, "acked by bob", id="ack-last"),
        pytest.param(False, False, False, False, None, id="nothing"),
    ],
)
def test_suppression_order(disabled, with_silence, snoozed, acked, expected):
    prior = run([(0, A)]).record
    if snoozed:
        prior = prior.evolve(snoozed_until=at(60))
    if acked:
        prior = prior.evolve(acked_at=at(1), acked_by="bob")
    sils = [silence("team=payments")] if with_silence else []
    decision = evaluate(Observation(RULE, A, labels=LABELS), prior, policy(), at(2), sils, disabled)
    if expected is None:
        assert decision.muted_by is None
    else:
        assert decision.muted_by is not None
        assert decision.muted_by.startswith(expected)


# ----- 8: snooze ----------------------------------------------------------------------


def test_snooze_mutes_firing_then_sends_unmuted_when_it_ends():
    prior = AlertRecord.new(RULE, LABELS).evolve(snoozed_until=at(30))
    trace = run([(0, A), (10, A), (29, A), (30, A), (31, A)], prior=prior)
    assert trace.states == ["firing"] * 5
    assert trace.notes == [NONE, NONE, NONE, UNMUTED, NONE]
    assert trace.kinds == [("firing", "suppressed"), (), (), ("notify",), ()]
    (suppressed,) = trace.events_of("suppressed")
    assert suppressed.reason == "snoozed until 2026-01-01T00:30+00:00"


def test_expired_snooze_does_not_mute():
    prior = AlertRecord.new(RULE, LABELS).evolve(snoozed_until=at(-1))
    trace = run([(0, A)], prior=prior)
    assert trace.notes == [FIRST]


def test_snooze_set_while_firing_mutes_repeats():
    pol = policy(repeat_interval=mins(60))
    trace = run([(0, A), (1, A, {"edit": snooze(150)}), (60, A), (120, A), (150, A)], pol)
    assert trace.notes == [FIRST, NONE, NONE, NONE, REPEAT]
    assert trace.minutes_with("suppressed") == [60, 120]


# ----- 9: ack -------------------------------------------------------------------------


def test_ack_suppresses_repeats_and_relapse_until_resolve():
    pol = policy(repeat_interval=mins(60), keep_firing_for=mins(10))
    steps = [
        (0, A),
        (2, A, {"edit": ack("alice")}),
        (60, A),
        (61, OK),
        (62, A),
        (130, A),
        (140, OK),
        (150, OK),
        (160, A),
    ]
    trace = run(steps, pol)
    assert trace.states == ["firing", "firing", "firing", "recovering", "firing", "firing",
                            "recovering", "resolved", "firing"]
    assert trace.notes == [FIRST, NONE, NONE, NONE, NONE, NONE, NONE, RESOLVED, FIRST]
    assert trace.minutes_with("suppressed") == [60, 130]
    assert all(e.reason == "acked by alice" for e in trace.events_of("suppressed"))
    resolved = trace.decisions[7].record
    assert resolved.acked_at is None
    assert resolved.acked_by is None
    assert trace.decisions[6].record.acked_at == at(1)


def test_ack_on_relapse_when_repeat_is_due_is_suppressed_not_sent():
    pol = policy(repeat_interval=mins(60), keep_firing_for=mins(30))
    trace = run([(0, A), (1, A, {"edit": ack()}), (50, OK), (70, A)], pol)
    assert trace.states == ["firing", "firing", "recovering", "firing"]
    assert trace.notes == [FIRST, NONE, NONE, NONE]
    assert trace.kinds[3] == ("firing", "suppressed")


# ----- 10: resolve always sent --------------------------------------------------------

RESOLVE_WHILE_MUTED = [
    pytest.param({}, [(0, A), (10, OK)], [silence("team=payments", start=5)],
                 "silence s1", id="silenced"),
    pytest.param({}, [(0, A), (10, OK, {"edit": snooze(60)})], [], "snoozed", id="snoozed"),
    pytest.param({}, [(0, A), (10, OK, {"edit": ack()})], [], None, id="acked"),
    pytest.param({}, [(0, A), (10, OK, {"rule_disabled": True})], [], "rule disabled",
                 id="disabled-arg"),
    pytest.param(dict(keep_firing_for=mins(10)),
                 [(0, A), (1, OK, {"edit": ack()}), (11, OK)], [], None,
                 id="acked-via-recovering"),
    pytest.param(dict(keep_firing_for=mins(10)),
                 [(0, A), (1, OK), (11, OK, {"rule_disabled": True})], [], "rule disabled",
                 id="disabled-via-recovering"),
]


@pytest.mark.parametrize("pol_kw, steps, sils, note", RESOLVE_WHILE_MUTED)
def test_resolve_is_sent_even_if_muted(pol_kw, steps, sils, note):
    trace = run(steps, policy(**pol_kw), silences=sils)
    assert trace.notes[0] == FIRST
    assert trace.notes[-1] == RESOLVED
    assert trace.states[-1] == "resolved"
    (notify,) = [e for e in trace.decisions[-1].events if e.kind == "notify"]
    if note is not None:
        assert f"resolve queued (sent although {note}" in notify.reason
    else:
        assert notify.reason == "resolve queued"


def test_resolve_when_policy_disabled_at_resolve_time():
    first = run([(0, A)]).record
    trace = run([(10, OK)], policy(enabled=False), prior=first)
    assert trace.notes == [RESOLVED]


def test_no_resolve_for_alert_never_notified_as_firing():
    sil = silence("team=payments", end=5)
    trace = run([(0, A), (3, OK)], silences=[sil])
    assert trace.notes == [NONE, NONE]
    assert trace.states == ["firing", "resolved"]


# ----- 11: every decision explains itself ---------------------------------------------

TRANSITION_EVENT = {
    "pending": "pending",
    "firing": "firing",
    "recovering": "recovering",
    "resolved": "resolved",
    "inactive": "cleared",
}

EXPLAINED = [
    pytest.param(dict(for_=mins(5), keep_firing_for=mins(10), repeat_interval=mins(60)),
                 [(0, A), (3, OK), (4, A), (9, A), (20, OK), (25, A), (69, A), (70, OK),
                  (80, OK), (81, A)], {}, id="for-keep-repeat"),
    pytest.param(dict(nodata=NoDataPolicy.ALERT, error=NoDataPolicy.OK),
                 [(0, ND), (1, ND), (2, ER), (3, ND)], {}, id="nodata-error"),
    pytest.param(dict(nodata=NoDataPolicy.KEEP_LAST, error=NoDataPolicy.KEEP_LAST),
                 [(0, A), (1, ND), (2, ER), (3, OK), (4, ND)], {}, id="keep-last"),
    pytest.param(dict(repeat_interval=mins(30)),
                 [(0, A), (10, A), (30, A), (60, OK)],
                 dict(silences=[silence("alertname=orders_stale", start=5, end=40)]),
                 id="silenced"),
    pytest.param(dict(for_=mins(1)), [(0, A), (1, A), (2, OK)], dict(rule_disabled=True),
                 id="disabled"),
    pytest.param(dict(keep_firing_for=mins(5)),
                 [(0, A), (1, A, {"edit": ack()}), (2, OK), (3, A), (4, OK), (9, OK)], {},
                 id="acked"),
]


@pytest.mark.parametrize("pol_kw, steps, run_kw", EXPLAINED)
def test_every_transition_and_notification_has_a_reason(pol_kw, steps, run_kw):
    trace = run(steps, policy(**pol_kw), **run_kw)
    changed = 0
    for d in trace.decisions:
        assert all(e.reason.strip() for e in d.events), d.events
        if d.record.state != d.before:
            changed += 1
            kinds = [e.kind for e in d.events]
            assert TRANSITION_EVENT[str(d.record.state)] in kinds, (d.transition, kinds)
        for n in d.notifications:
            assert n.reason in {"first", "repeat", "unmuted", "resolved"}
            notify = [e for e in d.events if e.kind == "notify"]
            assert len(notify) == 1 and notify[0].reason.strip()
    assert changed >= 2  # the scenario really exercised transitions


# ----- 12: dedup keys and episodes ----------------------------------------------------


def test_dedup_keys_unique_per_notification_and_episode():
    pol = policy(repeat_interval=mins(60))
    trace = run([(0, A), (60, A), (61, OK), (62, A), (122, A), (123, OK)], pol)
    assert trace.notes == [FIRST, REPEAT, RESOLVED, FIRST, REPEAT, RESOLVED]
    keys = [n.dedup_key for d in trace.decisions for n in d.notifications]
    assert len(keys) == 6
    assert len(set(keys)) == 6
    assert [d.record.episode for d in trace.decisions] == [1, 1, 1, 2, 2, 2]
    assert set(keys[:3]).isdisjoint(keys[3:])
    assert all(k.startswith(trace.record.fingerprint) for k in keys)


def test_dedup_key_is_deterministic_for_the_same_decision():
    prior = run([(0, A)], policy(repeat_interval=mins(60))).record
    obs = Observation(RULE, A, labels=LABELS)
    one = evaluate(obs, prior, policy(repeat_interval=mins(60)), at(60))
    two = evaluate(obs, prior, policy(repeat_interval=mins(60)), at(61))
    assert [n.dedup_key for n in one.notifications] == [n.dedup_key for n in two.notifications]
    assert len(one.notifications) == 1


def test_episode_does_not_increment_on_relapse():
    trace = run([(0, A), (1, OK), (2, A), (20, OK), (21, A)], policy(keep_firing_for=mins(10)))
    assert trace.states == ["firing", "recovering", "firing", "recovering", "firing"]
    assert [d.record.episode for d in trace.decisions] == [1, 1, 1, 1, 1]


def test_episode_starts_at_one_and_does_not_count_pending():
    trace = run([(0, A), (1, OK), (2, A), (8, A)], policy(for_=mins(5)))
    assert [d.record.episode for d in trace.decisions] == [0, 0, 0, 1]


# ----- 13: suppressed events are throttled --------------------------------------------

EVERY_5_MIN_FOR_3H = [(m, A) for m in range(0, 186, 5)]

THROTTLE = [
    pytest.param(dict(silences=[silence("team=payments")]), None, id="silenced"),
    pytest.param(dict(rule_disabled=True), None, id="disabled"),
    pytest.param({}, AlertRecord.new(RULE, LABELS).evolve(snoozed_until=at(1000)),
                 id="snoozed"),
]


@pytest.mark.parametrize("run_kw, prior", THROTTLE)
def test_suppressed_event_at_most_once_per_repeat_interval(run_kw, prior):
    pol = policy(repeat_interval=mins(60))
    trace = run(EVERY_5_MIN_FOR_3H, pol, prior=prior, **run_kw)
    assert trace.minutes_with("suppressed") == [0, 60, 120, 180]
    assert all(n == NONE for n in trace.notes)


def test_suppressed_after_ack_throttled_to_repeat_interval():
    pol = policy(repeat_interval=mins(60))
    steps = [(0, A), (1, A, {"edit": ack()}), *EVERY_5_MIN_FOR_3H[1:]]
    trace = run(steps, pol)
    assert trace.minutes_with("suppressed") == [60, 120, 180]
    assert trace.notes[0] == FIRST
    assert all(n == NONE for n in trace.notes[1:])


def test_flapping_muted_alert_suppressed_at_most_once_per_repeat_interval():
    pol = policy(repeat_interval=mins(60), keep_firing_for=mins(10))
    sil = silence("team=payments")
    steps = [(m, A if m % 2 == 0 else OK) for m in range(0, 10)]
    trace = run(steps, pol, silences=[sil])
    assert trace.states[:3] == ["firing", "recovering", "firing"]
    assert trace.minutes_with("suppressed") == [0]


# ----- fingerprint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, same",
    [
        pytest.param((RULE, {"a": "1", "b": "2"}), (RULE, {"b": "2", "a": "1"}), True,
                     id="dict-order-irrelevant"),
        pytest.param((RULE, {"a": "1"}), (RULE, {"a": "2"}), False, id="different-value"),
        pytest.param((RULE, {"a": "1"}), (RULE, {"b": "1"}), False, id="different-name"),
        pytest.param((RULE, {"a": "1"}), (RULE, {"a": "1", "b": ""}), False,
                     id="extra-empty-label"),
        pytest.param((RULE, {}), ("other", {}), False, id="different-rule"),
        pytest.param(("r", {"a": "1,b"}), ("r", {"a": "1", "b": ""}), False,
                     id="no-delimiter-ambiguity"),
    ],
)
def test_fingerprint(a, b, same):
    assert (fingerprint(*a) == fingerprint(*b)) is same
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(*a))


def test_engine_record_uses_observation_fingerprint():
    d1 = evaluate(Observation(RULE, A, labels={"a": "1", "b": "2"}), None, policy(), T0)
    d2 = evaluate(Observation(RULE, A, labels={"b": "2", "a": "1"}), None, policy(), T0)
    assert d1.record.fingerprint == d2.record.fingerprint == fingerprint(RULE, {"a": "1", "b": "2"})
    assert d1.notifications[0].dedup_key == d2.notifications[0].dedup_key


# ----- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("5m", timedelta(minutes=5), id="5m"),
        pytest.param("1h30m", timedelta(hours=1, minutes=30), id="1h30m"),
        pytest.param("30s", timedelta(seconds=30), id="30s"),
        pytest.param("7d", timedelta(days=7), id="7d"),
        pytest.param("500ms", timedelta(milliseconds=500), id="500ms"),
        pytest.param(" 5M ", timedelta(minutes=5), id="case-and-space"),
        pytest.param("0", timedelta(0), id="str-zero"),
        pytest.param(0, timedelta(0), id="int-zero"),
        pytest.param(timedelta(minutes=3), timedelta(minutes=3), id="timedelta-passthrough"),
    ],
)
def test_parse_duration_ok(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("5 minutes", id="words"),
        pytest.param(5, id="bare-int"),
        pytest.param(1.5, id="bare-float"),
        pytest.param("", id="empty"),
        pytest.param("5", id="bare-str-number"),
        pytest.param("m5", id="unit-first"),
        pytest.param("-5m", id="negative"),
        pytest.param("5m garbage", id="trailing-garbage"),
        pytest.param(True, id="bool"),
    ],
)
def test_parse_duration_rejects(text):
    with pytest.raises(DurationError, match="expected a duration like 5m"):
        parse_duration(text)
