"""The demo ``make run`` shows, one module per job.

- :mod:`~alert_jobs.demo.data`: seeds the demo database and the timeline's alert history;
- :mod:`~alert_jobs.demo.feed`: keeps appending fresh scores and orders while the demo
  runs, so the windows always hold current data (static data would turn churn-v1 and
  ``orders_last_hour`` red after half an hour or an hour, for no reason but the clock);
- :mod:`~alert_jobs.demo.traffic`: the private demo Redis and its steady cache traffic;
- :mod:`~alert_jobs.demo.pinger`: the demo's jobs that ping their heartbeats;
- :mod:`~alert_jobs.demo.launcher`: starts all of it with Dagster, and stops it cleanly.

``python -m alert_jobs.demo`` (:mod:`~alert_jobs.demo.__main__`) is the entry point.
Nothing here is imported by the product: the demo sits beside the CLI, above the families.
"""

from __future__ import annotations

from alert_jobs.demo.data import seed, seed_quality_history, seed_scores

__all__ = ["seed", "seed_quality_history", "seed_scores"]
