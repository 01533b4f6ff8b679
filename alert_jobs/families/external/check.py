"""Pushed alerts, pure: Alertmanager's ``postableAlerts`` validated, and each alert as the
observation our engine judges.

Alertmanager's rules (``api/v2/api.go``, ``alert/alert.go``): labels with an empty value
are dropped; an alert needs at least one label; label and annotation names are
``[a-zA-Z_][a-zA-Z0-9_]*``; ``endsAt`` may not be before ``startsAt``; a missing
``startsAt`` is ``endsAt`` (or now); a missing ``endsAt`` is now + ``resolve_timeout``
(a *timeout* end, which a later explicit one overrides). Go's zero time
(``0001-01-01T00:00:00Z``), which Go clients send for an unset time, counts as absent.
Here an alert must also carry an ``alertname`` (our rule name), and a batch is taken
whole or not at all (Alertmanager keeps the valid alerts of a bad batch; we refuse the
batch with every reason, so nothing is half-written).

Identity: Alertmanager's alert is all its labels; ours is ``alertname`` plus the other
labels *without* ``severity`` (the engine's severity is the label's meaning, not part of
the name, so a rule that fires a warning and then a critical for the same target is one
alert that was raised). :func:`settle` decides one alert instance from all of its
Alertmanager alerts: firing while any of them is, at the highest severity.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from alert_jobs.core.model import Observation, Severity, Status, fingerprint

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
#: The longest alertname (the rule name column of the timeline).
MAX_ALERTNAME = 128
#: Labels the engine adds itself (they are not part of an alert's own labels).
ENGINE_LABELS = ("alertname", "severity")
#: Annotations that have a place of their own in the message.
_PLACED = ("summary", "description", "runbook_url", "dashboard_url")


class InvalidAlerts(ValueError):
    """A push that is refused whole; the message lists every problem."""


@dataclass(frozen=True)
class PushedAlert:
    """One alert of a push, validated (times are aware UTC datetimes)."""

    rule: str  # the alertname
    labels: dict[str, str]  # without alertname and severity
    severity_label: str | None
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""

    @cached_property
    def fingerprint(self) -> str:
        """Our alert instance (the engine's identity)."""
        return fingerprint(self.rule, self.labels)

    @cached_property
    def key(self) -> str:
        """Alertmanager's alert: every label, severity included."""
        every = {**self.labels, "alertname": self.rule}
        if self.severity_label is not None:
            every["severity"] = self.severity_label
        canonical = json.dumps(sorted(every.items()), separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _time(value: Any, where: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.match(value):
        problems.append(f"{where}: {value!r} is not an RFC 3339 time "
                        "(e.g. 2026-03-01T12:00:00Z)")
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        if moment.year <= 1:  # Go's zero time: unset
            return None
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: outside years 1-9999 in UTC
        problems.append(f"{where}: {value!r} is not a valid time")
        return None


def _label_set(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object of name: value strings")
        return {}
    out: dict[str, str] = {}
    for name, text in value.items():
        if not _NAME.match(name):
            problems.append(f"{where}: invalid name {name!r} (letters, digits and _, not "
                            "starting with a digit)")
        elif not isinstance(text, str):
            problems.append(f"{where}.{name}: expected a string, got {json.dumps(text)}")
        elif text != "":  # Alertmanager drops empty values
            out[name] = text
    return out


def parse_alerts(body: Any) -> list[PushedAlert]:
    """``postableAlerts`` → alerts; :class:`InvalidAlerts` naming every problem."""
    if not isinstance(body, list):
        raise InvalidAlerts("expected a JSON array of alerts (postableAlerts)")
    problems: list[str] = []
    alerts: list[PushedAlert] = []
    for i, item in enumerate(body):
        where = f"alert {i}"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object with labels")
            continue
        before = len(problems)
        if "labels" not in item:
            problems.append(f"{where}: labels missing (at least alertname is required)")
        labels = _label_set(item.get("labels"), f"{where}.labels", problems)
        annotations = _label_set(item.get("annotations"), f"{where}.annotations", problems)
        starts = _time(item.get("startsAt"), f"{where}.startsAt", problems)
        ends = _time(item.get("endsAt"), f"{where}.endsAt", problems)
        url = item.get("generatorURL") or ""
        if not isinstance(url, str):
            problems.append(f"{where}.generatorURL: expected a string")
        name = labels.pop("alertname", "")
        if "labels" in item and isinstance(item["labels"], dict) and not name:
            problems.append(f"{where}.labels: alertname missing (it names the alert's rule)")
        elif len(name) > MAX_ALERTNAME:
            problems.append(f"{where}.labels.alertname: longer than {MAX_ALERTNAME} characters")
        if starts is not None and ends is not None and ends < starts:
            problems.append(f"{where}: endsAt is before startsAt")
        if len(problems) > before:
            continue
        severity = labels.pop("severity", None)
        alerts.append(PushedAlert(name, labels, severity, annotations, starts, ends,
                                  str(url)))
    if problems:
        shown = problems[:20]
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InvalidAlerts("; ".join(shown) + more)
    return alerts


@dataclass(frozen=True)
class Stored:
    """One Alertmanager alert as the family keeps it between pushes."""

    key: str
    fingerprint: str
    rule: str
    labels: dict[str, str]
    severity: Severity
    severity_label: str | None
    annotations: dict[str, str]
    generator_url: str
    starts_at: datetime
    ends_at: datetime
    timeout: bool  # ends_at is now + resolve_timeout, not the sender's
    updated_at: datetime
    pushed_by: str

    def firing(self, now: datetime) -> bool:
        return self.ends_at > now


def stored(alert: PushedAlert, *, now: datetime, resolve_timeout: timedelta,
           severity: Severity, pushed_by: str, prior: Stored | None = None) -> Stored:
    """The alert to keep after this push: Alertmanager's merge of the pushed alert with
    the one already kept (the earliest start; a later explicit end of a still-firing alert
    is kept over a timeout end)."""
    ends, timeout = alert.ends_at, False
    if ends is None:
        ends, timeout = now + resolve_timeout, True
    starts = alert.starts_at or (alert.ends_at if alert.ends_at else now)
    if prior is not None:
        starts = min(starts, prior.starts_at)
        if ends > now and not prior.timeout and prior.ends_at > ends:
            ends, timeout = prior.ends_at, False
    return Stored(alert.key, alert.fingerprint, alert.rule, dict(alert.labels), severity,
                  alert.severity_label, dict(alert.annotations), alert.generator_url,
                  starts, ends, timeout, now, pushed_by)


def settle(kept: Sequence[Stored], now: datetime) -> tuple[Observation, list[str]]:
    """One alert instance's observation from every Alertmanager alert it has, and the
    keys of those that ended (to forget once the observation is decided).

    Firing while any is (at the highest severity among them, its annotations); else
    ``ok``, with the alert that ended last.
    """
    if not kept:
        raise ValueError("settle needs at least one alert")
    active = [s for s in kept if s.firing(now)]
    ended = [s.key for s in kept if not s.firing(now)]
    if active:
        top = max(active, key=lambda s: (s.severity.rank, s.updated_at))
        return observation(top, Status.ALERT), ended
    last = max(kept, key=lambda s: (s.ends_at, s.updated_at))
    return observation(last, Status.OK), ended


def summary_of(rule: str, annotations: dict[str, str]) -> str:
    return annotations.get("summary") or annotations.get("description") or rule


def first_steps(annotations: dict[str, str], generator_url: str,
                severity_label: str | None) -> str:
    """What the message shows of the annotations beyond the summary and links: the
    description and every other annotation, the source's link, a severity label that is
    not one of ours. Receivers show it as the alert's first steps."""
    lines = []
    if annotations.get("summary") and annotations.get("description"):
        lines.append(annotations["description"])
    lines += [f"{name}: {text}" for name, text in sorted(annotations.items())
              if name not in _PLACED]
    if severity_label is not None and severity_label.lower() not in {s.value for s in Severity}:
        lines.append(f"severity label: {severity_label}")
    if generator_url and annotations.get("dashboard_url"):  # else it is the dashboard link
        lines.append(f"Source: {generator_url}")
    return "\n".join(lines)


def observation(alert: Stored, status: Status) -> Observation:
    """The engine's view of a pushed alert: ``alert`` while firing, ``ok`` once ended."""
    notes = alert.annotations
    summary = summary_of(alert.rule, notes)
    if status == Status.OK and alert.updated_at < alert.ends_at:  # ended unsent, not resolved
        summary = (f"{summary} (not sent again before its end, "
                   f"{alert.ends_at:%Y-%m-%d %H:%M:%S} UTC, so resolved)")
    details: dict[str, Any] = {
        "source": "api",
        "pushed_by": alert.pushed_by,
        "annotations": dict(notes),
        "generator_url": alert.generator_url,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat(),
        "first_steps": first_steps(notes, alert.generator_url, alert.severity_label),
    }
    if alert.severity_label is not None:
        details["severity_label"] = alert.severity_label
    return Observation(alert.rule, status, dict(alert.labels), None, summary=summary,
                       seen="firing" if status == Status.ALERT else "resolved",
                       details=details, severity=alert.severity)
