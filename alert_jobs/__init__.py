"""alert-jobs: production alerting as a Dagster code location.

Layers, lowest first (``make lint`` enforces them with import-linter):

* :mod:`alert_jobs.core`: the vocabulary and the pure engine (no I/O);
* :mod:`alert_jobs.config`: the rules file, which check families extend;
* :mod:`alert_jobs.store` (the SQL timeline) and :mod:`alert_jobs.notify` (receivers);
* :mod:`alert_jobs.runtime`: one evaluation's path to the engine and out to receivers,
  and the family seam (:class:`alert_jobs.runtime.family.Family`);
* :mod:`alert_jobs.families`: one package per check family;
* :mod:`alert_jobs.http`, :mod:`alert_jobs.cli`, ``alert_jobs.assets``,
  ``alert_jobs.sensors``: the ways in;
* :mod:`alert_jobs.definitions`: the Dagster code location.
"""

__version__ = "0.1.0"
