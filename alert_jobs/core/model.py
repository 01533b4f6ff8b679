"""The shared vocabulary: what a check observed, what state an alert is in, and silences.

Everything here is plain data with no I/O, so checks, the engine, the timeline and
the notifiers can agree on meaning without importing each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """What one evaluation of a check found."""

    OK = "ok"
    ALERT = "alert"
    NODATA = "nodata"
    ERROR = "error"


class Severity(StrEnum):
    """How loud an alert is; routes decide who hears which (e.g. ``severity=critical`` →
    the pager), and a rise while firing is sent at once."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "critical").index(self.value)


class AlertState(StrEnum):
    """Lifecycle of one alert instance (one fingerprint)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    RESOLVED = "resolved"

    @property
    def is_active(self) -> bool:
        """Firing or recovering: the alert is (still) a problem someone may have been told about."""
        return self in (AlertState.FIRING, AlertState.RECOVERING)


class NoDataPolicy(StrEnum):
    """What a ``nodata`` or ``error`` observation means for the alert (Grafana's mapping)."""

    ALERT = "alert"
    OK = "ok"
    KEEP_LAST = "keep_last"


class AckOutcome(StrEnum):
    """What the person who acked says the alert was; feeds alert-quality rollups."""

    ACTIONABLE = "actionable"
    FALSE_POSITIVE = "false-positive"
    NOISE = "noise"
    DUPLICATE = "duplicate"


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """Stable identity of an alert instance: rule name plus sorted labels.

    Hex of SHA-256, shortened to 16 chars: collisions are irrelevant at the scale of
    alert instances, and short ids are friendlier in a CLI.
    """
    canonical = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Observation:
    """One evaluation result of a check, before the engine decides what it means.

    ``expected`` and ``seen`` are human sentences fragments ("to be 0", "1,000") that
    the message standard assembles; ``value`` is the number that plots.
    """

    rule: str
    status: Status
    labels: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    summary: str = ""
    expected: str = ""
    seen: str = ""
    window: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None  # overrides the rule's, e.g. quota 70 % warning, 90 % critical
    #: A ``nodata`` that is a baseline still learning its history: never an alert,
    #: whatever the rule's ``nodata`` policy says (a new rule must not page for it).
    learning: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)


_STATUS_RANK = {Status.OK: 0, Status.NODATA: 1, Status.ALERT: 2, Status.ERROR: 3}


def worst_observation(observations: list[Observation]) -> Observation | None:
    """The observation an asset check should report: errors first, then alerts by
    severity, then nodata; ``None`` when everything is ok."""
    bad = [o for o in observations if o.status != Status.OK]
    return max(bad, key=lambda o: (_STATUS_RANK[o.status], o.severity.rank if o.severity else 0),
               default=None)


def error_observation(rule: str, message: str, labels: dict[str, str] | None = None) -> Observation:
    """A check that could not run is an alert of its own, saying why."""
    return Observation(rule, Status.ERROR, dict(labels or {}), None,
                       summary=f"check failed: {message}", seen="error")


@dataclass(frozen=True)
class AlertRecord:
    """The persisted state of one alert instance; one row in ``alert_alerts``."""

    fingerprint: str
    rule: str
    labels: dict[str, str]
    state: AlertState = AlertState.INACTIVE
    severity: Severity = Severity.WARNING
    episode: int = 0
    active_since: datetime | None = None
    fired_at: datetime | None = None
    recovering_since: datetime | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_suppressed_at: datetime | None = None
    notified_firing: bool = False
    notified_severity: str | None = None  # highest severity sent in this firing episode
    notify_seq: int = 0
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_note: str | None = None
    ack_outcome: str | None = None
    snoozed_until: datetime | None = None
    escalation_step: int = 0
    last_status: Status | None = None
    last_value: float | None = None
    last_summary: str = ""
    last_eval_at: datetime | None = None
    #: What the last evaluation expected ("under 7,000 commands"): the responder's page
    #: shows it beside ``last_value``.
    last_expected: str = ""

    @classmethod
    def new(cls, rule: str, labels: dict[str, str]) -> AlertRecord:
        return cls(fingerprint=fingerprint(rule, labels), rule=rule, labels=dict(labels))

    def evolve(self, **changes: Any) -> AlertRecord:
        return replace(self, **changes)

    def is_snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until

    @property
    def is_acked(self) -> bool:
        return self.acked_at is not None


MATCH_OPERATORS = ("=~", "!~", "!=", "=")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatcherError(ValueError):
    """A label matcher that cannot be parsed or whose regex does not compile."""


@dataclass(frozen=True)
class Matcher:
    """An Alertmanager label matcher: ``name op value`` with ``=``, ``!=``, ``=~``, ``!~``.

    Regexes are anchored at both ends (Alertmanager semantics), so ``team=~pay``
    does not match ``payments``; write ``team=~pay.*`` for a prefix. A missing label
    is the empty string, so ``team!=x`` matches an alert without a team label.
    """

    name: str
    op: str
    value: str
    #: The compiled regex of ``=~``/``!~``, made once: ``re``'s own cache holds 512
    #: patterns, and hundreds of silences checked against thousands of alerts thrash it.
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False,
                                           compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in MATCH_OPERATORS:
            raise MatcherError(f"unknown matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(self.value))
            except re.error as exc:
                raise MatcherError(f"bad regex in {self}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = _MATCHER.match(text)
        if not m:
            raise MatcherError(
                f"cannot parse matcher {text!r}: expected name=value, name!=value, "
                "name=~regex or name!~regex"
            )
        name, op, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return cls(name, op, value)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def select(self, label_sets: Sequence[dict[str, str]]) -> list[int]:
        """Indexes of the ``label_sets`` this matcher matches: :meth:`matches` over many
        alerts in one tight loop (a silence swept across a whole alert list)."""
        name, value = self.name, self.value
        if self.op == "=":
            return [i for i, labels in enumerate(label_sets) if labels.get(name, "") == value]
        if self.op == "!=":
            return [i for i, labels in enumerate(label_sets) if labels.get(name, "") != value]
        assert self._regex is not None
        full = self._regex.fullmatch
        if self.op == "=~":
            return [i for i, labels in enumerate(label_sets)
                    if full(labels.get(name, "")) is not None]
        return [i for i, labels in enumerate(label_sets) if full(labels.get(name, "")) is None]

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True)
class Silence:
    """Mutes every alert whose labels match all matchers between ``starts_at`` and ``ends_at``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.matchers)

    def describe(self) -> str:
        matchers = ", ".join(str(m) for m in self.matchers)
        return f"silence {self.id} [{matchers}] by {self.created_by}: {self.comment}"


def alert_labels(record_or_obs: AlertRecord | Observation, severity: Severity) -> dict[str, str]:
    """Labels a silence or route sees: the alert's own plus ``alertname`` and ``severity``."""
    return {**record_or_obs.labels, "alertname": record_or_obs.rule, "severity": str(severity)}


ZERO = timedelta(0)
