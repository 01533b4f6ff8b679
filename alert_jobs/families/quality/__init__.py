"""``quality``: alert quality: actionable rate, times to ack and resolve, flaps, the
monthly review, and backtests of rule changes.

Reference: ``docs/quality.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.quality.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="quality",
    package=__name__,
    description="how good the alerts are: actionable rate, times to ack and resolve, reviews",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.quality.definitions:build_definitions"),
    register_cli=lazy("alert_jobs.families.quality.cli:register"),
    http_routes=lazy("alert_jobs.families.quality.http:routes"),
    writes_timeline=False,
)
