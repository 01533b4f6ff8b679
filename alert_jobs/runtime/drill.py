"""Fire drills: page for a rule on purpose and check that the page arrives, in time.

A threshold made artificially bad (the ML alerting guide's advice) proves that the
people a rule routes to are still reachable: receiver URLs rot, tokens expire, routes
get edited. :func:`run_drill` does it through the real path, so what it proves holds
for a real alert:

1. **Inject.** The rule's own alert, with one extra label ``drill="<id>"``
   (:data:`~alert_jobs.store.episodes.DRILL_LABEL`), goes through the engine
   (``alert_store.process_many``) with the rule's policy but ``for`` set to zero. The
   extra label gives it its own fingerprint: the real alert instance is never touched.
   Routing is the rules file's, with two changes for the drill (:class:`DrillRouter`):
   ``drill`` joins ``group_by``, so the drill is never merged into a real alert's group
   message, and ``group_wait``/``group_interval`` are zero, so it is sent at once.
   Suppression is real: a silence or an inhibition that mutes the rule mutes the drill,
   and the drill fails saying so (it would have muted the real page too).
2. **Deliver** through the configured receivers (:func:`alert_jobs.runtime.deliver.deliver`,
   scoped to the drill's outbox rows), with every message marked as a drill: the summary
   starts with ``[DRILL]``, each alert of the group carries ``drill: <id>`` (the webhook
   adds it as an annotation), and every receiver's headline starts ``[DRILL]``.
3. **Confirm** from the outbox: per routed receiver, when its row was delivered
   (seconds from injection), or the error it failed with. A failed row stays in the
   outbox and is retried by the usual rules: the drill reports the failure, nothing is
   dropped.
4. **Resolve** the drill alert (the resolve goes out like any resolve) and record
   ``drill_started`` / ``drill_finished`` events (``drill_finished`` has per-receiver
   seconds and pass/fail in its payload, actor = who ran it).

**What is measured**: injection → delivery, i.e. the path from a firing decision to
the page. The drill skips ``for`` and the wait for the next evaluation, so it is held to
:func:`~alert_jobs.runtime.sla.delivery_budget`: the rule's SLA minus ``for`` minus its
evaluation interval (group_wait + 1 minute by default). A drill passes when every routed
receiver got the firing message within that budget and the resolve was delivered too.

Drill alerts get no quality episode (see :mod:`alert_jobs.store.episodes`), so they
never move the actionable rate; :func:`last_drills` reads their results back for the
quality reports ("last drill 3 days ago, paged in 4.2 s"). A drill run with
``alert_on_failure`` (the schedule's) raises the ``fire_drill_failed`` alert on the
fallback receiver when it fails, which resolves when the rule's next drill passes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alert_jobs.config import RuleBase, RulesFile
from alert_jobs.config.drills import FIRE_DRILL_FAILED
from alert_jobs.core.durations import short_duration
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.core.routing import Router, RouteTarget
from alert_jobs.notify.render import build_message
from alert_jobs.runtime.deliver import DeliveryReport, deliver
from alert_jobs.runtime.evaluate import links_for, policy_for
from alert_jobs.runtime.sla import delivery_budget, notify_sla
from alert_jobs.store import Timeline, utcnow
from alert_jobs.store.episodes import DRILL_LABEL

__all__ = ["DRILL_FINISHED", "DRILL_LABEL", "DRILL_STARTED", "FAILED_RULE", "DrillError",
           "DrillResult", "DrillRouter", "DrillSummary", "ReceiverResult", "last_drills",
           "run_drill"]

DRILL_STARTED = "drill_started"
DRILL_FINISHED = "drill_finished"
#: The alert a failed (or too slow) scheduled drill raises on the fallback receiver.
FAILED_RULE = FIRE_DRILL_FAILED
#: Prefix of every drill message's summary (and of each receiver's headline).
MARK = "[DRILL]"


class DrillError(ValueError):
    """A drill that cannot start (an unknown rule): the request was wrong."""


class DrillRouter(Router):
    """The rules file's routing, for a drill: same receivers and inhibition, but the
    drill label joins ``group_by`` (its own group, never merged into a real alert's
    message) and ``group_wait``/``group_interval`` are zero (sent at once, firing and
    resolve)."""

    def __init__(self, base: Router) -> None:
        vars(self).update(vars(base))
        self._base = base

    def targets(self, labels: dict[str, str],
                direct_receivers: Sequence[str] | None = None) -> list[RouteTarget]:
        return [replace(t, group_by=t.group_by if t.group_by == ("...",)
                        else (*t.group_by, DRILL_LABEL),
                        group_wait=timedelta(0), group_interval=timedelta(0))
                for t in self._base.targets(labels, direct_receivers)]


@dataclass(frozen=True)
class ReceiverResult:
    """One routed receiver's part of a drill."""

    receiver: str
    seconds: float | None = None  # injection → delivered; None: not delivered
    error: str | None = None  # why not (the receiver's answer, or "not queued: …")
    resolved: bool = False  # the resolve was delivered too

    @property
    def delivered(self) -> bool:
        return self.seconds is not None

    def as_json(self) -> dict[str, Any]:
        return {"receiver": self.receiver, "seconds": self.seconds, "error": self.error,
                "resolved": self.resolved}


