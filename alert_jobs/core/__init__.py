"""The shared vocabulary and the pure decisions: no I/O, no Dagster, no SQL, no HTTP.

* :mod:`~alert_jobs.core.model`: what a check observed, alert state, matchers, silences;
* :mod:`~alert_jobs.core.engine`: the state machine and the notification decision;
* :mod:`~alert_jobs.core.routing`: the route tree, grouping keys, inhibition;
* :mod:`~alert_jobs.core.messages`: the group notification every receiver renders;
* :mod:`~alert_jobs.core.durations`, :mod:`~alert_jobs.core.formatting`,
  :mod:`~alert_jobs.core.cron`: how people write and read times, numbers and schedules.

Everything here is tested with plain values; ``make lint`` keeps it free of I/O
libraries (import-linter).
"""
