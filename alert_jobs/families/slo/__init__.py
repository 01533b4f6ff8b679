"""``slo``: multi-window, multi-burn-rate alerting on service level objectives, and their
error budgets.

Reference: ``docs/slo.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.slo.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="slo",
    package=__name__,
    description="SLOs: error-budget burn rates over paired windows, and budgets left",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.slo.definitions:build_definitions"),
    evaluate=lazy("alert_jobs.families.slo.run:evaluate"),
    register_cli=lazy("alert_jobs.families.slo.cli:register"),
    http_routes=lazy("alert_jobs.families.slo.http:report_routes"),
    simulate=lazy("alert_jobs.families.slo.simulate:simulate"),
)
