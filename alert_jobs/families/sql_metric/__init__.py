"""``sql_metric``: a SQL query returns one number over a window, compared with an expected
range.

Reference: ``docs/sql_metric.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.sql_metric.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="sql_metric",
    package=__name__,
    description="a SQL query's number over a window against an expected range",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.sql_metric.definitions:build_definitions"),
    evaluate=lazy("alert_jobs.families.sql_metric.run:evaluate"),
    simulate=lazy("alert_jobs.families.sql_metric.simulate:simulate"),
    rejudge=lazy("alert_jobs.families.sql_metric.backtest:rejudge"),
    # = backtest.THRESHOLD_KEYS (named here so that registering imports no more modules)
    threshold_keys=("min", "max", "resolve_min", "resolve_max", "threshold", "critical",
                    "warning", "width", "min_points", "season", "history", "direction",
                    "floor", "adopt_after"),
)
