"""What the alert pages show, read from the timeline and the rules (no HTTP here).

:func:`alert_rows` builds every active alert's row for the list — what mutes it and
until when, its runbook, dashboard and Dagster run — from a fixed number of queries
whatever the number of alerts (the page must render 5,000 alerts in well under
200 ms); :func:`grouped` orders them into the page's sections by state and severity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.model import AlertRecord, AlertState, Severity, alert_labels
from alert_jobs.core.muting import Mute, SilenceIndex, mutes
from alert_jobs.store import Timeline

STATE_ORDER = (AlertState.FIRING, AlertState.RECOVERING, AlertState.PENDING)
SEVERITY_ORDER = (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
#: How far back the list looks for the run that raised an alert, at most.
RUN_LOOKBACK = timedelta(days=35)


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


@dataclass
class Section:
    state: AlertState
    severity: Severity
    rows: list[AlertRow] = field(default_factory=list)


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
        if not run_id:
            return None
        return f"{self.rules.defaults.dagster_url.rstrip('/')}/runs/{run_id}"


def alert_rows(timeline: Timeline, rules: RulesFile, now: datetime,
               alerts: Iterable[AlertRecord] | None = None) -> list[AlertRow]:
    """A row for every active alert (or for ``alerts``), in a handful of queries."""
    records = list(timeline.alerts.list() if alerts is None else alerts)
    index = SilenceIndex(s for s in timeline.silences.list(now=now) if s.is_active(now))
    disabled = timeline.rule_settings.disabled()
    router = rules.router()
    firing = ([alert_labels(a, a.severity) for a in records if a.state is AlertState.FIRING]
              if router.inhibit_rules else [])
    oldest = min((a.active_since or now for a in records), default=now)
    runs = timeline.events.raising_runs((a.fingerprint for a in records),
                                        since=max(oldest, now - RUN_LOOKBACK))
    links = Links(rules)
    by_name = {rule.name: rule for rule in rules.rules()}
    notes: dict[str, tuple[str, str]] = {}
    rows = []
    for record in records:
        inhibited = (router.inhibited_by(alert_labels(record, record.severity), firing)
                     if firing else None)
        rule = by_name.get(record.rule)
        if rule is not None and type(rule).annotations_for is not RuleBase.annotations_for:
            runbook, dashboard = links.notes(rule, record)  # per instance (drift segments)
        else:
            if record.rule not in notes:
                notes[record.rule] = links.notes(rule, record)
            runbook, dashboard = notes[record.rule]
        rows.append(AlertRow(record, mutes(record, now, index,
                                           rule_disabled=record.rule in disabled,
                                           inhibited=inhibited),
                             runbook, dashboard, links.run_url(runs.get(record.fingerprint))))
    return rows


def grouped(rows: list[AlertRow]) -> list[Section]:
    """Sections in page order (firing before recovering before pending; critical first),
    each oldest first; empty sections are left out."""
    sections = {(st, sev): Section(st, sev) for st in STATE_ORDER for sev in SEVERITY_ORDER}
    for row in rows:
        key = (row.record.state, row.record.severity)
        if key in sections:
            sections[key].rows.append(row)
    for section in sections.values():
        section.rows.sort(key=lambda r: (r.since is None, r.since, r.record.rule))
    return [s for s in sections.values() if s.rows]


def counts(rows: list[AlertRow]) -> dict[str, Any]:
    return {"total": len(rows),
            "muted": sum(1 for r in rows if r.mutes),
            **{str(state): sum(1 for r in rows if r.record.state is state)
               for state in STATE_ORDER}}
