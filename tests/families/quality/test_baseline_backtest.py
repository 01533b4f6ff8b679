"""Backtests of a baseline rule over a real timeline whose evaluations the runtime made.

The history is written the way ``sql_metric`` evaluates a baseline rule: each value
judged by :func:`alert_jobs.runtime.baseline.assess_value` (one indexed read of the
slot and the last hours, adoption with the stored state) and
:func:`~alert_jobs.families.sql_metric.check.judge`, then decided by the engine into the
timeline. Known in advance: 3 actionable drops (2,000 orders) and 4 noisy blips (12,000)
against a level of 10,000 ± 500 (a count: the Poisson floor, √10,000 = 100, is under its
spread, so the width decides), so a wider band keeps the drops and drops the blips.
SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.cli import main as cli
from alert_jobs.config import load_rules
from alert_jobs.core.engine import evaluate
from alert_jobs.core.model import fingerprint
from alert_jobs.families.quality.review import run_review, width_results
from alert_jobs.families.sql_metric.backtest import BaselineJudge, rejudge
from alert_jobs.families.sql_metric.check import bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.baseline import assess_value
from alert_jobs.runtime.evaluate import policy_for
from alert_jobs.store import Timeline, schema
from tests.conftest import write_rules

START = datetime(2026, 10, 1, tzinfo=UTC)  # the rule's first evaluation
SINCE = START + timedelta(days=2)  # the period backtested; the 2 days before: warm-up
STEP = timedelta(minutes=30)
DROPS = (SINCE + timedelta(hours=5), SINCE + timedelta(hours=20), SINCE + timedelta(hours=40))
BLIPS = tuple(SINCE + timedelta(hours=h) for h in (9, 14, 27, 33))

RULES = """
defaults: {receivers: [console], timezone: UTC}
receivers: [{name: console, type: console}]
quality: {report_dir: REPORTS}
checks:
  sql_metric:
    - name: signups
      database: sqlite://
      query: SELECT 1
      window: 30m
      expect: {baseline: {season: none, history: 1d, width: 3, min_points: 10,
                          adopt_after: null}}
      for: 0m
