"""Read an SLO's good/total event counts per bucket from its source (I/O).

``read_buckets(sli, start, end, step)`` returns the buckets ``[start, start+step)``, …,
up to ``end`` (``end − start`` is a multiple of ``step``), oldest first. SQL sources run
the rule's query once per bucket (:func:`sql_buckets`, this module); Prometheus sources
answer many buckets with one range query (:mod:`alert_jobs.families.slo.prometheus`,
``read_buckets(sli: PrometheusSli, start, end, step) -> list[Bucket]``). A source that
cannot be read raises :class:`~alert_jobs.core.errors.SourceError` naming the SLO's
source and query (never a secret); a bucket the source has nothing for is
``Bucket(has_data=False)``.

SKELETON: signatures fixed; bodies are the ``slo-flow`` work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import Sli, SqlSli


def read_buckets(sli: Sli, start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
    """Dispatch on the SLI's source kind (the Prometheus module is imported lazily)."""
    if sli.prometheus is not None:
        from alert_jobs.families.slo import prometheus

        return prometheus.read_buckets(sli.prometheus, start, end, step)
    assert sli.sql is not None
    return sql_buckets(sli.sql, start, end, step)


def sql_buckets(sli: SqlSli, start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
    raise NotImplementedError
