"""Which SLOs run together, and how often: one batch per cron and timezone
(:mod:`alert_jobs.runtime.batching`), named ``slo_<schedule>`` (``slo_every_minute``).

SLOs run **every minute** by default: the Workbook's shortest window is 5 minutes, and
a pair can only fire (or resolve) at a run, so a page waits up to one schedule interval
past its detection time. A rule's ``schedule:`` wins; so does ``defaults.schedule`` when
the rules file sets it (its built-in value, ``*/5 * * * *``, is for the other families
and does not apply here).
"""

from __future__ import annotations

from collections.abc import Sequence

from alert_jobs.config import RulesFile
from alert_jobs.families.slo.config import SloRule
from alert_jobs.runtime.batching import Batch, group_batches

PREFIX = "slo_"
#: The schedule of an SLO that names none (and of every SLO when ``defaults.schedule`` is
#: not set in the rules file).
DEFAULT_SCHEDULE = "* * * * *"

__all__ = ["DEFAULT_SCHEDULE", "PREFIX", "Batch", "batches_of", "schedule_of"]


def schedule_of(rules: RulesFile, rule: SloRule) -> str:
    """The rule's cron: its own, else ``defaults.schedule`` if the file sets it, else
    every minute."""
    if rule.schedule:
        return rule.schedule
    if "schedule" in rules.defaults.model_fields_set:
        return rules.defaults.schedule
    return DEFAULT_SCHEDULE


def batches_of(rules: RulesFile, only: Sequence[SloRule] | None = None) -> list[Batch]:
    """The batches of the file's SLOs, in order of their first rule."""
    return group_batches(PREFIX, (
        (rule.name, None, schedule_of(rules, rule), rules.timezone_for(rule))
        for rule in (rules.rules_of(SloRule) if only is None else only)))
