"""``score_drift``: batch drift checks of an ML-score table, computed in the database
against a stored reference: PSI, KS, mean and spread, high-score rate, null rates,
volume, invalid scores.

Reference: ``docs/score_drift.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.score_drift.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="score_drift",
    package=__name__,
    description="drift of ML scores against a stored reference, computed in the database",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.score_drift.definitions:build_definitions"),
    evaluate=lazy("alert_jobs.families.score_drift.run:evaluate"),
    register_cli=lazy("alert_jobs.families.score_drift.cli:register"),
    simulate=lazy("alert_jobs.families.score_drift.simulate:simulate"),
)
