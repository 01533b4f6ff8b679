"""What mutes an alert, for people: every suppression that applies, with its "until".

The engine needs only the first suppression that applies (:func:`engine._muted_by`);
the responder's page shows them all — a silence may outlive a snooze — with when each
ends and who set it. :class:`SilenceIndex` answers "which silences match these labels"
without trying every silence on every alert: a silence is filed under one of its
equality matchers (``name="value"``), so an alert only tries the silences filed under
its own label values plus the few with no equality matcher. 5,000 alerts × 500
silences is then thousands of matcher checks, not 2.5 million.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from alert_jobs.core.model import AlertRecord, Silence, alert_labels


@dataclass(frozen=True)
class Mute:
    """One reason an alert is quiet: ``kind`` is disabled, silence, snooze, ack or inhibited."""

    kind: str
    text: str
    until: datetime | None = None
    silence_id: str | None = None


class SilenceIndex:
    """Silences filed by one equality matcher each (see the module docstring)."""

    def __init__(self, silences: Iterable[Silence]):
        self.by_label: dict[tuple[str, str], list[Silence]] = {}
        self.unkeyed: list[Silence] = []
        for silence in silences:
            key = next(((m.name, m.value) for m in silence.matchers if m.op == "="), None)
            if key is None:
                self.unkeyed.append(silence)
            else:
                self.by_label.setdefault(key, []).append(silence)
        self.names = {name for name, _ in self.by_label}

    def matching(self, labels: dict[str, str], now: datetime | None = None) -> list[Silence]:
        """Silences whose matchers all match ``labels`` (active at ``now``, if given)."""
        candidates = [s for name in self.names
                      for s in self.by_label.get((name, labels.get(name, "")), ())]
        candidates.extend(self.unkeyed)
        return [s for s in candidates if s.matches(labels)
                and (now is None or s.is_active(now))]


def mutes(record: AlertRecord, now: datetime, silences: SilenceIndex, *,
          rule_disabled: bool = False, inhibited: str | None = None) -> list[Mute]:
    """Every suppression of ``record`` at ``now``, in the engine's order (DESIGN.md §3)."""
    found: list[Mute] = []
    if rule_disabled:
        found.append(Mute("disabled", "rule disabled"))
    labels = alert_labels(record, record.severity)
    for silence in sorted(silences.matching(labels, now), key=lambda s: s.ends_at):
        found.append(Mute("silence", f"silence by {silence.created_by}: {silence.comment}",
                          silence.ends_at, silence.id))
    if record.is_snoozed(now):
        found.append(Mute("snooze", "snoozed", record.snoozed_until))
    if record.is_acked and record.state.is_active:
        found.append(Mute("ack", f"acked by {record.acked_by or 'someone'}"))
    if inhibited:
        found.append(Mute("inhibited", inhibited))
    return found


def muted_alerts(silence: Silence, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
    """The alerts among ``alerts`` that ``silence``'s matchers match (its preview)."""
    return [a for a in alerts if silence.matches(alert_labels(a, a.severity))]
