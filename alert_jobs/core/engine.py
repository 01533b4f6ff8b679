"""The alert engine: a pure state machine plus the decision of whom to tell and why.

No I/O and no clock of its own: callers pass ``now`` and the prior state, and get
back the new state, the timeline events and the notifications to queue. That keeps
every semantic testable with plain values (see ``tests/core/test_engine.py``).

Semantics follow the anchors (DESIGN.md §3):

* ``for`` (Prometheus): a bad observation starts *pending*; it fires only once it
  has stayed bad for ``for``. A pending alert that clears is dropped, no resolve.
* ``keep_firing_for``: a firing alert that clears goes *recovering* and resolves
  only after staying good that long; a relapse returns it to firing silently.
* ``nodata``/``error`` map to alert / ok / keep_last per rule (Grafana).
* Suppression, in order: disabled rule → silence → snooze → ack. Suppressed
  decisions are still events, with the reason.
* ``repeat_interval``: a still-firing, unmuted alert is re-sent that often.
* Resolve is always sent for anything notified as firing, even if muted now.

Grouping, inhibition and escalation plug in as further stages (the notifiers issue);
the record already carries ``escalation_step`` and the decision a list of receivers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import (
    AlertRecord,
    AlertState,
    NoDataPolicy,
    Observation,
    Severity,
    Silence,
    Status,
    alert_labels,
)


@dataclass(frozen=True)
class RulePolicy:
    """The engine-relevant part of a rule, independent of the rules file format."""

    rule: str
    severity: Severity = Severity.WARNING
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    repeat_interval: timedelta = timedelta(hours=4)
    nodata: NoDataPolicy = NoDataPolicy.ALERT
    error: NoDataPolicy = NoDataPolicy.ALERT
    enabled: bool = True
    receivers: tuple[str, ...] = ("console",)


@dataclass(frozen=True)
class Event:
    """One timeline entry the decision produced."""

    kind: str
    reason: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """A message to queue for each receiver. ``dedup_key`` makes queuing idempotent."""

    kind: str  # "firing" | "resolved"
    reason: str  # "first" | "repeat" | "unmuted" | "severity_raised" | "resolved"
    dedup_key: str
    receivers: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """Everything one evaluation decided, ready to persist in one transaction."""

    before: AlertState
    record: AlertRecord
    events: list[Event]
    notifications: list[Notification]
    muted_by: str | None

    @property
    def transition(self) -> str:
        after = self.record.state
        return f"{self.before} → {after}" if after != self.before else str(after)

    def describe(self) -> str:
        """One line for the Dagster run log."""
        parts = [f"{self.record.rule} [{self.record.fingerprint[:8]}]: {self.transition}"]
        for n in self.notifications:
            parts.append(f"notify {n.kind} ({n.reason}) → {', '.join(n.receivers)}")
        if self.muted_by and not self.notifications and self.record.state.is_active:
            parts.append(f"muted: {self.muted_by}")
        return "; ".join(parts)


def evaluate(
    obs: Observation,
    prior: AlertRecord | None,
    policy: RulePolicy,
    now: datetime,
    silences: Sequence[Silence] = (),
    rule_disabled: bool = False,
    inhibited: str | None = None,
) -> Decision:
    """Decide what ``obs`` means for its alert instance at ``now``.

    ``inhibited`` is the router's reason this alert is inhibited right now (or None):
    the engine only ranks it among the other mutes.
    """
    record = prior or AlertRecord.new(obs.rule, obs.labels)
    before = record.state
    events: list[Event] = []

    if obs.status in (Status.NODATA, Status.ERROR) and record.last_status != obs.status:
        events.append(Event(str(obs.status), obs.summary or str(obs.status), _obs_payload(obs)))

    bad, why = _condition(obs, record, policy)
    record, transition = _transition(record, bad, why, policy, now)
    if transition is not None:
        events.append(transition)

    record = record.evolve(
        severity=obs.severity or policy.severity,
        labels=dict(obs.labels),
        last_status=obs.status,
        last_value=obs.value,
        last_summary=obs.summary,
        last_eval_at=now,
        last_expected=obs.expected,
    )
    muted_by = _muted_by(record, policy, now, silences, rule_disabled) or inhibited
    # Only a severity above everything already sent in this episode is news: a target
    # flapping warning ↔ critical pages once, not at every flip.
    raised = (record.notified_severity is not None
              and record.severity.rank > Severity(record.notified_severity).rank)
    record, notifications, notify_events = _notify(record, before, policy, now, muted_by, raised)
    events.extend(notify_events)
    return Decision(before, record, events, notifications, muted_by)


def _condition(obs: Observation, record: AlertRecord, policy: RulePolicy) -> tuple[bool, str]:
    """Is the alert's condition bad right now, and in words why."""
    if obs.status == Status.OK:
        return False, obs.summary or "value within expected range"
    if obs.status == Status.ALERT:
        return True, obs.summary or "value outside expected range"
    if obs.status == Status.NODATA and obs.learning:
        return False, f"{obs.summary or 'learning'} (a baseline that is learning never alerts)"
    mapping = policy.nodata if obs.status == Status.NODATA else policy.error
    label = "no data" if obs.status == Status.NODATA else "check error"
    detail = f"{label}: {obs.summary}" if obs.summary else label
    if mapping == NoDataPolicy.ALERT:
        return True, detail
    if mapping == NoDataPolicy.OK:
        return False, f"{detail} (treated as ok by rule)"
    last_bad = record.state in (AlertState.PENDING, AlertState.FIRING)
    return last_bad, f"{detail} (keeping last state: {'bad' if last_bad else 'good'})"


