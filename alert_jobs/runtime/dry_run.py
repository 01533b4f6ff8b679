"""Dry run against the live source: what a rule would do now, with changed thresholds.

``alert-jobs rules test --live RULE --set max=0`` answers "if I set this threshold,
would it page, whom, and with what text?" without waiting for a real incident and
without paging anyone. It evaluates the rule through its family's real ``evaluate``
hook (the real query, Redis INFO, …), so what it shows is what a run would do, with
two differences that the output states:

* the decisions go to a *throwaway* timeline (a migrated SQLite file in a temporary
  directory, deleted afterwards): the user's timeline is never opened, so no state,
  event, baseline or outbox row changes, and nothing is delivered;
* ``for`` is treated as already elapsed (a single evaluation cannot wait it out), so a
  bad value shows the notification it would send once ``for`` has passed.

``--set KEY=VALUE`` takes the keys ``alert-jobs rules backtest`` takes (the family's
``threshold_keys`` plus ``for`` and ``keep_firing_for``), checked by the family's
``rejudge`` hook first (the backtest's messages), then placed on the rule model where
the field of that name lives (sql_metric ``max`` is ``expect.max``, ``width`` is
``expect.baseline.width``; ``threshold``/``critical``/``warning`` are the rule's single
bound) and the rule is validated again, so a bad value is a clear ``ValueError``.

Messages are what delivery would send: the groups the throwaway timeline queued are
flushed (their group wait treated as elapsed too) and each outbox row is rendered by its
receiver (``Receiver.render``: the body it would post, never the address it posts to).
Silences, acks and inhibitions in the real timeline are not consulted.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.durations import format_duration
from alert_jobs.core.model import AlertState, alert_labels
from alert_jobs.notify.registry import build_receivers
from alert_jobs.runtime.family import Family, family_of
from alert_jobs.store import Timeline

#: Keys every rule takes (the backtest's timing keys).
TIMING_KEYS = ("for", "keep_firing_for")
#: Keys that name a rule's single bound rather than a field (sql_metric's aliases).
BOUND_ALIASES = ("threshold", "critical", "warning")
#: How far past ``now`` the throwaway timeline's notification groups are flushed: every
#: group wait has passed by then, so each queued message comes out.
FLUSH_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Instance:
    """One alert instance the evaluation produced (a rule may produce several)."""

    labels: dict[str, str]
    status: str
    value: float | None
    expected: str
    seen: str
    window: str
    summary: str
    state: str
    severity: str
    would_fire: bool
    receivers: tuple[str, ...]  # whom the routes pick for its labels


@dataclass(frozen=True)
class Rendered:
    """The full message one receiver would get (its ``render`` output, as text)."""

    receiver: str
    type: str
    text: str
    skipped: str = ""  # why the receiver would not send it (e.g. send_resolved off)


@dataclass(frozen=True)
class DryRun:
    rule: str
    family: str
    at: datetime
    overrides: dict[str, str]
    for_: timedelta  # the rule's ``for`` (treated as elapsed)
    instances: list[Instance] = field(default_factory=list)
    messages: list[Rendered] = field(default_factory=list)

    @property
    def would_fire(self) -> bool:
        return any(i.would_fire for i in self.instances)

    def render(self) -> str:
        return format_dry_run(self)


def _field_path(model: BaseModel, key: str) -> list[str] | None:
    """Where the field ``key`` (name or alias) lives: in ``model`` or in a nested model
    (dicts such as ``labels`` are data, not settings, and are not searched)."""
    fields = type(model).model_fields
    for name, info in fields.items():
        if key in (name, info.alias):
            return [info.alias or name]
    for name, info in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            inner = _field_path(value, key)
            if inner is not None:
                return [info.alias or name, *inner]
    return None


def _bound_path(model: BaseModel) -> list[str] | None:
    """The path of a rule's single bound (the one of ``min``/``max`` that is set)."""
    fields = type(model).model_fields
    if "min" in fields and "max" in fields:
        sides = [s for s in ("min", "max") if getattr(model, s) is not None]
        return sides if len(sides) == 1 else None
    for name, info in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            inner = _bound_path(value)
            if inner is not None:
                return [info.alias or name, *inner]
    return None


def _scalar(key: str, text: str) -> Any:
    """A ``--set`` value as YAML would read it in the rules file (``0`` a number, ``10m``
    a duration's text); ``adopt_after=never`` is null, as in the backtest."""
    if key == "adopt_after" and text.lower() in ("null", "never"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(rule: RuleBase, family: Family, overrides: Mapping[str, str]) -> RuleBase:
    """``rule`` with ``--set`` values applied and validated; ValueError says what is wrong."""
    if not overrides:
        return rule
    keys = (*family.threshold_keys, *TIMING_KEYS)
    unknown = [k for k in overrides if k not in keys]
    if unknown:
        raise ValueError(f"--set cannot change {unknown[0]!r} of {family.name} rule "
                         f"{rule.name!r} (use {', '.join(keys)})")
    for key, text in overrides.items():
        if not str(text).strip():
            raise ValueError(f"--set {key}: give a value (--set {key}=VALUE)")
    thresholds = {k: v for k, v in overrides.items() if k not in TIMING_KEYS}
    if thresholds and family.rejudge is not None:
        family.rejudge(rule, thresholds)  # the backtest's checks and messages
    data = rule.model_dump(by_alias=True)
    for key, text in overrides.items():
        path = _bound_path(rule) if key in BOUND_ALIASES else _field_path(rule, key)
        if path is None:
            raise ValueError(f"--set {key}: rule {rule.name!r} has no setting {key!r} "
                             "to change")
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = _scalar(key, text)
    try:
        return type(rule).model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or rule.name}: {e['msg']}"
                             for e in exc.errors())
        raise ValueError(f"--set: {problems}") from None


