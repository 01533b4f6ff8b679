"""``alert_rule_settings``: rules a person disabled (no notifications while disabled).

A disabled rule is still evaluated and its transitions recorded, with "rule disabled"
as the reason nothing was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.store import schema
from alert_jobs.store.db import Database, utcnow
from alert_jobs.store.events import write_event

_t = schema.rule_settings
_DISABLED_AMONG = sa.select(_t.c.rule).where(
    _t.c.rule.in_(sa.bindparam("rules", expanding=True)), _t.c.disabled.is_(True))


def rule_disabled(conn: Connection, rule: str) -> bool:
    return bool(disabled_rules(conn, [rule]))


def disabled_rules(conn: Connection, rules: Iterable[str]) -> set[str]:
    """Which of ``rules`` a person disabled: one query for a whole batch of decisions."""
    return set(conn.execute(_DISABLED_AMONG, {"rules": sorted(set(rules))}).scalars())


class RuleSettingsStore:
    def __init__(self, db: Database):
        self.db = db

    def set_disabled(self, rule: str, disabled: bool, *, by: str, note: str = "",
                     source: str = "cli", now: datetime | None = None) -> None:
        now = now or utcnow()
        t = schema.rule_settings
        with self.db.tx() as conn:
            exists = conn.execute(sa.select(t.c.rule).where(t.c.rule == rule)).first()
            values = {"disabled": disabled, "changed_at": now, "changed_by": by, "note": note}
            if exists:
                conn.execute(t.update().where(t.c.rule == rule).values(**values))
            else:
                conn.execute(t.insert().values(rule=rule, **values))
            kind = "disabled" if disabled else "enabled"
            write_event(conn, now, kind, f"rule {kind} by {by}" + (f": {note}" if note else ""),
                        rule=rule, actor=by, source=source)

    def disabled(self) -> set[str]:
        t = schema.rule_settings
        with self.db.read() as conn:
            return set(conn.execute(sa.select(t.c.rule).where(t.c.disabled.is_(True))).scalars())
