"""``redis_quota``: command usage of a Redis (INFO) or Upstash database against its daily
or monthly quota, projected to the end of the window, plus hit rate, memory, evictions,
rejected connections, clients and keys.

Reference: ``docs/redis_quota.md``. ``FAMILY`` is this package's entry in the
``alert_jobs.families`` entry points (``pyproject.toml``); its hooks import the
heavier modules (sources, Dagster) only when they are called.
"""

from alert_jobs.families.redis_quota.config import SECTION
from alert_jobs.runtime.family import Family, lazy

FAMILY = Family(
    name="redis_quota",
    package=__name__,
    description="Redis / Upstash command usage against a daily or monthly quota, and Redis health",
    rules=SECTION,
    definitions=lazy("alert_jobs.families.redis_quota.definitions:build_definitions"),
    evaluate=lazy("alert_jobs.families.redis_quota.run:evaluate"),
    simulate=lazy("alert_jobs.families.redis_quota.simulate:simulate"),
    register_cli=lazy("alert_jobs.families.redis_quota.cli:register"),
)
