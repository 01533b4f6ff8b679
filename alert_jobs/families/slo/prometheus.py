"""Good/total event counts from Prometheus' HTTP API (I/O).

SKELETON: ``read_buckets`` signature fixed; the body is the ``slo-prom`` work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import PrometheusSli


def read_buckets(sli: PrometheusSli, start: datetime, end: datetime, step: timedelta
                 ) -> list[Bucket]:
    """Buckets ``[start, start+step)`` … up to ``end``: an instant query at ``end`` when
    there is one bucket, else one range query (``start+step`` … ``end``, step ``step``)
    per expression, with ``{{window}}`` = ``step``."""
    raise NotImplementedError