@dataclass(frozen=True)
class DrillResult:
    """What one drill found; ``passed`` decides the CLI's exit code and the job's status."""

    drill_id: str
    rule: str
    fingerprint: str
    started_at: datetime
    sla: timedelta
    budget: timedelta
    receivers: list[ReceiverResult]
    by: str
    muted_by: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def slowest(self) -> float | None:
        """Seconds until the last routed receiver had it ("paged in"), if all did."""
        times = [r.seconds for r in self.receivers]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The report, one line per receiver, for the CLI and the Dagster run log."""
        verdict = "PASSED" if self.passed else "FAILED"
        head = (f"drill {self.drill_id} of {self.rule}: {verdict} (budget "
                f"{_seconds(self.budget.total_seconds())} from firing to page; SLA "
                f"{short_duration(self.sla)})")
        out = [head]
        for r in self.receivers:
            if r.delivered:
                late = r.seconds is not None and r.seconds > self.budget.total_seconds()
                text = f"delivered in {_seconds(r.seconds)}" + (" (too slow)" if late else "")
                text += "; resolve sent" if r.resolved else "; resolve NOT delivered"
            else:
                text = f"FAILED: {r.error}"
            out.append(f"  {r.receiver}: {text}")
        out += [f"  problem: {p}" for p in self.problems]
        return out

    def payload(self) -> dict[str, Any]:
        return {"drill": self.drill_id, "passed": self.passed, "sla_seconds":
                self.sla.total_seconds(), "budget_seconds": self.budget.total_seconds(),
                "slowest_seconds": self.slowest, "muted_by": self.muted_by,
                "receivers": [r.as_json() for r in self.receivers], "problems": self.problems}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def drill_observation(rule: RuleBase, drill_id: str, status: Status) -> Observation:
    """The rule's alert with the drill label: bad (``ALERT``) to inject, ``OK`` to resolve."""
    labels = {**rule.labels, DRILL_LABEL: drill_id}
    if status == Status.OK:
        return Observation(rule.name, Status.OK, labels, None,
                           summary=f"{MARK} Fire drill {drill_id} is over: nothing was wrong.")
    return Observation(
        rule.name, Status.ALERT, labels, None,
        summary=f"{MARK} Fire drill {drill_id} for {rule.name}: this alert was injected on "
                "purpose to check that it reaches you. Nothing is wrong; no action needed.",
        expected="a page within the rule's SLA", seen="a drill")


def _message(rules: RulesFile, rule: RuleBase, obs: Observation, drill_id: str,
             run_id: str | None) -> dict[str, Any]:
    notes = rule.annotations_for(obs.labels)
    message = build_message(
        obs, severity=rule.severity, description=rule.description,
        why=f"{MARK} A fire drill checks that this rule's page reaches its people. "
            + (notes.why or ""),
        runbook_url=notes.runbook_url, dashboard_url=notes.dashboard_url,
        dagster_url=rules.defaults.dagster_url, run_id=run_id, audience=notes.audience)
    message["drill"] = drill_id
    return message


