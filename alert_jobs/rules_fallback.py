"""A broken rules file must not silence every alert: keep the last good copy.

Before this, one typo in ``alerts.yaml`` made the whole code location fail to load, so
no check ran and nothing paged — the worst time to be quiet. Now every successful load
saves a copy under ``$DAGSTER_HOME``; a failed load falls back to that copy (the checks
keep running with the previous rules), and the heartbeat sensor raises a
``rules_file_invalid`` alert naming every problem (file, YAML path, line) until the file
is fixed. Without a good copy yet (first deploy), the error is raised as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from alert_jobs.config import RuleBase, RulesError, RulesFile, load_rules, parse_rules
from alert_jobs.config_heartbeat import RULES_FILE_INVALID
from alert_jobs.model import Observation, Severity, Status
from alert_jobs.runner import RuleOutcome, process_observations
from alert_jobs.timeline import Timeline

RULE = RULES_FILE_INVALID
WHY = ("Until the file is fixed, checks run with the last good copy of the rules: edits "
       "made since then (new rules, thresholds) are not in effect.")


def last_good_path(rules_file: str | os.PathLike[str]) -> Path:
    """Where the last good copy of ``rules_file`` lives (one per rules file path)."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    key = hashlib.sha256(str(Path(rules_file).resolve()).encode()).hexdigest()[:12]
    return home / f"rules-last-good-{key}.yaml"


@dataclass(frozen=True)
class LoadedRules:
    rules: RulesFile
    error: RulesError | None = None  # set when ``rules`` is the last good copy

    @property
    def from_last_good(self) -> bool:
        return self.error is not None


def load_rules_or_last_good(path: str | os.PathLike[str]) -> LoadedRules:
    """The rules file, else its last good copy (with the error); raises if neither."""
    copy = last_good_path(path)
    try:
        rules = load_rules(path)
    except RulesError as exc:
        try:
            text = copy.read_text(encoding="utf-8")
        except OSError:
            raise exc from None
        return LoadedRules(parse_rules(text, f"{path} (last good copy)"), exc)
    try:
        text = Path(path).read_text(encoding="utf-8")
        if not copy.exists() or copy.read_text(encoding="utf-8") != text:
            copy.parent.mkdir(parents=True, exist_ok=True)
            tmp = copy.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            # the file may hold inline secrets: the copy is no more readable than it
            shutil.copymode(path, tmp)
            tmp.replace(copy)  # atomic: a reader never sees half a file
    except OSError:
        pass  # a read-only home only costs the fallback, never the load
    return LoadedRules(rules)


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
            a.rule == RULE and a.labels == obs.labels for a in timeline.alerts()):
        return []
    rules = loaded.rules
    rule = RuleBase(name=RULE, severity=Severity.CRITICAL,
                    receivers=[rules.fallback_receiver()],
                    description="The rules file cannot be loaded")
    return process_observations(rules, rule, timeline, [(obs, WHY)], now=now, run_id=run_id)
