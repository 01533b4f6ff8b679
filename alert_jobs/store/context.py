"""What every decision in a transaction reads once: active silences and disabled rules.

Both are small and both are needed before the engine can decide, so they are read
with one statement (a ``UNION ALL``) per transaction, not two per decision. Statements
are built once at import: building a statement per call cost more CPU than running it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import Matcher, Silence
from alert_jobs.store import rawsql, schema
from alert_jobs.store.rule_settings import still_disabled
from alert_jobs.store.silences import silence_from_row

_s, _r = schema.silences, schema.rule_settings
_NOW = sa.bindparam("now", type_=schema.UTCDateTime())
_SILENCES = sa.select(sa.literal_column("'s'").label("what"), _s.c.id, _s.c.matchers,
                      _s.c.starts_at, _s.c.ends_at, _s.c.created_by, _s.c.comment).where(
    _s.c.starts_at <= _NOW, _s.c.ends_at > _NOW)


def _disabled(where: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    return sa.select(sa.literal_column("'r'"), _r.c.rule, sa.null(), sa.null(), sa.null(),
                     sa.null(), sa.null()).where(where, still_disabled(_NOW))


# One rule (the common case) needs no expanding IN, which costs a re-render per call.
_ONE_RULE = sa.union_all(_SILENCES, _disabled(_r.c.rule == sa.bindparam("rule")))
_RULES = sa.union_all(_SILENCES, _disabled(_r.c.rule.in_(sa.bindparam("rules",
                                                                       expanding=True))))


def read_context(conn: Connection, now: datetime, rules: Iterable[str]
                 ) -> tuple[list[Silence], set[str]]:
    """Active silences at ``now`` and which of ``rules`` are disabled, in one statement."""
    names = sorted(set(rules))
    if len(names) == 1:
        rows = conn.execute(_ONE_RULE, {"now": now, "rule": names[0]})
    else:
        rows = conn.execute(_RULES, {"now": now, "rules": names})
    silences: list[Silence] = []
    disabled: set[str] = set()
    for row in rows:
        if row.what == "s":
            silences.append(silence_from_row(row))
        else:
            disabled.add(row.id)
    return silences, disabled


# SQLite, one alert: its row and the context in one statement (one row per active
# silence, at least one thanks to the constant anchor), which saves a statement on
# the most common decision of all, a steady re-evaluation.
_a = schema.alerts
_ANCHOR = sa.select(sa.literal_column("1").label("one")).subquery("anchor")
_ONE_ALERT = sa.select(
    _a, _s.c.id.label("s_id"), _s.c.matchers.label("s_matchers"),
    _s.c.starts_at.label("s_starts_at"), _s.c.ends_at.label("s_ends_at"),
    _s.c.created_by.label("s_created_by"), _s.c.comment.label("s_comment"),
    _r.c.rule.label("r_disabled"),
).select_from(
    _ANCHOR.outerjoin(_a, _a.c.fingerprint == sa.bindparam("fp"))
    .outerjoin(_s, sa.and_(_s.c.starts_at <= _NOW, _s.c.ends_at > _NOW))
    .outerjoin(_r, sa.and_(_r.c.rule == sa.bindparam("rule"), still_disabled(_NOW))))


_ONE_ALERT_SQL = rawsql.compiled(_ONE_ALERT)
_N = len(_a.c)  # the alert's columns come first, then the silence's and the rule's
_read_silence = rawsql.row_reader([_s.c.id, _s.c.matchers, _s.c.starts_at, _s.c.ends_at,
                                   _s.c.created_by, _s.c.comment])


def read_one(conn: Connection, now: datetime, fp: str, rule: str
             ) -> tuple[tuple[Any, ...] | None, list[Silence], set[str]]:
    """One alert's row (the driver's tuple of its columns, None if it does not exist
    yet) with :func:`read_context`'s answer, in one statement. For SQLite, whose write
    transaction needs no row lock; run on the driver (:mod:`alert_jobs.store.rawsql`)."""
    rows = rawsql.fetch_all(conn, _ONE_ALERT_SQL,
                            {"now": rawsql.bind_time(now), "fp": fp, "rule": rule})
    first = rows[0]
    silences = []
    for r in rows:
        if r[_N] is not None:
            s = _read_silence(r[_N:])
            silences.append(Silence(s["id"], tuple(Matcher(n, op, v) for n, op, v
                                                   in s["matchers"]),
                                    s["starts_at"], s["ends_at"], s["created_by"],
                                    s["comment"]))
    return (first[:_N] if first[0] is not None else None, silences,
            {rule} if first[-1] is not None else set())
