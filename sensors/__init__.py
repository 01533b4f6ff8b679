"""The code location's Dagster sensors that belong to no single check family.

Both keep their ticks light (one indexed query) and launch ``deliver_outbox_job``
when there is something to send: the outbox retry sensor, and the escalation sensor.
Family sensors (heartbeats, instance watch, drift segments) are in their packages.

This folder is the ``alert_jobs.sensors`` package (``alert_jobs/sensors`` is a link to
it), so installing alert-jobs adds no top-level ``sensors`` package to site-packages.
"""

import dagster as dg

from alert_jobs.sensors.escalation import escalation_sensor
from alert_jobs.sensors.outbox import outbox_retry_sensor


def definitions() -> dg.Definitions:
    return dg.Definitions(sensors=[outbox_retry_sensor, escalation_sensor])