def _transition(
    record: AlertRecord, bad: bool, why: str, policy: RulePolicy, now: datetime
) -> tuple[AlertRecord, Event | None]:
    """Move the state machine one step; return the new record and its transition event."""
    state = record.state
    if bad:
        if state in (AlertState.INACTIVE, AlertState.RESOLVED):
            if policy.for_ <= timedelta(0):
                return _fire(record.evolve(active_since=now), now, why)
            pending = record.evolve(state=AlertState.PENDING, active_since=now, resolved_at=None)
            reason = f"{why}; pending until bad for {format_duration(policy.for_)}"
            return pending, Event("pending", reason)
        if state == AlertState.PENDING:
            assert record.active_since is not None
            if now - record.active_since >= policy.for_:
                return _fire(record, now, f"{why}; bad for {format_duration(policy.for_)}")
            return record, None
        if state == AlertState.RECOVERING:
            back = record.evolve(state=AlertState.FIRING, recovering_since=None)
            return back, Event("firing", f"{why}; bad again while recovering", {"relapse": True})
        return record, None

    if state == AlertState.PENDING:
        cleared = record.evolve(state=AlertState.INACTIVE, active_since=None)
        return cleared, Event("cleared", f"{why}; cleared before 'for' elapsed, nothing sent")
    if state == AlertState.FIRING:
        if policy.keep_firing_for > timedelta(0):
            recovering = record.evolve(state=AlertState.RECOVERING, recovering_since=now)
            reason = f"{why}; resolves if good for {format_duration(policy.keep_firing_for)}"
            return recovering, Event("recovering", reason)
        return _resolve(record, now, why)
    if state == AlertState.RECOVERING:
        assert record.recovering_since is not None
        if now - record.recovering_since >= policy.keep_firing_for:
            good_for = format_duration(policy.keep_firing_for)
            return _resolve(record, now, f"{why}; good for {good_for}")
    return record, None


def _fire(record: AlertRecord, now: datetime, why: str) -> tuple[AlertRecord, Event]:
    fired = record.evolve(
        state=AlertState.FIRING,
        fired_at=now,
        resolved_at=None,
        recovering_since=None,
        episode=record.episode + 1,
        notified_firing=False,
        notified_severity=None,
        last_notified_at=None,
        last_suppressed_at=None,
        escalation_step=0,
    )
    return fired, Event("firing", why)


