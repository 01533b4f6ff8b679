"""The code location's Dagster jobs that belong to no single check family.

These are the launchpad jobs an operator runs from the Dagster UI (ack, snooze,
silence, deliver, test a receiver, fire drill), and the timeline's retention. Each
family's own assets, checks, schedules and sensors are in its package
(``alert_jobs/families/<family>/definitions.py``).

This folder is the ``alert_jobs.assets`` package (``alert_jobs/assets`` is a link to
it), so installing alert-jobs adds no top-level ``assets`` package to site-packages.
"""

import dagster as dg

from alert_jobs.assets.operator_jobs import definitions as operator_definitions
from alert_jobs.assets.retention import definitions as retention_definitions
from alert_jobs.config import RulesFile


def definitions(rules: RulesFile | None = None) -> dg.Definitions:
    """The operator jobs (with ``rules``, also the fire drill schedule they configure) and
    the timeline's daily retention."""
    return dg.Definitions.merge(operator_definitions(rules), retention_definitions(rules))
