"""The Dagster side every family shares: the resources, and how results look in the UI.

* :class:`AlertJobsResource`: where the rules file and the timeline database are. The
  rules file is read once per run (:meth:`~AlertJobsResource.load_rules`), so
  editing a threshold takes effect at the next run with no redeploy; adding or renaming
  a rule changes the asset graph and needs a code-location reload.
* :class:`ReceiversResource`: the rules file's receivers as the UI shows them — type,
  name and the environment variables their secrets come from, never a value.

This is the one module of :mod:`alert_jobs.runtime` that imports Dagster.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from alert_jobs.config import (
    RULES_FILE_ENV,
    LoadedRules,
    ReceiverConfig,
    RulesFile,
    env_refs,
    load_rules_or_last_good,
)
from alert_jobs.core.model import Severity, Status
from alert_jobs.store import Timeline, shared_timeline

#: The job that delivers due notifications; sensors of any family request it by name.
DELIVERY_JOB = "deliver_outbox_job"
#: The timeline database as an asset: downstream of every rule asset that writes it.
TIMELINE_KEY = dg.AssetKey("alert_timeline")


class AlertJobsResource(dg.ConfigurableResource):
    """The rules file and the timeline database, injected into every asset, job and sensor.

    ``database_url`` may be an ``EnvVar`` (it holds a password in production); when
    empty, ``$ALERT_JOBS_DATABASE_URL`` or SQLite at ``$DAGSTER_HOME/alerts.db`` is used.
    """

    rules_file: str = Field(
        default_factory=lambda: os.environ.get(RULES_FILE_ENV, "alerts.yaml"),
        description="Path of the rules file (alerts.yaml).",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the timeline database."
    )

    _log: Any = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _run_rules: tuple[str, RulesFile] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._log = context.log  # the run's log: where a fallback must be said
        self._run_id = context.run_id

    def load_rules(self) -> RulesFile:
        """The rules file, else its last good copy (a broken edit keeps checks on); a
        run on the copy says so in its run log, naming every problem of the file.

        Inside a run the file is read once: every step of the run (a large batch is
        several) evaluates the same rules, and a 1,000-rule file is not parsed again
        per step. The next run reads it afresh."""
        if self._run_rules is not None and self._run_rules[0] == self._run_id:
            return self._run_rules[1]
        loaded = load_rules_or_last_good(self.rules_file)
        if loaded.error is not None:
            (self._log or logging.getLogger("alert_jobs.rules")).warning(
                fallback_message(self.rules_file, loaded))
        if self._run_id is not None:
            self._run_rules = (self._run_id, loaded.rules)
        return loaded.rules

    def timeline(self) -> Timeline:
        return shared_timeline(self.database_url or None)


def fallback_message(path: str, loaded: LoadedRules) -> str:
    """What a run on the last good rules writes to its log."""
    lines = loaded.error.lines() if loaded.error is not None else []
    return (f"rules file {path} is invalid ({len(lines)} problem(s)); this run evaluated "
            "on the LAST GOOD COPY of the rules (fallback) until it is fixed:\n  "
            + "\n  ".join(lines))


class ReceiversResource(dg.ConfigurableResource):
    """The rules file's receivers, for the Dagster UI: ``name → type (secrets: $VARS)``.

    Deliveries build their receivers from the rules file at run time, so a receiver
    added or changed there is used at the next run; this list is what the code location
    saw when it loaded.
    """

    receivers: dict[str, str] = Field(default_factory=dict,
                                      description="name → type and secret variables")

    @classmethod
    def of(cls, rules: RulesFile) -> ReceiversResource:
        def describe(config: ReceiverConfig) -> str:
            names = env_refs(config)
            secrets = f" (secrets from ${', $'.join(names)})" if names else ""
            return f"{config.type}{secrets}"

        return cls(receivers={r.name: describe(r) for r in rules.receivers})


def check_severity(status: Status, severity: Severity | None) -> dg.AssetCheckSeverity:
    """Check errors and critical alerts are ERROR; warnings, info and no-data are WARN."""
    if status == Status.ERROR or (status == Status.ALERT and severity == Severity.CRITICAL):
        return dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckSeverity.WARN
