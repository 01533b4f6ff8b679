"""alert-jobs: production alerting as a Dagster code location.

The public surface is small on purpose: rules live in ``alerts.yaml`` (see
:mod:`alert_jobs.config`), decisions are made by :mod:`alert_jobs.engine`, and
every decision is persisted by :mod:`alert_jobs.timeline`.
"""

__version__ = "0.1.0"

# The rules models first: family config modules (config_drift, …) build on its base
# classes and config.py imports them back, so config must start the import chain.
from alert_jobs import config as _config  # noqa: F401
