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

from collections import Counter
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
    """Silences filed by one equality matcher each (see the module docstring): the one
    fewest silences share, so ``team="payments", host="db7"`` is filed under the host."""

    def __init__(self, silences: Iterable[Silence]):
        self.by_label: dict[tuple[str, str], list[Silence]] = {}
        self.unkeyed: list[Silence] = []
        silences = list(silences)
        shared = Counter((m.name, m.value) for s in silences for m in s.matchers if m.op == "=")
        for silence in silences:
            key = min(((m.name, m.value) for m in silence.matchers if m.op == "="),
                      key=lambda k: shared[k], default=None)
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

    def matching_all(self, label_sets: Sequence[dict[str, str]]) -> list[list[Silence]]:
        """:meth:`matching` for many alerts at once: filed silences are looked up per
        alert; each silence with no equality matcher is swept across all alerts once,
        its first matcher as a tight filter (:meth:`Matcher.select`)."""
        found: list[list[Silence]] = [[] for _ in label_sets]
        if self.by_label:
            for i, labels in enumerate(label_sets):
                for name in self.names:
                    for silence in self.by_label.get((name, labels.get(name, "")), ()):
                        if silence.matches(labels):
                            found[i].append(silence)
        for silence in self.unkeyed:
            first, rest = silence.matchers[0], silence.matchers[1:]
            for i in first.select(label_sets):
                if all(m.matches(label_sets[i]) for m in rest):
                    found[i].append(silence)
        return found


def mutes(record: AlertRecord, now: datetime, silences: Sequence[Silence], *,
          rule_disabled: bool = False, inhibited: str | None = None) -> list[Mute]:
    """Every suppression of ``record`` at ``now``, in the engine's order (DESIGN.md §3);
    ``silences`` are the active ones that match it (:meth:`SilenceIndex.matching`)."""
    found: list[Mute] = []
    if rule_disabled:
        found.append(Mute("disabled", "rule disabled"))
    for silence in sorted(silences, key=lambda s: s.ends_at):
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
