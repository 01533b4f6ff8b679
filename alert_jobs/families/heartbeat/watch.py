"""The alerting system watching itself: the dead-man ping and the instance-watch rules.

Dagster itself sends no alert for a failed run, a failed asset check or a failed
sensor/schedule tick (Dagster+ does); :mod:`~alert_jobs.families.heartbeat.instance_watch`
turns each into an observation of one of the rules below, fed to the one engine like any
other alert.

Who watches the watcher: every heartbeat sensor tick pings ``deadman_url`` (e.g. a
Healthchecks check). When the daemon stops, the pings stop, and *that* service pages.
The URL is a secret of sorts (anyone with it can keep the check green): it is never
logged, and failures are reported by exception type only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import httpx

from alert_jobs.config import RuleBase, RulesFile, SecretMissingError, resolve
from alert_jobs.core.model import Observation, Status
from alert_jobs.families.heartbeat.config import (
    ASSET_CHECK_FAILED,
    CHECK_STALE,
    LOCATION_FAILED,
    RUN_FAILED,
    RUN_HUNG,
    TICK_FAILED,
    SelfMonitoring,
)
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations
from alert_jobs.store import Timeline

WHY = {
    RUN_FAILED: "A failed run means what it should have produced is missing or stale; "
                "open-source Dagster tells no one.",
    ASSET_CHECK_FAILED: "A data-quality check of an asset failed; downstream users may be "
                        "reading bad data.",
    TICK_FAILED: "A sensor or schedule that fails its ticks launches nothing: every job "
                 "it drives silently stops.",
    CHECK_STALE: "A check that stopped running raises nothing: what it watches is "
                 "unwatched until someone notices.",
    RUN_HUNG: "A hung run evaluates nothing, and while it runs its batch's ticks start "
              "no run: every rule of the batch is unwatched.",
    LOCATION_FAILED: "A code location that does not load runs none of its schedules, "
                     "sensors or jobs.",
}
DESCRIPTIONS = {
    RUN_FAILED: "A Dagster run failed (any code location of the instance)",
    ASSET_CHECK_FAILED: "A Dagster asset check failed (any asset of the instance)",
    TICK_FAILED: "A Dagster sensor or schedule tick failed",
    CHECK_STALE: "A scheduled check was not evaluated within its freshness window",
    RUN_HUNG: "A Dagster run has been in progress longer than its limit",
    LOCATION_FAILED: "A Dagster code location fails to load",
}


def instance_rule(rules: RulesFile, name: str) -> RuleBase:
    """The rule behind one kind of instance alert; severity and receivers from config.
    An asset check's own WARN/ERROR severity overrides the severity per observation."""
    sm = rules.section(SelfMonitoring)
    # A location answers "failed" for a moment while it is redeployed (its code server
    # restarting): only one that still fails two looks later pages.
    held = 2 * sm.watch_interval if name == LOCATION_FAILED else timedelta(0)
    return RuleBase.model_validate({"name": name, "severity": sm.severity,
                                    "receivers": sm.receivers,
                                    "description": DESCRIPTIONS[name], "for": held})


def report(rules: RulesFile, timeline: Timeline, observations: list[Observation], *,
           now: datetime, run_id: str | None = None,
           outbox_ids: list[int] | None = None) -> list[RuleOutcome]:
    """Feed instance observations to the engine, one batch per rule, then flush groups
    (the ids of the outbox rows flushed are added to ``outbox_ids``, if given)."""
    by_rule: dict[str, list[tuple[Observation, str]]] = defaultdict(list)
    for obs in observations:
        by_rule[obs.rule].append((obs, WHY.get(obs.rule, "")))
    outcomes: list[RuleOutcome] = []
    for name, items in by_rule.items():
        outcomes += process_observations(rules, instance_rule(rules, name), timeline, items,
                                         now=now, run_id=run_id, flush=False)
    if outcomes:
        flushed = timeline.outbox.flush_due(router=rules.router(), now=now, run_id=run_id)
        if outbox_ids is not None:
            outbox_ids += flushed
    return outcomes


def active_fingerprints(timeline: Timeline, rule_names: tuple[str, ...]) -> set[str]:
    """Fingerprints of open alerts of these rules: only they need an ok observation."""
    return {a.fingerprint for a in timeline.alerts.list() if a.rule in rule_names}


def ping_deadman(rules: RulesFile, *, body: str = "") -> str | None:
    """Ping the external dead-man URL; None if sent (or none configured), else why not.

    Short timeout and no exception out of here: a slow watcher must never fail the tick.
    """
    sm = rules.section(SelfMonitoring)
    if sm.deadman_url is None:
        return None
    try:
        url = resolve(sm.deadman_url)
        response = httpx.post(url, content=body.encode(),
                              timeout=sm.deadman_timeout.total_seconds())
    except SecretMissingError as exc:
        return f"dead-man URL not set: {exc}"
    except Exception as exc:
        return f"dead-man ping failed: {type(exc).__name__}"
    if response.status_code >= 400:
        return f"dead-man ping refused: HTTP {response.status_code}"
    return None


__all__ = ["ASSET_CHECK_FAILED", "CHECK_STALE", "LOCATION_FAILED", "RUN_FAILED", "RUN_HUNG",
           "TICK_FAILED", "Status", "active_fingerprints",
           "instance_rule", "ping_deadman", "report"]
