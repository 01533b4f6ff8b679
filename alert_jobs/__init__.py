"""alert-jobs: production alerting as a Dagster code location.

The public surface is small on purpose: rules live in ``alerts.yaml`` (see
:mod:`alert_jobs.config`), decisions are made by :mod:`alert_jobs.engine`, and
every decision is persisted by :mod:`alert_jobs.timeline`.
"""

__version__ = "0.1.0"