"""


def _value(i: int, at: datetime) -> float:
    if any(d <= at < d + 2 * STEP for d in DROPS):
        return 2_000.0
    if at in BLIPS:
        return 12_000.0
    return 10_000.0 + 100 * ((i * 37) % 11 - 5)  # 9,500 … 10,500, spread over the day


def _history(timeline: Timeline, tmp_path: Path, rules_text: str = RULES,
             value_at: Callable[[int, datetime], float] = _value) -> tuple[Path, SqlMetricRule]:
    path = write_rules(tmp_path / "alerts.yaml",
                       rules_text.replace("REPORTS", str(tmp_path / "reports")))
    rules = load_rules(path)
    rule = rules.rule("signups")
    assert isinstance(rule, SqlMetricRule) and rule.expect.baseline is not None
    policy = policy_for(rules, rule)
    fp = fingerprint(rule.name, rule.labels)
    at, i = START, 0
    while at < SINCE + timedelta(days=2):
        record = timeline.alerts.get(fp)
        active = record is not None and record.state.is_active
        value = value_at(i, at)
        judged = assess_value(timeline, rule=rule.name, fingerprint=fp, value=value,
                              spec=rule.expect.baseline, now=at, timezone="UTC",
                              state=timeline.baselines.states([fp]).get(fp))
        obs = judge(rule.name, value, bounds_of(rule), subject="signups", window="30 minutes",
                    was_firing=active, labels=rule.labels, baseline=judged.assessment)
        timeline.alerts.process(obs, policy, now=at)
        if at in DROPS or at in BLIPS:
            timeline.actions.ack(fp, by="alice", outcome="actionable" if at in DROPS
                                 else "noise", now=at + timedelta(minutes=5))
        at, i = at + STEP, i + 1
    return path, rule


def test_backtest_of_a_wider_band_keeps_the_drops_and_drops_the_blips(
        db_url: str, tmp_path: Path, capsys) -> None:
    timeline = Timeline(db_url)
    rules_path, _ = _history(timeline, tmp_path)
    base = ["--database-url", db_url, "--rules", str(rules_path), "rules", "backtest",
            "signups", "--since", SINCE.isoformat(), "--json"]
    assert cli.main([*base, "--set", "width=6"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluations"] == 2 * 48  # the warm-up's evaluations do not count
    assert result["stored_fired"] == 7
    # The replay of the unchanged rule judges as the runtime did: the warm-up gave it the
    # baseline from the first evaluation on (without it, the first 10 would be learning).
    assert result["replayed_current"] == 7
    assert result["would_fire"] == 3
    assert (result["actionable"], result["actionable_caught"]) == (3, 3)
    assert (result["noisy"], result["noisy_dropped"]) == (4, 4)
    # Positive control: a narrower band fires on the blips too (and on nothing less).
    assert cli.main([*base, "--set", "width=2"]) == 0
    narrow = json.loads(capsys.readouterr().out)
    assert narrow["would_fire"] >= 7 and narrow["noisy_dropped"] == 0
    assert narrow["actionable_caught"] == 3


def test_backtest_table_says_what_the_baseline_learned_first(tmp_path: Path, capsys) -> None:
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    rules_path, _ = _history(Timeline(db_url), tmp_path)
    base = ["--database-url", db_url, "--rules", str(rules_path), "rules", "backtest",
            "signups", "--since", SINCE.isoformat()]
    assert cli.main([*base, "--set", "width=6"]) == 0
    out = capsys.readouterr().out
    assert "learned first from the 1 day before: 48 evaluations" in out
    assert "3 of 3" in out and "4 of 4" in out
    for bad, message in ((["--set", "width=0"], "width"),
                         (["--set", "season=monthly"], "season"),
                         (["--set", "history=soon"], "history")):
        assert cli.main([*base, *bad]) == 2, bad
        assert message in capsys.readouterr().err


def test_the_monthly_review_suggests_the_width_that_drops_the_noise(
        tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    timeline = Timeline(db_url)
    rules_path, _ = _history(timeline, tmp_path)
    rules = load_rules(rules_path)
    found = width_results(rules, timeline, "signups", START, START + timedelta(days=31))
    assert found is not None
    now_width, results = found
    assert now_width == 3.0
    assert results[2.0].noisy_dropped == 0 and results[6.0].noisy_dropped == 4
    keeping = [w for w, r in results.items() if r.actionable_missed == 0
               and r.noisy_dropped == 4]
    review = run_review(rules, timeline, "2026-10", send=False, out_dir=tmp_path / "reports")
    [line] = review.review.tuning
    assert re.fullmatch(r"signups: width (\d) would have kept 3 of 3 actionable alerts and "
                        r"dropped 4 of 4 noisy ones \(now 3\)", line), line
    assert float(line.split()[2]) == min(keeping)  # the closest watch that drops them all
    assert line in review.markdown and line in review.html_path.read_text()


def test_no_width_is_suggested_for_a_rule_without_a_baseline(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    timeline = Timeline(db_url)
    rules_path, rule = _history(timeline, tmp_path)
    fixed = rule.model_copy(update={"expect": rule.expect.model_copy(
        update={"baseline": None, "min": 50.0})})
    try:
        rejudge(fixed, {"width": "4"})
    except ValueError as exc:
        assert "has no expect.baseline" in str(exc)
    else:
        raise AssertionError("a fixed rule accepted width=")
    text = rules_path.read_text().replace(
        "expect: {baseline: {season: none, history: 1d, width: 3, min_points: 10,\n"
        "                          adopt_after: null}}", "expect: {min: 50}")
    rules = load_rules(write_rules(tmp_path / "fixed.yaml", text))
    assert width_results(rules, timeline, "signups", START, START + timedelta(days=31)) is None


def test_no_width_is_suggested_when_the_replay_cannot_reproduce_the_alerts(
        tmp_path: Path) -> None:
    """The stored alerts came from settings the replay cannot learn (here: the rule now
    wants more points than a day holds, so every replayed value is still learning):
    backtests of a width would say nothing, so the review suggests none. The positive
    control is the suggestion above, on the same history with the rule as it was."""
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    timeline = Timeline(db_url)
    rules_path, _ = _history(timeline, tmp_path)
    rules = load_rules(write_rules(tmp_path / "more.yaml", rules_path.read_text().replace(
        "min_points: 10", "min_points: 200")))
    found = width_results(rules, timeline, "signups", START, START + timedelta(days=31))
    assert found is not None and not any(r.replayed_current for r in found[1].values())
    review = run_review(rules, timeline, "2026-10", send=False, out_dir=tmp_path / "reports")
    assert review.review.tuning == []
    assert "Baseline widths" not in review.markdown


SHIFTING = RULES.replace("history: 1d, width: 3, min_points: 10,\n"
                         "                          adopt_after: null",
                         "history: 1d, width: 3, min_points: 10,\n"
                         "                          adopt_after: 6h")
LEVEL_UP = START + timedelta(days=2, hours=3)


def _grows(i: int, at: datetime) -> float:
    """The level grows by half at ``LEVEL_UP`` and stays there (a new normal)."""
    return _value(i, at) * (1.5 if at >= LEVEL_UP else 1.0)


def test_the_unchanged_replay_judges_every_evaluation_as_the_runtime_did(
        db_url: str, tmp_path: Path) -> None:
    """Each stored evaluation (status, expected value, band, today's level) comes out of
    the replay's judge exactly as the runtime stored it — through the drops, the blips, a
    level that grows by half and its adoption by the sign test (a scaling factor, kept in
    the timeline's state between evaluations)."""
    timeline = Timeline(db_url)
    _, rule = _history(timeline, tmp_path, SHIFTING, _grows)
    fp = fingerprint(rule.name, rule.labels)
    [state] = timeline.baselines.states([fp]).values()
    [shift] = state.shifts  # the runtime adopted the new level once
    assert LEVEL_UP <= shift.since < shift.adopted_at < LEVEL_UP + timedelta(hours=6)
    ev = schema.evaluations
    with timeline.read() as conn:
        stored = conn.execute(sa.select(ev.c.at, ev.c.status, ev.c.value, ev.c.details)
                              .where(ev.c.rule == rule.name).order_by(ev.c.at)).all()
    assert len(stored) == 4 * 48
    judge = rejudge(rule, {})
    assert isinstance(judge, BaselineJudge)
    was_firing, record, adopted = False, None, set()
    policy = policy_for(load_rules(tmp_path / "alerts.yaml"), rule)
    for row in stored:
        obs = judge(float(row.value), was_firing, row.at)
        details = row.details if isinstance(row.details, dict) else json.loads(row.details)
        assert (obs.status, obs.details.get("crossed")) == (row.status, details["crossed"]), \
            row.at
        for key in ("expected_value", "lower", "upper", "level", "points"):
            want = details[key]  # None while learning
            assert obs.details[key] == (want if want is None else pytest.approx(want, rel=1e-9)
                                        ), (row.at, key)
        record = evaluate(obs, record, policy, row.at).record
        was_firing = record.state.is_active
        adopted.update(judge.learner.shifts)  # (a day later it no longer touches the history)
    assert adopted == {shift}
    assert shift.factor == pytest.approx(1.5, rel=0.05)
    # The adoption is what keeps the grown level quiet. From it until the history has
    # forgotten the old level, the runtime alerted only on the drops and the blips; the
    # positive control, never adopting, alerts on every evaluation there.
    span = [row for row in stored if shift.adopted_at <= row.at < LEVEL_UP + timedelta(hours=18)]
    assert len(span) > 20
    assert [row.at for row in span if row.status == "alert"] == [
        row.at for row in span if any(d <= row.at < d + 2 * STEP for d in DROPS)
        or row.at in BLIPS]
    never = rejudge(rule, {"adopt_after": "never"})
    was_firing, record, statuses = False, None, {}
    for row in stored:
        obs = never(float(row.value), was_firing, row.at)
        record = evaluate(obs, record, policy, row.at).record
        was_firing, statuses[row.at] = record.state.is_active, obs.status
    assert {statuses[row.at] for row in span} == {"alert"}
