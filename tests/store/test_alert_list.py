"""``AlertStore.list()`` reads active alerts on the driver (the responder's page lists
thousands): it must give exactly what SQLAlchemy's row processing gives."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Severity, Status
from alert_jobs.store import Timeline, schema, utcnow
from alert_jobs.store.alerts import record_from_row


def test_the_fast_list_equals_the_sqlalchemy_read(db_url: str) -> None:
    timeline = Timeline(db_url)
    now = utcnow()
    fps = []
    for i, severity in enumerate((Severity.CRITICAL, Severity.WARNING, Severity.INFO)):
        obs = Observation(f"rule_{i}", Status.ALERT, {"team": f"t{i}", "ü": "ß"}, 1.5 * i,
                          summary=f"bad {i}", expected="under 1", severity=severity)
        fps.append(timeline.alerts.process(obs, RulePolicy(rule=obs.rule), now=now)
                   .decision.record.fingerprint)
    timeline.actions.ack(fps[0], by="alice", note="n", now=now)
    timeline.actions.snooze(fps[1], until=now + timedelta(hours=1), by="bob", now=now)
    pending = Observation("slow", Status.ALERT, {}, None, summary="s")
    timeline.alerts.process(pending, RulePolicy(rule="slow", for_=timedelta(hours=1)), now=now)
    resolved = Observation("gone", Status.ALERT, {}, 1.0)
    timeline.alerts.process(resolved, RulePolicy(rule="gone"), now=now - timedelta(hours=2))
    timeline.alerts.process(Observation("gone", Status.OK, {}, 0.0), RulePolicy(rule="gone"),
                            now=now - timedelta(hours=1))
    t = schema.alerts
    with timeline.engine.connect() as conn:
        slow = [record_from_row(r) for r in conn.execute(
            sa.select(t).where(t.c.state.in_(["pending", "firing", "recovering"]))
            .order_by(t.c.rule, t.c.fingerprint))]
    fast = timeline.alerts.list()
    assert fast == slow and len(fast) == 4  # the resolved one is left out
    assert fast[0].acked_at is not None and fast[0].acked_at.tzinfo is not None
    assert fast[0].last_expected == "under 1" and fast[0].labels == {"team": "t0", "ü": "ß"}
    assert {a.rule for a in timeline.alerts.list(include_inactive=True)} >= {"gone"}
    timeline.dispose()
