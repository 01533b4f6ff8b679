"""A code location with a sensor that always fails its tick (for the instance-watch tests).

Run by a real ``dagster-daemon`` process in ``test_dagster.py``: a second code location
of the same instance, as in production.
"""

import os

import dagster as dg


@dg.op
def noop() -> None:
    return None


@dg.job
def partner_sync() -> None:
    noop()


@dg.sensor(job=partner_sync, minimum_interval_seconds=1,
           default_status=dg.DefaultSensorStatus.RUNNING)
def partner_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    if os.path.exists(os.environ.get("PARTNER_SENSOR_BROKEN_FLAG", "/nonexistent")):
        raise RuntimeError("cannot reach the partner API")
    return dg.SkipReason("nothing new")


defs = dg.Definitions(jobs=[partner_sync], sensors=[partner_sensor])
