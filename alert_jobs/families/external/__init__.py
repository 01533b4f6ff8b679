"""``external``: alerts pushed by Prometheus (or anything speaking Alertmanager's API v2)
to ``POST /api/v2/alerts``, decided by the same engine as our own checks: routes,
grouping, inhibition, silences, acks, escalation, the timeline and alert quality.

Reference: ``docs/external.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (SQL, Dagster) only when they are called.
"""

from alert_jobs.families.external.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="external",
    package=__name__,
    description="alerts pushed by Prometheus to the Alertmanager API, through the same engine",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.external.definitions:build_definitions"),
)