def _with_rule(rules: RulesFile, family: Family, rule: RuleBase) -> RulesFile:
    """``rules`` with its rule of the same name replaced by ``rule``."""
    section = [rule if r.name == rule.name else r for r in getattr(rules.checks, family.name)]
    checks = rules.checks.model_copy(update={family.name: section})
    return rules.model_copy(update={"checks": checks})


def _text(rendered: Any) -> str:
    if isinstance(rendered, str):
        return rendered
    if isinstance(rendered, EmailMessage):
        return rendered.as_string()
    return json.dumps(rendered, indent=2, ensure_ascii=False, default=str)


def dry_run(rules: RulesFile, rule_name: str, overrides: Mapping[str, str], *,
            now: datetime) -> DryRun:
    """Evaluate ``rule_name`` against its live source now with ``overrides`` applied,
    on a throwaway timeline; what would fire and every receiver's full message.

    LookupError: no such rule (close names listed). ValueError: a ``--set`` key the
    rule does not take or a bad value, or a rule its family evaluates only in its
    sensor (no ``evaluate`` hook).
    """
    rule = rules.rule(rule_name)  # KeyError (a LookupError) names the close ones
    family = family_of(rule)
    if family.evaluate is None:
        raise ValueError(f"rule {rule.name!r} ({family.name}) is evaluated by its sensor, "
                         "not on demand: it cannot be dry-run")
    changed = apply_overrides(rule, family, overrides)
    elapsed = changed.model_copy(update={"for_": timedelta(0)})
    trial = _with_rule(rules, family, elapsed)
    router = trial.router()
    with tempfile.TemporaryDirectory(prefix="alert-jobs-dry-run-") as tmp:
        timeline = Timeline(f"sqlite:///{Path(tmp) / 'dry-run.db'}")
        try:
            timeline.upgrade()
            outcomes = family.evaluate(trial, elapsed, timeline, now=now, run_id=None)
            timeline.outbox.flush_due(router=router, now=now + FLUSH_AFTER)
            rows = timeline.outbox.rows()
        finally:
            timeline.dispose()
    instances = []
    for outcome in outcomes:
        obs, record = outcome.observation, outcome.result.decision.record
        severity = obs.severity or changed.severity
        targets = router.targets(alert_labels(record, severity), tuple(changed.receivers or ()))
        instances.append(Instance(
            labels=dict(obs.labels), status=str(obs.status), value=obs.value,
            expected=obs.expected, seen=obs.seen, window=obs.window, summary=obs.summary,
            state=str(record.state), severity=str(severity),
            would_fire=record.state == AlertState.FIRING,
            receivers=tuple(dict.fromkeys(t.receiver for t in targets))))
    return DryRun(rule=rule.name, family=family.name, at=now, overrides=dict(overrides),
                  for_=changed.for_, instances=instances,
                  messages=_rendered(rules, rows))


def _rendered(rules: RulesFile, rows: Sequence[Mapping[str, Any]]) -> list[Rendered]:
    receivers = build_receivers(rules.receivers)
    out = []
    for row in sorted(rows, key=lambda r: (r["receiver"], r["id"])):
        receiver = receivers.get(row["receiver"])
        if receiver is None:
            out.append(Rendered(row["receiver"], "?", "", skipped="not in the rules file"))
            continue
        group = row["payload"]
        kind = receiver.config.type
        if not receiver.wants(group):
            out.append(Rendered(receiver.name, kind, "", skipped="this receiver does not "
                                "send it (send_resolved off or an acknowledgement)"))
            continue
        out.append(Rendered(receiver.name, kind, _text(receiver.render(receiver.prepare(group)))))
    return out


def _number(value: float | None) -> str:
    if value is None:
        return "no value"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def format_dry_run(d: DryRun) -> str:
    """The dry run as the command prints it."""
    sets = " ".join(f"--set {k}={v}" for k, v in d.overrides.items())
    lines = [f"Dry run of {d.rule} ({d.family}) against its live source at "
             f"{d.at:%Y-%m-%d %H:%M:%S} UTC" + (f", with {sets}" if sets else ""),
             "Nothing was written to the timeline and nothing was sent."]
    if not d.instances:
        lines.append("The evaluation produced no alert instance.")
    for inst in d.instances:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(inst.labels.items()))
        lines += ["", f"Observation{f' {{{labels}}}' if labels else ''}: {inst.status}"]
        seen = inst.seen or _number(inst.value)
        if inst.expected:
            lines.append(f"  value: {seen}, expected {inst.expected}"
                         + (f" (window {inst.window})" if inst.window else ""))
        else:
            lines.append(f"  value: {seen}")
        if inst.summary:
            lines.append(f"  summary: {inst.summary}")
        if inst.would_fire:
            after = (f" — would fire after for: {format_duration(d.for_)} (treated as "
                     "elapsed here)") if d.for_ > timedelta(0) else ""
            lines.append(f"  WOULD FIRE ({inst.severity}){after}")
        else:
            lines.append(f"  would not fire (state {inst.state})")
        picked = ", ".join(inst.receivers) or "no receiver"
        lines.append(f"  routes pick: {picked}")
    for msg in d.messages:
        lines += ["", f"--- message to {msg.receiver} ({msg.type}) ---"]
        lines.append(f"(not sent: {msg.skipped})" if msg.skipped else msg.text)
    if d.instances and not d.messages:
        lines += ["", "No message would be sent."]
    return "\n".join(lines)


__all__ = ["DryRun", "Instance", "Rendered", "apply_overrides", "dry_run",
           "format_dry_run"]
