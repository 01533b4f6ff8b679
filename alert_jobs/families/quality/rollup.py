"""Quality rollups in SQL: GROUP BY over ``alert_episodes``, never a load of every event.

Two statements per rollup, whatever the number of events: one aggregate, and one for
the medians and 90th percentiles of the three durations. The percentiles are
*nearest-rank* (the value at rank ⌈p·n/100⌉), found with ``ROW_NUMBER``/``COUNT``
window functions and integer arithmetic only, so SQLite (≥ 3.25) and PostgreSQL give
identical results for the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.families.quality.check import QualityRow
from alert_jobs.store import schema

GROUPINGS = ("day", "rule", "severity")
DURATIONS = {"ack": "ack_seconds", "response": "response_seconds", "resolve": "resolve_seconds"}
t = schema.episodes


def _midnight(when: datetime) -> bool:
    return when.astimezone(UTC).time() == time(0)


def window(start: datetime, end: datetime) -> list[Any]:
    """Episodes fired in ``[start, end)``: on the indexed ``day`` column, plus ``fired_at``
    only for an edge that is not a UTC midnight (daily and monthly windows never are)."""
    first, last = start.astimezone(UTC), end.astimezone(UTC)
    where = [t.c.day >= first.strftime("%Y-%m-%d")]
    if not _midnight(first):
        where.append(t.c.fired_at >= start)
    if _midnight(last):
        where.append(t.c.day < last.strftime("%Y-%m-%d"))
    else:
        where += [t.c.day <= last.strftime("%Y-%m-%d"), t.c.fired_at < end]
    return where


def _count(cond: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def quality_rows(conn: Connection, start: datetime, end: datetime, *,
                 by: Sequence[str] = ("day", "rule", "severity"),
                 rule: str | None = None) -> list[QualityRow]:
    """Episodes that fired in ``[start, end)``, grouped by ``by`` (a subset of day, rule,
    severity; rule is always included)."""
    keys = [k for k in GROUPINGS if k in by or k == "rule"]
    unknown = set(by) - set(GROUPINGS)
    if unknown:
        raise ValueError(f"cannot group by {sorted(unknown)} (use {', '.join(GROUPINGS)})")
    cols = [t.c[k] for k in keys]
    where = window(start, end)
    if rule is not None:
        where.append(t.c.rule == rule)

    # ack_seconds/resolve_seconds are set together with first_ack_at/resolved_at; using
    # them keeps the query inside the covering index ix_alert_episodes_resolve.
    no_word = sa.and_(t.c.outcome.is_(None), t.c.ack_seconds.is_(None))
    agg = sa.select(
        *cols,
        sa.func.count().label("fired"),
        sa.func.coalesce(sa.func.sum(t.c.notifications), 0).label("notifications"),
        sa.func.coalesce(sa.func.sum(t.c.pages), 0).label("pages"),
        _count(sa.or_(t.c.outcome == "actionable",
                      sa.and_(t.c.outcome.is_(None), t.c.ack_seconds.is_not(None))))
        .label("actionable"),
        _count(t.c.outcome == "false-positive").label("false_positive"),
        _count(t.c.outcome == "noise").label("noise"),
        _count(t.c.outcome == "duplicate").label("duplicates"),
        _count(sa.and_(no_word, t.c.resolve_seconds.is_not(None))).label("unattended"),
        _count(sa.and_(no_word, t.c.resolve_seconds.is_(None))).label("open"),
        _count(t.c.flap.is_(True)).label("flaps"),
    ).where(*where).group_by(*cols)

    n_keys = len(keys)
    names = list(agg.selected_columns.keys())[n_keys:]
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in conn.execute(agg):
        data = dict(zip(keys, r[:n_keys], strict=True))
        data.update(zip(names, (int(v) for v in r[n_keys:]), strict=True))
        rows[tuple(r[:n_keys])] = data
    pct_names = [f"{m}_p{p}" for m in DURATIONS for p in (50, 90)]
    for r in conn.execute(_percentiles(keys, where)):
        group = rows.get(tuple(r[:n_keys]))
        if group is not None:
            group.update((name, None if v is None else float(v))
                        for name, v in zip(pct_names, r[n_keys:], strict=True))
    return [QualityRow(**v) for _, v in sorted(rows.items(), key=lambda kv: tuple(
        "" if x is None else str(x) for x in kv[0]))]


def _rank_hit(rn: Any, n: Any, p: int) -> Any:
    """``rn`` is the nearest rank of the p-th percentile of ``n`` values: ⌈p·n/100⌉."""
    return sa.and_(rn * 100 >= n * p, (rn - 1) * 100 < n * p)


def _percentiles(keys: list[str], where: list[Any]) -> Any:
    """One row per group: (keys…, ack_p50, ack_p90, response_p50, …, resolve_p90).

    Per duration, both window functions share one PARTITION BY and ORDER BY (the count
    with a whole-partition frame), so each costs one sort — none at all on SQLite,
    where the covering index delivers that order — and only the rows at the two
    nearest ranks leave the subquery; the outer GROUP BY pivots them into columns.
    """
    parts = []
    for name, column in DURATIONS.items():
        value = t.c[column]
        partition = [t.c[k] for k in keys]
        ranked = sa.select(
            *partition,
            value.label("v"),
            sa.func.row_number().over(partition_by=partition or None, order_by=value)
            .label("rn"),
            sa.func.count().over(partition_by=partition or None, order_by=value,
                                 rows=(None, None)).label("n"),
        ).where(*where, value.is_not(None)).subquery(f"ranked_{name}")
        rn, n = ranked.c.rn, ranked.c.n
        parts.append(sa.select(
            *[ranked.c[k] for k in keys], sa.literal(name).label("metric"),
            sa.case((_rank_hit(rn, n, 50), ranked.c.v)).label("p50"),
            sa.case((_rank_hit(rn, n, 90), ranked.c.v)).label("p90"),
        ).where(sa.or_(_rank_hit(rn, n, 50), _rank_hit(rn, n, 90))))
    hits = sa.union_all(*parts).subquery("hits")
    group = [hits.c[k] for k in keys]
    pivot = []
    for name in DURATIONS:
        for p in ("p50", "p90"):
            pivot.append(sa.func.min(sa.case((hits.c.metric == name, hits.c[p])))
                         .label(f"{name}_{p}"))
    query = sa.select(*group, *pivot)
    return query.group_by(*group) if group else query


def totals(rows: Sequence[QualityRow]) -> dict[str, float]:
    """Plain-number sums over rows (for Dagster metadata that plots)."""
    fired = sum(r.fired for r in rows)
    judged = sum(r.judged for r in rows)
    actionable = sum(r.actionable for r in rows)
    out: dict[str, float] = {
        "alerts_fired": fired,
        "notifications_sent": sum(r.notifications for r in rows),
        "pages": sum(r.pages for r in rows),
        "actionable": actionable,
        "false_positives": sum(r.false_positive for r in rows),
        "noise": sum(r.noise for r in rows),
        "duplicates": sum(r.duplicates for r in rows),
        "unattended": sum(r.unattended for r in rows),
        "open": sum(r.open for r in rows),
        "flaps": sum(r.flaps for r in rows),
        "rules_fired": len({r.rule for r in rows}),
    }
    if judged:
        out["actionable_rate"] = actionable / judged
        out["false_positive_rate"] = out["false_positives"] / judged
    return out


def overall_durations(conn: Connection, start: datetime, end: datetime) -> dict[str, float]:
    """Median and p90 of each duration over all rules (one more small query)."""
    row = conn.execute(_percentiles([], window(start, end))).one()
    return {f"{name}_seconds": float(v) for name, v in row._mapping.items() if v is not None}