def _resolve(record: AlertRecord, now: datetime, why: str) -> tuple[AlertRecord, Event]:
    resolved = record.evolve(state=AlertState.RESOLVED, resolved_at=now, recovering_since=None)
    return resolved, Event("resolved", why)


def _muted_by(
    record: AlertRecord,
    policy: RulePolicy,
    now: datetime,
    silences: Sequence[Silence],
    rule_disabled: bool,
) -> str | None:
    """The first suppression that applies, in DESIGN.md §3 order, as a sentence."""
    if rule_disabled or not policy.enabled:
        return "rule disabled"
    labels = alert_labels(record, record.severity)  # the alert's own, e.g. quota warning
    for silence in silences:
        if silence.is_active(now) and silence.matches(labels):
            return silence.describe()
    if record.is_snoozed(now):
        assert record.snoozed_until is not None
        return f"snoozed until {record.snoozed_until.isoformat(timespec='minutes')}"
    if record.is_acked and record.state.is_active:
        return f"acked by {record.acked_by or 'someone'}"
    return None


def _notify(
    record: AlertRecord,
    before: AlertState,
    policy: RulePolicy,
    now: datetime,
    muted_by: str | None,
    severity_raised: bool = False,
) -> tuple[AlertRecord, list[Notification], list[Event]]:
    """Alertmanager-style decision (first, repeat, unmuted, severity_raised, resolved) + reason.

    ``severity_raised``: a firing, notified alert whose severity rose (warning → critical) is
    re-sent at once, not after repeat_interval: the change is news.
    """
    receivers = policy.receivers
    key_base = f"{record.fingerprint}:{record.episode}"

    if record.state == AlertState.RESOLVED and before != AlertState.RESOLVED:
        cleared = record.evolve(
            notified_firing=False,
            acked_at=None,
            acked_by=None,
            ack_note=None,
            escalation_step=0,
        )
        if not record.notified_firing:
            return cleared, [], []
        note = f" (sent although {muted_by})" if muted_by else ""
        n = Notification("resolved", "resolved", f"{key_base}:resolved", receivers)
        sent = cleared.evolve(last_notified_at=now, notify_seq=record.notify_seq + 1)
        return sent, [n], [Event("notify", f"resolve queued{note}", {"receivers": list(receivers)})]

    if record.state != AlertState.FIRING:
        return record, [], []

    if record.notified_firing and severity_raised:
        due, reason = True, "severity_raised"
    elif record.notified_firing:
        assert record.last_notified_at is not None
        due = now - record.last_notified_at >= policy.repeat_interval
        reason = "repeat"
    else:
        due = True
        # A relapse from recovering is the same incident, so it is never a "first".
        reason = "first" if not before.is_active else "unmuted"

    if not due:
        return record, [], []
    if muted_by is not None:
        last = max(d for d in (record.last_notified_at, record.last_suppressed_at, record.fired_at)
                   if d is not None)
        if reason not in ("first", "severity_raised") and now - last < policy.repeat_interval:
            return record, [], []
        suppressed = record.evolve(last_suppressed_at=now)
        return suppressed, [], [Event("suppressed", muted_by, {"would_send": reason})]

    seq = record.notify_seq + 1
    n = Notification("firing", reason, f"{key_base}:firing:{seq}", receivers)
    highest = max(filter(None, [record.notified_severity, str(record.severity)]),
                  key=lambda s: Severity(s).rank)
    sent = record.evolve(notified_firing=True, last_notified_at=now, notify_seq=seq,
                         notified_severity=highest)
    verb = {"first": "first notification", "repeat": "repeat_interval "
            f"{format_duration(policy.repeat_interval)} elapsed", "unmuted": "no longer muted",
            "severity_raised": f"severity raised to {record.severity}"}
    return sent, [n], [Event("notify", f"firing queued: {verb[reason]}",
                             {"receivers": list(receivers), "reason": reason})]


def _obs_payload(obs: Observation) -> dict[str, Any]:
    return {"value": obs.value, "expected": obs.expected, "seen": obs.seen, "window": obs.window}