def run_drill(rules: RulesFile, timeline: Timeline, rule_name: str, *, by: str,
              run_id: str | None = None, source: str = "cli",
              alert_on_failure: bool = False, drill_id: str | None = None) -> DrillResult:
    """Fire drill of one rule, end to end (see the module docstring); never raises for
    a failed delivery (that is the drill's finding), :class:`DrillError` for an unknown
    rule."""
    try:
        rule = rules.rule(rule_name)
    except KeyError as exc:
        raise DrillError(exc.args[0]) from None
    drill_id = drill_id or uuid.uuid4().hex[:12]
    sla, budget = notify_sla(rules, rule), delivery_budget(rules, rule)
    router = DrillRouter(rules.router())
    policy = replace(policy_for(rules, rule), for_=timedelta(0), keep_firing_for=timedelta(0))
    bad = drill_observation(rule, drill_id, Status.ALERT)
    labels = {**bad.labels, "alertname": rule.name, "severity": str(rule.severity)}
    routed = list(dict.fromkeys(t.receiver for t in router.targets(labels, policy.receivers)))
    timeline.events.record(
        DRILL_STARTED, f"fire drill {drill_id} of {rule.name} started by {by}",
        fingerprint=bad.fingerprint, rule=rule.name, actor=by, source=source, run_id=run_id,
        payload={"drill": drill_id, "receivers": routed, "sla_seconds": sla.total_seconds(),
                 "budget_seconds": budget.total_seconds()})

    injected = utcnow()
    fired = _process(rules, timeline, router, rule, policy, bad, drill_id, run_id, injected)
    decision = fired.decision
    sent = deliver(rules, timeline, run_id=run_id, raised_by=run_id, ids=fired.outbox_ids)
    firing_rows = _rows(timeline, fired.outbox_ids)

    good = drill_observation(rule, drill_id, Status.OK)
    resolved = _process(rules, timeline, router, rule, policy, good, drill_id, run_id,
                        utcnow())
    sent.merge(deliver(rules, timeline, run_id=run_id, raised_by=run_id,
                       ids=resolved.outbox_ids))
    resolve_rows = _rows(timeline, resolved.outbox_ids)

    muted = decision.muted_by if not decision.notifications else None
    results = [_receiver_result(name, firing_rows, resolve_rows, injected, muted)
               for name in routed]
    problems = _problems(results, budget, muted, sla, rule)
    result = DrillResult(drill_id, rule.name, bad.fingerprint, injected, sla, budget,
                         results, by, muted, problems)
    verdict = "passed" if result.passed else "FAILED"
    timeline.events.record(
        DRILL_FINISHED, f"fire drill {drill_id} of {rule.name} {verdict}"
        + (f": paged in {_seconds(result.slowest)}" if result.passed else
           f": {'; '.join(problems)}"),
        fingerprint=bad.fingerprint, rule=rule.name, actor=by, source=source, run_id=run_id,
        payload=result.payload())
    if alert_on_failure:
        _failure_alert(rules, timeline, result, run_id=run_id)
    return result


@dataclass(frozen=True)
class _Processed:
    decision: Any
    outbox_ids: list[int]


def _process(rules: RulesFile, timeline: Timeline, router: Router, rule: RuleBase,
             policy: RulePolicy, obs: Observation, drill_id: str, run_id: str | None,
             now: datetime) -> _Processed:
    message = _message(rules, rule, obs, drill_id, run_id)
    result = timeline.alerts.process_many([(obs, policy, message)], now=now, run_id=run_id,
                                          router=router, flush=True, links=links_for(rules, now))
    return _Processed(result[0].decision, list(result[0].outbox_ids))


def _rows(timeline: Timeline, ids: list[int]) -> dict[str, dict[str, Any]]:
    """The outbox rows with ``ids``, by receiver (a drill's group has one per receiver)."""
    wanted = set(ids)
    return {r["receiver"]: r for r in timeline.outbox.rows() if r["id"] in wanted}


def _receiver_result(name: str, firing: dict[str, dict[str, Any]],
                     resolve: dict[str, dict[str, Any]], injected: datetime,
                     muted: str | None) -> ReceiverResult:
    row = firing.get(name)
    if row is None:
        why = f"not queued: {muted}" if muted else "not queued"
        return ReceiverResult(name, error=why)
    back = resolve.get(name)
    resolved = back is not None and back["delivered_at"] is not None
    if row["delivered_at"] is None:
        error = row["last_error"] or "not delivered"
        state = "gave up" if row["failed_at"] is not None else "the outbox retries it"
        return ReceiverResult(name, error=f"{error} ({state})", resolved=resolved)
    seconds = max(0.0, (row["delivered_at"] - injected).total_seconds())
    return ReceiverResult(name, seconds=seconds, resolved=resolved)


