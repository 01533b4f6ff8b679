"""A sensor tick where many checks go down writes in a few transactions, whatever their
number (lean writes, issue 12): one engine batch per rule, one save of the rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alert_jobs.config import parse_rules
from alert_jobs.families.heartbeat.check import Signal, evaluate
from alert_jobs.families.heartbeat.run import evaluate_due
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.store import Timeline
from benchmarks.heartbeat_bench import _fill

RULES = parse_rules("defaults: {receivers: [console]}\nheartbeats: {ping_log_keep: 10}\n")


@pytest.mark.parametrize("down", [3, 30])
def test_a_tick_where_many_go_down_costs_the_same_few_statements(db_url: str,
                                                                  down: int) -> None:
    timeline = Timeline(db_url)
    timeline.upgrade()
    now = datetime.now(UTC)
    _fill(timeline, 200, down, now)
    statements: list[str] = []
    commits: list[int] = []
    sa.event.listen(timeline.engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: statements.append(statement))
    sa.event.listen(timeline.engine, "commit", lambda conn: commits.append(1))

    report = evaluate_due(RULES, timeline, now=now, sync_declared=False)

    assert len(report.outcomes) == down and report.stale == 0
    assert {str(o.state) for o in report.outcomes} == {"firing"}
    # engine batch + heartbeat rows + the groups' flush; measured 25 statements on SQLite
    # (with its three BEGINs), 21 on PostgreSQL, for 3 and for 30 checks going down
    assert len(commits) == 3, commits
    assert len(statements) <= 25, statements
    rows = {r.state.slug: r for r in HeartbeatStore(timeline).rows()}
    assert sum(str(r.state.status) == "down" for r in rows.values()) == down
    assert len(timeline.events.list(kinds=["firing"], limit=1000)) == down
    statements.clear()
    assert evaluate_due(RULES, timeline, now=now, sync_declared=False).outcomes == []
    quiet = [s for s in statements if not s.startswith("BEGIN")]
    assert len(quiet) == 1, "a quiet tick is one index range scan"
    timeline.dispose()


def test_a_row_pinged_during_the_tick_is_not_overwritten(db_url: str) -> None:
    """save_evaluations skips (and marks due again) a row a ping changed meanwhile,
    and stores the others."""
    timeline = Timeline(db_url)
    timeline.upgrade()
    now = datetime.now(UTC)
    _fill(timeline, 10, 3, now)
    store = HeartbeatStore(timeline)
    due = store.due(now)
    assert len(due) == 3
    store.ping(due[0].state.slug, Signal.SUCCESS, now + timedelta(seconds=1))
    later = now + timedelta(seconds=2)
    stale = store.save_evaluations([(row, evaluate(row.state, later)) for row in due], later)
    assert stale == [due[0].state.slug]
    after = {r.state.slug: r for r in store.rows()}
    assert str(after[due[0].state.slug].state.status) == "up"  # the ping's, kept
    assert [str(after[r.state.slug].state.status) for r in due[1:]] == ["down", "down"]
    assert [r.state.slug for r in store.due(later)] == [due[0].state.slug]  # looked at again
    timeline.dispose()
