"""A code location that fails to load: it imports a module that is not installed.

Loaded by a real dagster-webserver in test_watch_locations.py, which expects the
alert to name the missing module. Never imported by the tests themselves.
"""

import dagster as dg
import nonexistent_dep_for_test  # noqa: F401  (the point: this import fails)

defs = dg.Definitions()
