"""``alert_rule_settings``: rules a person disabled (no notifications while disabled).

A disabled rule is still evaluated and its transitions recorded, with "rule disabled"
as the reason nothing was sent.

A rule may be disabled for a while (``disabled_until``, from a message's disable link or
``alert-jobs disable RULE --for 1d``): once that time has passed the rule counts as
enabled again wherever disabled rules are read (:func:`still_disabled`, part of the one
query each decision already makes), so no job has to flip it back. No ``enabled`` event
is written when it lapses: the ``disabled`` event says until when, which is the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alert_jobs.store import link_uses, schema
from alert_jobs.store.db import Database, TimelineError, utcnow
from alert_jobs.store.events import write_event
from alert_jobs.store.link_uses import LinkUse, LinkUsed

_t = schema.rule_settings
_NOW = sa.bindparam("now", type_=schema.UTCDateTime())


def still_disabled(now: sa.ColumnElement[datetime] | datetime
                   ) -> sa.ColumnElement[bool]:
    """The rows of rules disabled at ``now`` (a value or a bound parameter): disabled, and
    either until enabled again or until a time not yet reached."""
    return sa.and_(_t.c.disabled.is_(True),
                   sa.or_(_t.c.disabled_until.is_(None), _t.c.disabled_until > now))


_DISABLED_AMONG = sa.select(_t.c.rule).where(
    _t.c.rule.in_(sa.bindparam("rules", expanding=True)), still_disabled(_NOW))


def rule_disabled(conn: Connection, rule: str, now: datetime | None = None) -> bool:
    return bool(disabled_rules(conn, [rule], now))


def disabled_rules(conn: Connection, rules: Iterable[str], now: datetime | None = None
                   ) -> set[str]:
    """Which of ``rules`` are disabled at ``now``: one query for a whole batch of decisions."""
    return set(conn.execute(_DISABLED_AMONG, {"rules": sorted(set(rules)),
                                              "now": now or utcnow()}).scalars())


@dataclass(frozen=True)
class RuleSetting:
    """Whether a person disabled a rule, until when (None: until enabled), who and why."""

    rule: str
    disabled: bool  # in effect now: False once ``until`` has passed
    until: datetime | None
    changed_at: datetime
    changed_by: str
    note: str


class RuleSettingsStore:
    def __init__(self, db: Database):
        self.db = db

    def set_disabled(self, rule: str, disabled: bool, *, by: str, note: str = "",
                     source: str = "cli", now: datetime | None = None,
                     until: datetime | None = None, fingerprint: str | None = None,
                     link: LinkUse | None = None) -> None:
        """Disable (until ``until``, or until enabled) or enable ``rule``; a ``disabled``
        or ``enabled`` event with the actor, source and the expiry.

        ``link``: the signed link it came from, used once (:mod:`alert_jobs.store.link_uses`):
        a ``disable`` link is bound to the episode of its message's alert ``fingerprint``
        (as the outcome links are: it still works after that episode resolved); an
        ``enable`` link (``episode`` 0) is bound to no episode, since the alert may have
        fired again while the rule was disabled. A refused link changes nothing.
        """
        now = now or utcnow()
        if disabled and until is not None and until <= now:
            raise TimelineError("the end of a disable must be in the future")
        with self.db.tx() as conn:
            if link is not None:
                self._claim(conn, link, fingerprint or "", by, now)
            exists = conn.execute(sa.select(_t.c.rule).where(_t.c.rule == rule)).first()
            values = {"disabled": disabled, "changed_at": now, "changed_by": by, "note": note,
                      "disabled_until": until if disabled else None}
            if exists:
                conn.execute(_t.update().where(_t.c.rule == rule).values(**values))
            else:
                conn.execute(_t.insert().values(rule=rule, **values))
            kind = "disabled" if disabled else "enabled"
            span = f" until {until:%Y-%m-%d %H:%M} UTC" if disabled and until else ""
            write_event(conn, now, kind, f"rule {kind} by {by}{span}"
                        + (f": {note}" if note else ""), rule=rule, fingerprint=fingerprint,
                        actor=by, source=source,
                        payload={"until": until.isoformat() if disabled and until else None,
                                 "note": note})

    def _claim(self, conn: Connection, link: LinkUse, fingerprint: str, by: str,
               now: datetime) -> None:
        """Record the link's one use, or raise (LinkGone, LinkUsed): see ``set_disabled``."""
        if link.episode:
            t = schema.alerts
            query = sa.select(t).where(t.c.fingerprint == fingerprint)
            if self.db.lock_rows():
                query = query.with_for_update()
            row = conn.execute(query).first()
            # Imported here: alerts → context → this module reads disabled rules.
            from alert_jobs.store.alerts import record_from_row

            if row is None:
                raise TimelineError(f"no alert with fingerprint {fingerprint!r}")
            link_uses.claim(conn, self.db, record_from_row(row), link, by, now)
            return
        u = schema.link_uses
        inserted = conn.execute(
            self.db.insert_ignore(u, ["token_id"]).values(
                token_id=link.token_id, action=link.action, fingerprint=fingerprint,
                episode=0, used_by=by, used_at=now).returning(u.c.token_id)).first()
        if inserted is None:
            row = link_uses.used(conn, link.token_id)
            who, when = (row.used_by, row.used_at) if row is not None else ("someone", None)
            at = f" at {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
            raise LinkUsed(f"this link was already used by {who}{at}; nothing changed",
                           who, when)

    def get(self, rule: str, now: datetime | None = None) -> RuleSetting | None:
        """The rule's setting (None if nobody ever disabled it)."""
        now = now or utcnow()
        with self.db.read() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.rule == rule)).first()
        if row is None:
            return None
        until = row.disabled_until
        return RuleSetting(row.rule, bool(row.disabled) and (until is None or until > now),
                           until if row.disabled else None, row.changed_at, row.changed_by,
                           row.note or "")

    def disabled(self, now: datetime | None = None) -> set[str]:
        """The rules disabled now (one whose ``disabled_until`` passed is not)."""
        with self.db.read() as conn:
            return set(conn.execute(sa.select(_t.c.rule).where(
                still_disabled(now or utcnow()))).scalars())
