"""What a backtest replays, read from the timeline: evaluations, episodes, backfilled points.

Shared by ``alert-jobs rules backtest`` (:mod:`alert_jobs.families.quality.cli`) and the
monthly review's width suggestions (:mod:`alert_jobs.families.quality.review`). One
query each, on the ``(rule, at)`` indexes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa

from alert_jobs.families.quality.backtest import StoredEpisode, StoredEvaluation
from alert_jobs.store import Timeline, schema
from alert_jobs.store.baselines import baseline_points


def verdict(outcome: str | None, first_ack_at: datetime | None,
            resolved_at: datetime | None) -> str:
    """actionable | noisy | open, as :mod:`alert_jobs.families.quality.check` counts."""
    if outcome == "actionable" or (outcome is None and first_ack_at is not None):
        return "actionable"
    if outcome is None and resolved_at is None:
        return "open"
    return "noisy"


def load_history(timeline: Timeline, rule: str, since: datetime,
                 until: datetime | None = None, *, warm_up_from: datetime | None = None
                 ) -> tuple[list[StoredEvaluation], list[StoredEpisode]]:
    """The rule's evaluations from ``warm_up_from`` (default ``since``) to ``until`` and
    its episodes that fired in ``[since, until)``."""
    ev, ep = schema.evaluations, schema.episodes
    frame = [ev.c.rule == rule, ev.c.at >= (warm_up_from or since)]
    fired = [ep.c.rule == rule, ep.c.fired_at >= since]
    if until is not None:
        frame.append(ev.c.at < until)
        fired.append(ep.c.fired_at < until)
    with timeline.read() as conn:
        evals = [StoredEvaluation(r.at, r.fingerprint, r.status, r.value) for r in conn.execute(
            sa.select(ev.c.at, ev.c.fingerprint, ev.c.status, ev.c.value).where(*frame)
            .order_by(ev.c.fingerprint, ev.c.at, ev.c.id))]
        episodes = [StoredEpisode(r.fingerprint, r.fired_at, r.resolved_at,
                                  verdict(r.outcome, r.first_ack_at, r.resolved_at))
                    for r in conn.execute(sa.select(ep).where(*fired))]
    return evals, episodes


def load_points(timeline: Timeline, rule: str, since: datetime,
                until: datetime | None = None) -> dict[str, list[tuple[datetime, float]]]:
    """The rule's backfilled baseline points with a value in ``[since, until)``, per
    fingerprint, oldest first (a baseline judge learns them before the first value)."""
    bp = baseline_points
    where = [bp.c.rule == rule, bp.c.at >= since, bp.c.value.is_not(None)]
    if until is not None:
        where.append(bp.c.at < until)
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    with timeline.read() as conn:
        for r in conn.execute(sa.select(bp.c.fingerprint, bp.c.at, bp.c.value).where(*where)
                              .order_by(bp.c.fingerprint, bp.c.at)):
            out[r.fingerprint].append((r.at, r.value))
    return dict(out)