def _problems(results: list[ReceiverResult], budget: timedelta, muted: str | None,
              sla: timedelta, rule: RuleBase) -> list[str]:
    problems: list[str] = []
    if muted:
        problems.append(f"the drill alert was muted ({muted}): a real alert would be too")
    if not results:
        problems.append("the rule routes to no receiver")
    if budget <= timedelta(0):
        problems.append(f"the rule's sla ({short_duration(sla)}) is shorter than its for "
                        f"({short_duration(rule.for_)}) + evaluation interval: it cannot "
                        "be met")
    for r in results:
        if not r.delivered:
            problems.append(f"{r.receiver} did not get the page: {r.error}")
        elif r.seconds is not None and r.seconds > budget.total_seconds():
            problems.append(f"{r.receiver} got the page in {_seconds(r.seconds)}, over the "
                            f"budget of {_seconds(budget.total_seconds())}")
        elif not r.resolved:
            problems.append(f"{r.receiver} did not get the resolve")
    return problems


def _failure_alert(rules: RulesFile, timeline: Timeline, result: DrillResult, *,
                   run_id: str | None) -> DeliveryReport:
    """Raise (or resolve) ``fire_drill_failed{rule=…}`` on the fallback receiver, through
    the engine like ``receiver_broken``: it repeats while failing and resolves when the
    rule's next drill passes."""
    fallback = rules.fallback_receiver()
    policy = RulePolicy(rule=FAILED_RULE, severity=Severity.CRITICAL, receivers=(fallback,),
                        repeat_interval=rules.defaults.repeat_interval)
    labels = {"rule": result.rule}
    if result.passed and not any(a.rule == FAILED_RULE and a.labels == labels
                                 for a in timeline.alerts.list()):
        return DeliveryReport()  # nothing to resolve: no row for a rule never failed
    if result.passed:
        obs = Observation(FAILED_RULE, Status.OK, labels, result.slowest,
                          summary=f"The fire drill of {result.rule} passed: paged in "
                                  f"{_seconds(result.slowest)}")
        why = ""
    else:
        budget = _seconds(result.budget.total_seconds())
        obs = Observation(FAILED_RULE, Status.ALERT, labels, result.slowest,
                          summary=f"Expected the fire drill of {result.rule} to page every "
                                  f"routed receiver within {budget}; it did not: "
                                  f"{'; '.join(result.problems)}",
                          expected=f"every receiver within {budget}",
                          seen="; ".join(result.problems), severity=Severity.CRITICAL)
        why = (f"When {result.rule} fires for real, its people may not be told in time "
               "(or at all).")
    message = build_message(obs, severity=Severity.CRITICAL, why=why,
                            dagster_url=rules.defaults.dagster_url, run_id=run_id)
    out = timeline.alerts.process_many([(obs, policy, message)], now=utcnow(), run_id=run_id,
                                       router=rules.router(), flush=True)
    return deliver(rules, timeline, run_id=run_id, raised_by=run_id, ids=out[0].outbox_ids)


# ----- reading results back (quality reports) ---------------------------------------


@dataclass(frozen=True)
class DrillSummary:
    """A rule's last drill, as the quality reports show it."""

    rule: str
    at: datetime
    passed: bool
    slowest: float | None
    problems: list[str]

    def text(self, now: datetime) -> str:
        """``last drill 3 days ago, paged in 4.2 s`` (or ``… FAILED: why``)."""
        ago = _ago(now - self.at)
        if self.passed:
            return f"last drill {ago} ago, paged in {_seconds(self.slowest)}"
        return f"last drill {ago} ago FAILED: {'; '.join(self.problems) or 'see the timeline'}"


NEVER = "never drilled"


def _ago(delta: timedelta) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``: the largest unit is enough here."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return "0 seconds"  # pragma: no cover - the loop always returns


def last_drills(timeline: Timeline, *, limit: int = 5000) -> dict[str, DrillSummary]:
    """Each rule's most recent finished drill, from the ``drill_finished`` events."""
    out: dict[str, DrillSummary] = {}
    for event in timeline.events.list(kinds=[DRILL_FINISHED], limit=limit):
        payload = event.get("payload") or {}
        rule = event.get("rule") or ""
        out[rule] = DrillSummary(rule, event["at"], bool(payload.get("passed")),
                                 payload.get("slowest_seconds"),
                                 list(payload.get("problems") or []))
    return out


def drill_text(drills: Mapping[str, DrillSummary], rule: str, now: datetime | None = None
               ) -> str:
    """The one-line drill status of ``rule`` ("never drilled" when it never was)."""
    found = drills.get(rule)
    return found.text(now or utcnow()) if found is not None else NEVER
