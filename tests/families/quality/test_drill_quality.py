"""Fire drills and alert quality: left out of every rate, shown per rule.

A real webhook receiver on 127.0.0.1; the drill goes through the real path. Each
"the drill changed nothing" assertion has its positive control beside it: a real
episode, fired and acked, does change the same numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from alert_jobs.cli.main import main
from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.months import month_bounds
from alert_jobs.families.quality.review import run_review
from alert_jobs.families.quality.rollup import quality_rows
from alert_jobs.runtime.drill import run_drill
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, episodes, schema
from tests.conftest import HttpReceiver


def _rules_text(url: str) -> str:
    return f"""
receivers:
  - {{name: console, type: console}}
  - {{name: hook, type: webhook, url: '{url}', timeout: 5s}}
defaults: {{receivers: [hook], fallback_receiver: console}}
checks:
  sql_metric:
    - {{name: dead_letters, database: 'sqlite:///unused.db', query: SELECT 1,
        expect: {{min: 0, max: 0}}, severity: critical}}
    - {{name: orders, database: 'sqlite:///unused.db', query: SELECT 1,
        expect: {{min: 0, max: 0}}}}
"""


def _month_rows(timeline: Timeline) -> dict[str, tuple[int, float | None]]:
    start, end = month_bounds(datetime.now(UTC).strftime("%Y-%m"))
    with timeline.read() as conn:
        rows = quality_rows(conn, start, end + timedelta(days=1), by=("rule",))
    return {r.rule: (r.fired, r.actionable_rate) for r in rows}


def _real_episode(rules: RulesFile, timeline: Timeline, rule: str, *, ack: bool) -> None:
    from alert_jobs.core.model import Observation, Status

    obs = Observation(rule, Status.ALERT, {}, 5.0, summary="5 dead letters")
    now = datetime.now(UTC)
    (out,) = process_observations(rules, rules.rule(rule), timeline, [(obs, "")], now=now,
                                  run_id=None)
    if ack:
        timeline.actions.ack(out.result.decision.record.fingerprint, by="bob",
                             outcome="actionable", now=now + timedelta(seconds=30))
    ok = Observation(rule, Status.OK, {}, 0.0, summary="0")
    process_observations(rules, rules.rule(rule), timeline, [(ok, "")],
                         now=now + timedelta(minutes=1), run_id=None)


def test_drill_leaves_actionable_rate_alone_a_real_episode_moves_it(
        db_url: str, http_receiver: HttpReceiver) -> None:
    rules = parse_rules(_rules_text(http_receiver.url))
    timeline = Timeline(db_url)
    _real_episode(rules, timeline, "dead_letters", ack=False)  # one noisy episode
    before = _month_rows(timeline)
    assert before == {"dead_letters": (1, 0.0)}

    for _ in range(2):
        assert run_drill(rules, timeline, "dead_letters", by="alice").passed
    assert _month_rows(timeline) == before  # no episode, no rate change
    with timeline.read() as conn:
        drill_fps = {a.fingerprint for a in timeline.alerts.list(include_inactive=True)
                     if "drill" in a.labels}
        stored = set(conn.execute(sa.select(schema.episodes.c.fingerprint)).scalars())
    assert len(drill_fps) == 2 and not drill_fps & stored

    # Positive control: a real episode, acked as actionable, changes the same numbers.
    _real_episode(rules, timeline, "dead_letters", ack=True)
    assert _month_rows(timeline) == {"dead_letters": (2, 0.5)}


def test_backfill_skips_drills(sqlite_url: str, http_receiver: HttpReceiver) -> None:
    rules = parse_rules(_rules_text(http_receiver.url))
    timeline = Timeline(sqlite_url)
    run_drill(rules, timeline, "dead_letters", by="alice")
    _real_episode(rules, timeline, "orders", ack=False)  # the positive control
    with timeline.engine.begin() as conn:
        conn.execute(sa.delete(schema.episodes))
        assert episodes.backfill(conn) == 1
        (rule,) = conn.execute(sa.select(schema.episodes.c.rule)).scalars()
    assert rule == "orders"


def test_review_and_quality_report_show_last_drill_per_rule(
        sqlite_url: str, tmp_path: Path, http_receiver: HttpReceiver, capsys) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(_rules_text(http_receiver.url), encoding="utf-8")
    rules = parse_rules(path.read_text())
    timeline = Timeline(sqlite_url)
    _real_episode(rules, timeline, "orders", ack=False)
    result = run_drill(rules, timeline, "dead_letters", by="alice")
    paged = f"{result.slowest:.1f} s"

    review = run_review(rules, timeline, datetime.now(UTC).strftime("%Y-%m"), send=False,
                        out_dir=tmp_path)
    assert [row.rule for row, _ in review.review.rows] == ["orders"]  # the drill is no row
    drilled, never = review.review.drills
    assert drilled.startswith("dead_letters: last drill ") and " second" in drilled
    assert drilled.endswith(f" ago, paged in {paged}") and never == "orders: never drilled"
    assert "**Fire drills**" in review.markdown and "orders: never drilled" in review.markdown
    html = review.html_path.read_text(encoding="utf-8")
    assert "Fire drills" in html and f"paged in {paged}" in html

    base = ["--rules", str(path), "--database-url", sqlite_url]
    assert main([*base, "quality", "report"]) == 0
    out = capsys.readouterr().out
    assert "Fire drills (not counted above):" in out
    assert "dead_letters: last drill" in out and f"paged in {paged}" in out
    assert "orders: never drilled" in out
