"""A tiny code location that loads (for test_watch_locations.py's real webserver).

One asset and nothing else: alert_jobs.definitions takes seconds to load.
"""

import dagster as dg


@dg.asset
def tiny_asset() -> int:
    return 1


defs = dg.Definitions(assets=[tiny_asset])
