"""``rules_file_invalid``: the system tells people when its own rules file is broken.

The code location keeps running on the last good copy (:mod:`alert_jobs.config.last_good`);
this alert, raised by the heartbeat sensor on every tick while the file is broken, names
every problem (file, YAML path, line), and resolves once the file loads again.
"""

from __future__ import annotations

from datetime import datetime

from alert_jobs.config import LoadedRules, RuleBase
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.families.heartbeat.config import RULES_FILE_INVALID
from alert_jobs.runtime.evaluate import RuleOutcome, process_observations
from alert_jobs.store import Timeline

RULE = RULES_FILE_INVALID
WHY = ("Until the file is fixed, checks run with the last good copy of the rules: edits "
       "made since then (new rules, thresholds) are not in effect.")


def rules_file_observation(loaded: LoadedRules, path: str) -> Observation:
    labels = {"file": str(path)}
    if loaded.error is None:
        return Observation(RULE, Status.OK, labels, 0.0,
                           summary=f"The rules file {path} is valid again")
    problems = loaded.error.lines()
    return Observation(
        RULE, Status.ALERT, labels, float(len(problems)),
        summary=f"The rules file {path} is invalid ({len(problems)} problem(s)); checks run "
                "with its last good copy:\n" + "\n".join(problems[:20]),
        expected="a valid rules file", seen=f"{len(problems)} problem(s)",
        severity=Severity.CRITICAL)


def report_rules_file(loaded: LoadedRules, path: str, timeline: Timeline, *,
                      now: datetime, run_id: str | None = None) -> list[RuleOutcome]:
    """Fire (or resolve) ``rules_file_invalid`` through the engine, on the fallback
    receiver: the routes themselves may be what is broken."""
    obs = rules_file_observation(loaded, path)
    if obs.status == Status.OK and not any(
            a.rule == RULE and a.labels == obs.labels for a in timeline.alerts.list()):
        return []
    rules = loaded.rules
    rule = RuleBase(name=RULE, severity=Severity.CRITICAL,
                    receivers=[rules.fallback_receiver()],
                    description="The rules file cannot be loaded")
    return process_observations(rules, rule, timeline, [(obs, WHY)], now=now, run_id=run_id)
