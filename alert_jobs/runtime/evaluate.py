"""Observations into the engine: render the message, decide, persist — one path for all.

Every family's run, the CLI and the Dagster assets hand their observations to
:func:`process_observations` (one rule) or :func:`process_batch` (many rules of one
run, written together), so there is exactly one way from a check to a notification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.core.engine import Decision, RulePolicy
from alert_jobs.core.model import AlertRecord, AlertState, Observation, Status, alert_labels
from alert_jobs.core.routing import Router
from alert_jobs.notify.audience import audience_views
from alert_jobs.notify.links import action_links
from alert_jobs.notify.render import build_message
from alert_jobs.store import ProcessResult, Timeline


def policy_for(rules: RulesFile, rule: RuleBase) -> RulePolicy:
    return RulePolicy(
        rule=rule.name,
        severity=rule.severity,
        for_=rule.for_,
        keep_firing_for=rule.keep_firing_for,
        repeat_interval=rules.repeat_interval_for(rule),
        nodata=rule.nodata,
        error=rule.error,
        enabled=rule.enabled,
        receivers=tuple(rule.receivers or ()),  # empty: the route tree (or defaults) decides
    )


def repeat_interval_of(rules: RulesFile, rule: RuleBase, labels: dict[str, str],
                       router: Router) -> timedelta:
    """How often a still-firing alert with ``labels`` is sent again: the rule's own
    ``repeat_interval``, else the shortest of the routes it goes to (Alertmanager sets it
    on routes; each route inherits its parent's, the root ``defaults.repeat_interval``).

    The engine decides repeats per alert instance, not per receiver, so an alert that two
    routes with different intervals receive repeats at the shorter one.
    """
    if rule.repeat_interval is not None:
        return rule.repeat_interval
    targets = router.targets(labels, rules.direct_receivers(rule.name))
    return min((t.repeat_interval for t in targets), default=rules.defaults.repeat_interval)


@dataclass(frozen=True)
class RuleOutcome:
    """What one evaluation saw and decided."""

    observation: Observation
    result: ProcessResult

    @property
    def state(self) -> AlertState:
        return self.result.decision.record.state


def process_observation(
    rules: RulesFile, rule: RuleBase, timeline: Timeline, obs: Observation, *,
    now: datetime, run_id: str | None, why: str = "",
) -> RuleOutcome:
    """Render the message for ``obs`` and let the engine decide, in one transaction."""
    return process_observations(rules, rule, timeline, [(obs, why)], now=now, run_id=run_id)[0]


def process_observations(
    rules: RulesFile, rule: RuleBase, timeline: Timeline,
    observations: list[tuple[Observation, str]], *, now: datetime, run_id: str | None,
    flush: bool = True,
) -> list[RuleOutcome]:
    """Several observations of one rule (with their 'why it matters' text) in one transaction."""
    return process_batch(rules, timeline, [(rule, obs, why) for obs, why in observations],
                         now=now, run_id=run_id, chunk=max(1, len(observations)), flush=flush)


#: Decisions per transaction in :func:`process_batch`: long enough to save most commits,
#: short enough that a transaction holds its row locks (and SQLite its write lock) for a
#: fraction of a second, so a concurrent run or an operator's ack is not kept waiting.
BATCH_CHUNK = 200


def process_batch(
    rules: RulesFile, timeline: Timeline,
    evaluations: Sequence[tuple[RuleBase, Observation, str]], *, now: datetime,
    run_id: str | None, chunk: int = BATCH_CHUNK, flush: bool = True,
) -> list[RuleOutcome]:
    """Observations of many rules (``(rule, observation, why)``), decided and written
    together: one ``process_many`` transaction per ``chunk`` of them, each with its own
    rule's policy, the same message and action links as :func:`process_observations`.

    Each chunk flushes the notification groups it queued into that are due (with
    ``flush``; without, delivery's ``flush_due`` does).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    router = rules.router()
    links = links_for(rules, now)
    policies: dict[tuple[str, tuple[tuple[str, str], ...]], RulePolicy] = {}
    outcomes: list[RuleOutcome] = []
    for start in range(0, len(evaluations), chunk):
        part = evaluations[start:start + chunk]
        items = []
        for rule, obs, why in part:
            labels = {**obs.labels, "alertname": rule.name,
                      "severity": str(obs.severity or rule.severity)}
            key = (rule.name, tuple(sorted(labels.items())))
            if key not in policies:
                policies[key] = replace(policy_for(rules, rule), repeat_interval=(
                    repeat_interval_of(rules, rule, labels, router)))
            items.append((obs, policies[key], _message(rules, rule, obs, why, run_id)))
        results = timeline.alerts.process_many(items, now=now, run_id=run_id, router=router,
                                               flush=flush, links=links)
        outcomes += [RuleOutcome(obs, replace(result, decision=routed(result.decision, router)))
                     for (_, obs, _), result in zip(part, results, strict=True)]
    return outcomes


def _message(rules: RulesFile, rule: RuleBase, obs: Observation, why: str,
             run_id: str | None) -> dict[str, Any]:
    """The notification text for ``obs`` (rendered before the engine decides whether it
    is sent: the decision and the message are written in one transaction)."""
    notes = rule.annotations_for(obs.labels)  # a segment may have its own
    audience = notes.audience
    # Every audience's words travel in the message; receivers without an audience of
    # their own show the rule's audience's (its text, metrics and dashboard).
    views = audience_views(notes, obs)
    own = views.get(audience, {"text": "", "dashboard_url": notes.dashboard_url})
    return build_message(
        obs, severity=obs.severity or rule.severity, description=rule.description,
        why=notes.why or why, runbook_url=notes.runbook_url,
        dashboard_url=own["dashboard_url"], dagster_url=rules.defaults.dagster_url,
        run_id=run_id, audience=audience, audience_text=own["text"], audiences=views,
    )


def links_for(rules: RulesFile, now: datetime) -> Callable[[AlertRecord], Mapping[str, object]]:
    """The signed action links of a message, made per alert once the engine has decided
    its episode (evaluations and fire drills alike: a drill checks that ack works too)."""

    def links(record: AlertRecord) -> Mapping[str, object]:
        """The message's action links, bound to the episode the engine just decided: a
        firing message can disable the rule, a resolve asks "how did it go?"."""
        file, line = rules.rule_location(record.rule)
        return action_links(record.fingerprint, record.rule, episode=record.episode,
                            fired_at=record.fired_at, base_url=rules.defaults.action_base_url,
                            now=now, ttl=rules.defaults.action_link_ttl, rule_path=file,
                            rule_line=line, edit_url=rules.defaults.edit_url,
                            resolved=record.state == AlertState.RESOLVED,
                            incident_ttl=rules.incidents.link_ttl)

    return links


def routed(decision: Decision, router: Router) -> Decision:
    """``decision`` with each notification naming the receivers it was queued for.

    The engine only knows a rule's own ``receivers:``; when a rule has none, the route
    tree decides (in the store, as it queues). The run log line (``Decision.describe``:
    ``notify firing (first) → oncall, payments``) must say who was told, so the routes
    are resolved here the way the store resolved them, after the fact.
    """
    if not decision.notifications:
        return decision
    labels = alert_labels(decision.record, decision.record.severity)
    notes = [replace(n, receivers=tuple(dict.fromkeys(
        t.receiver for t in router.targets(labels, n.receivers))))
        for n in decision.notifications]
    return replace(decision, notifications=notes)



def resolve_vanished(rules: RulesFile, rule: RuleBase, timeline: Timeline, produced: set[str],
                     *, now: datetime, run_id: str | None, flush: bool = True,
                     within: Mapping[str, str] | None = None) -> list[RuleOutcome]:
    """Resolve the rule's open alerts that this evaluation no longer produces.

    Editing a rule's ``labels`` (or turning one of a target's checks off) changes which
    alert instances exist; the old ones would otherwise stay firing forever and never
    send their resolve. Call only with a *complete* evaluation (not after a source
    error, which says nothing about the other instances). ``within``: only instances
    with these labels were evaluated (one segment of a rule); the others are left.
    """
    # The rule's own open alerts, by the rule index: a batch calls this per target or
    # segment, and reading every open alert each time grew with the whole timeline.
    scope = within or {}
    stale = [a for a in timeline.alerts.active_of(rule.name) if a.fingerprint not in produced
             and all(a.labels.get(k) == v for k, v in scope.items())]
    items = [(vanished(a), "") for a in stale]
    if not items:
        return []
    return process_observations(rules, rule, timeline, items, now=now, run_id=run_id,
                                flush=flush)


def vanished(record: AlertRecord) -> Observation:
    """The ``ok`` observation that resolves an alert instance no longer evaluated."""
    return Observation(record.rule, Status.OK, dict(record.labels), None,
                       summary="This alert instance is no longer evaluated (the rule's "
                               "labels or checks changed), so it is resolved.")
