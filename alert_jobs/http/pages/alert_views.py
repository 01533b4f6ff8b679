"""What the alert pages show, read from the timeline and the rules (no HTTP here).

:func:`alert_rows` builds every active alert's row for the list — what mutes it and
until when, its runbook, dashboard and Dagster run — from a fixed number of queries
whatever the number of alerts (the page must answer in under 200 ms with 5,000 alerts
and 500 silences; ``benchmarks/responder_bench.py``); :func:`grouped` orders them into
the page's sections by state and severity and shows the first :data:`SHOWN` (critical
firing first), so a phone is not handed 5,000 rows: the filter narrows, ``all`` shows
everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.model import AlertRecord, AlertState, Matcher, Severity, alert_labels
from alert_jobs.core.muting import Mute, SilenceIndex, mutes
from alert_jobs.notify.render import run_link
from alert_jobs.store import Timeline

STATE_ORDER = (AlertState.FIRING, AlertState.RECOVERING, AlertState.PENDING)
SEVERITY_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
#: How far back the list looks for the run that raised an alert, at most.
RUN_LOOKBACK = timedelta(days=35)
#: Rows the list shows unless asked for all (the counts always cover every alert).
SHOWN = 500


@dataclass(frozen=True)
class AlertRow:
    record: AlertRecord
    mutes: list[Mute]
    runbook_url: str = ""
    dashboard_url: str = ""
    run_url: str | None = None

    @property
    def since(self) -> datetime | None:
        return self.record.fired_at or self.record.active_since

    @property
    def label_tags(self) -> list[str]:
        """``name=value`` per label, sorted (cheaper than the template's ``dictsort``)."""
        return [f"{k}={v}" for k, v in sorted(self.record.labels.items())]


@dataclass
class Section:
    state: AlertState
    severity: Severity
    rows: list[AlertRow] = field(default_factory=list)
    total: int = 0  # rows in the section, shown or not


@dataclass(frozen=True)
class Links:
    """Where an alert's links point: per rule notes and the Dagster UI."""

    rules: RulesFile

    def notes(self, rule: RuleBase | None, record: AlertRecord) -> tuple[str, str]:
        if rule is None:  # a rule since removed from the file still has its alerts
            return "", ""
        notes = rule.annotations_for(record.labels)
        return notes.runbook_url or "", notes.dashboard_url or ""

    def run_url(self, run_id: str | None) -> str | None:
        return run_link(self.rules.defaults.dagster_url, run_id) or None


def matching(records: Iterable[AlertRecord], matchers: Sequence[Matcher]) -> list[AlertRecord]:
    """The alerts whose labels (with ``alertname`` and ``severity``) match every matcher."""
    return [a for a in records
            if all(m.matches(alert_labels(a, a.severity)) for m in matchers)]


def alert_rows(timeline: Timeline, rules: RulesFile, now: datetime,
               alerts: Iterable[AlertRecord] | None = None,
               active: Sequence[AlertRecord] | None = None) -> list[AlertRow]:
    """A row for every active alert (or for ``alerts``, some of the ``active`` ones if
    the caller has read them already), in a handful of queries."""
    if alerts is None:
        active = timeline.alerts.list()
        records = list(active)
    else:
        records = list(alerts)
    index = SilenceIndex(s for s in timeline.silences.list(now=now) if s.is_active(now))
    disabled = timeline.rule_settings.disabled()
    router = rules.router()
    if not router.inhibit_rules:
        inhibition = None
    elif active is not None:  # every active alert at hand: the firing ones inhibit
        inhibition = router.inhibition(alert_labels(a, a.severity) for a in active
                                       if a.state is AlertState.FIRING)
    else:
        inhibition = router.inhibition(timeline.alerts.firing_labels())
    oldest = min((a.active_since or now for a in records), default=now)
    runs = timeline.events.raising_runs((a.fingerprint for a in records),
                                        since=max(oldest, now - RUN_LOOKBACK))
    label_sets = [alert_labels(a, a.severity) for a in records]
    silenced = index.matching_all(label_sets)
    links = Links(rules)
    by_name = {rule.name: rule for rule in rules.rules()}
    notes: dict[str, tuple[str, str]] = {}
    rows = []
    for record, labels, silences in zip(records, label_sets, silenced, strict=True):
        inhibited = inhibition.inhibited_by(labels) if inhibition is not None else None
        rule = by_name.get(record.rule)
        if rule is not None and type(rule).annotations_for is not RuleBase.annotations_for:
            runbook, dashboard = links.notes(rule, record)  # per instance (drift segments)
        else:
            if record.rule not in notes:
                notes[record.rule] = links.notes(rule, record)
            runbook, dashboard = notes[record.rule]
        rows.append(AlertRow(record, mutes(record, now, silences,
                                           rule_disabled=record.rule in disabled,
                                           inhibited=inhibited),
                             runbook, dashboard, links.run_url(runs.get(record.fingerprint))))
    return rows


def grouped(rows: list[AlertRow], shown: int | None = SHOWN) -> list[Section]:
    """Sections in page order (firing before recovering before pending; critical first),
    each oldest first, with the first ``shown`` rows in that order (``None``: all);
    empty sections are left out."""
    sections = {(st, sev): Section(st, sev) for st in STATE_ORDER for sev in SEVERITY_ORDER}
    for row in rows:
        key = (row.record.state, row.record.severity)
        if key in sections:
            sections[key].rows.append(row)
    left = shown
    for section in sections.values():
        section.rows.sort(key=lambda r: (r.since is None, r.since, r.record.rule))
        section.total = len(section.rows)
        if left is not None:
            del section.rows[left:]
            left -= len(section.rows)
    return [s for s in sections.values() if s.total]


def counts(rows: list[AlertRow], sections: list[Section]) -> dict[str, Any]:
    return {"total": len(rows), "shown": sum(len(s.rows) for s in sections),
            "muted": sum(1 for r in rows if r.mutes),
            **{str(state): sum(1 for r in rows if r.record.state is state)
               for state in STATE_ORDER}}
