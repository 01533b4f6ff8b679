"""What every decision in a transaction reads once: active silences and disabled rules.

Both are small and both are needed before the engine can decide, so they are read
with one statement (a ``UNION ALL``) per transaction, not two per decision. Statements
are built once at import: building a statement per call cost more CPU than running it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.core.model import Silence
from alert_jobs.store import schema
from alert_jobs.store.silences import silence_from_row

_s, _r = schema.silences, schema.rule_settings
_NOW = sa.bindparam("now", type_=schema.UTCDateTime())
_SILENCES = sa.select(sa.literal_column("'s'").label("what"), _s.c.id, _s.c.matchers,
                      _s.c.starts_at, _s.c.ends_at, _s.c.created_by, _s.c.comment).where(
    _s.c.starts_at <= _NOW, _s.c.ends_at > _NOW)


def _disabled(where: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    return sa.select(sa.literal_column("'r'"), _r.c.rule, sa.null(), sa.null(), sa.null(),
                     sa.null(), sa.null()).where(where, _r.c.disabled.is_(True))


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
