"""The monthly review asks the guide's questions, on a seeded month whose answers are known.

October 2026, on SQLite and PostgreSQL (``db_url``), written through the real engine
(``timeline.alerts.process``), acks and incident records:

* ``queue_depth`` (sql_metric, ``max: 120``, evaluated every 10 min): 15 spikes of two
  evaluations each, 40 min apart. 4 are actionable (250, 300, 320, 400), 11 are noise or unattended
  (125 … 170, and one at 260 above the lowest actionable spike). 4 of 15 actionable:
  tune or delete; ``max`` 200 keeps the 4 and drops the 10 below 200 (the 260 stays).
  Resolves in 20 min: no runbook advice.
* ``checkout_errors``: 4 actionable episodes resolving in 40, 45, 50, 60 min (median
  45 min, over 30): improve the runbook; its records answer "no" 3 times of 4.
* ``disk_full``: 2 unattended episodes, no actionable one: tune or delete, no threshold.
* incidents without an alert: "Checkout down" (near checkout_errors by 2 labels and
  queue_depth by 1), "Orders stuck" (near queue_depth through its alerts' ``queue``
  label, which the rules file does not have), "Office wifi" (near no rule: the negative
  control), and one in September (not this month's).

December: one rule fires, is actionable, resolves in 5 min, its runbook sufficed — a
month with nothing to recommend, beside October's recommendations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import dagster as dg
import pytest

from alert_jobs.cli import main as cli
from alert_jobs.config import RulesFile, load_rules
from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Observation, Status, fingerprint
from alert_jobs.families.quality.backtest import (
    StoredEpisode,
    StoredEvaluation,
    best_threshold,
    roundest,
    threshold_candidates,
)
from alert_jobs.families.quality.definitions import build_definitions
from alert_jobs.families.quality.questions import near_rules
from alert_jobs.families.quality.report import to_html, to_markdown
from alert_jobs.families.quality.review import monthly_review, run_review
from alert_jobs.families.sql_metric.check import bounds_of, judge
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.evaluate import policy_for
from alert_jobs.runtime.resources import AlertJobsResource
from alert_jobs.store import Timeline
from tests.conftest import in_memory_instance, write_rules

OCT = datetime(2026, 10, 3, tzinfo=UTC)
DEC = datetime(2026, 12, 3, tzinfo=UTC)
MIN = timedelta(minutes=1)
STEP = 10 * MIN

RULES = """
defaults: {receivers: [console], timezone: UTC}
receivers: [{name: console, type: console}]
quality: {report_dir: REPORTS}
checks:
  sql_metric:
    - name: queue_depth
      database: sqlite://
      query: SELECT 1
      expect: {max: 120}
      for: 0m
      labels: {team: pay}
    - name: checkout_errors
      database: sqlite://
      query: SELECT 1
      expect: {max: 0}
      labels: {team: pay, service: checkout}
    - name: disk_full
      database: sqlite://
      query: SELECT 1
      expect: {max: 90}
      labels: {team: infra}
"""

#: queue_depth's spikes, in order: (value, actionable?).
SPIKES = [(130, False), (300, True), (140, False), (125, False), (150, False), (250, True),
          (160, False), (170, False), (320, True), (135, False), (260, False), (145, False),
          (400, True), (155, False), (165, False)]

TUNE_QUEUE = ("queue_depth: 27% actionable (4 of 15, under 50%); threshold max 120 → 200 "
              "would have kept 4 of 4 actionable episodes and dropped 10 of 11 noisy ones")
TUNE_DISK = ("disk_full: 0% actionable (0 of 2, under 50%); no threshold suggested: no "
             "actionable episode: consider deleting")
IMPROVE_CHECKOUT = ('checkout_errors: median time to resolve 45 min (over 30 min); runbook '
                    'not sufficient in 3 of 4 answers; missing: "how to drain the queue"; '
                    '"the dashboard link"')


def _queue_depth(timeline: Timeline, rules: RulesFile) -> None:
    rule = rules.rule("queue_depth")
    assert isinstance(rule, SqlMetricRule)
    policy = policy_for(rules, rule)
    labels = {"team": "pay", "queue": "orders"}
    fp = fingerprint(rule.name, labels)
    spikes = {OCT + timedelta(minutes=60 + 40 * k): s for k, s in enumerate(SPIKES)}
    at, i = OCT, 0
    while at <= max(spikes) + 2 * STEP:
        spike = spikes.get(at) or spikes.get(at - STEP)
        value = float(spike[0]) if spike else 50.0 + (i * 7) % 50
        record = timeline.alerts.get(fp)
        obs = judge(rule.name, value, bounds_of(rule), subject="queue depth",
                    window="10 minutes", labels=labels,
                    was_firing=record is not None and record.state.is_active)
        timeline.alerts.process(obs, policy, now=at)
        if at in spikes:
            actionable = spikes[at][1]
            if actionable or i % 2:  # the others resolve unattended
                timeline.actions.ack(fp, by="alice", now=at + 5 * MIN,
                                     outcome="actionable" if actionable else "noise")
        at, i = at + STEP, i + 1


def _fire(timeline: Timeline, rules: RulesFile, name: str, labels: dict[str, str],
          start: datetime, minutes: int, *, ack: bool) -> tuple[str, int]:
    policy = policy_for(rules, rules.rule(name))
    fp = fingerprint(name, labels)
    timeline.alerts.process(Observation(name, Status.ALERT, labels, 1.0), policy, now=start)
    record = timeline.alerts.get(fp)
    assert record is not None
    if ack:
        timeline.actions.ack(fp, by="bob", outcome="actionable", now=start + 2 * MIN)
    timeline.alerts.process(Observation(name, Status.OK, labels, 0.0), policy,
                            now=start + minutes * MIN)
    return fp, record.episode


def seed(timeline: Timeline, rules: RulesFile) -> dict[str, int]:
    """The month described above; the ids of the incidents without an alert."""
    _queue_depth(timeline, rules)
    labels = {"team": "pay", "service": "checkout"}
    answers = [(False, "the dashboard link"), (True, None), (False, "How to drain the queue "),
               (False, "how to drain the queue")]  # oldest first
    for k, (minutes, (sufficient, missing)) in enumerate(zip((40, 45, 50, 60), answers,
                                                             strict=True)):
        start = OCT + timedelta(days=3 + k)
        fp, episode = _fire(timeline, rules, "checkout_errors", labels, start, minutes,
                            ack=True)
        timeline.incidents.record(
            fp, episode, {"runbook_sufficient": sufficient, "runbook_missing": missing},
            by="bob", source="cli", rule="checkout_errors", title="checkout errors",
            labels=labels, started_at=start)
    for k in range(2):
        _fire(timeline, rules, "disk_full", {"team": "infra"},
              OCT + timedelta(days=10 + k), 5, ack=False)
    ids = {}
    for title, day, incident_labels in (
            ("Checkout down", 20, {"service": "checkout", "team": "pay", "region": "eu",
                                   "severity": "critical"}),
            ("Orders stuck", 21, {"queue": "orders"}),
            ("Office wifi", 22, {"site": "berlin"})):
        ids[title] = timeline.incidents.add(
            title, datetime(2026, 10, day, 14, tzinfo=UTC), by="carol",
            detected_by="customer report", labels=incident_labels).id
    timeline.incidents.add("Old outage", datetime(2026, 9, 20, tzinfo=UTC), by="carol",
                           labels={"team": "pay"})
    # December: nothing to recommend.
    fp, episode = _fire(timeline, rules, "checkout_errors", labels, DEC, 5, ack=True)
    timeline.incidents.record(fp, episode, {"runbook_sufficient": True}, by="bob",
                              source="cli", rule="checkout_errors", title="checkout errors",
                              labels=labels, started_at=DEC)
    return ids


Seeded = tuple[Timeline, RulesFile, Path, dict[str, int]]


def _seeded(url: str, tmp_path: Path) -> Iterator[Seeded]:
    path = write_rules(tmp_path / "alerts.yaml",
                       RULES.replace("REPORTS", str(tmp_path / "reports")))
    rules = load_rules(path)
    timeline = Timeline(url)
    ids = seed(timeline, rules)
    yield timeline, rules, path, ids
    timeline.dispose()


@pytest.fixture
def seeded(db_url: str, tmp_path: Path) -> Iterator[Seeded]:
    """The seeded month on SQLite and on PostgreSQL."""
    yield from _seeded(db_url, tmp_path)


@pytest.fixture
def seeded_sqlite(sqlite_url: str, tmp_path: Path) -> Iterator[Seeded]:
    """The same month on SQLite only (what reads it is covered on both above)."""
    yield from _seeded(sqlite_url, tmp_path)


def _add_texts(ids: dict[str, int]) -> list[str]:
    return [
        f'incident #{ids["Office wifi"]} "Office wifi" (2026-10-22 14:00 UTC; detected by '
        "customer report; labels site=berlin): add an alert; no rule shares a label with it",
        f'incident #{ids["Orders stuck"]} "Orders stuck" (2026-10-21 14:00 UTC; detected by '
        "customer report; labels queue=orders): add an alert; near: queue_depth (queue=orders)",
        f'incident #{ids["Checkout down"]} "Checkout down" (2026-10-20 14:00 UTC; detected '
        "by customer report; labels region=eu, service=checkout, severity=critical, "
        "team=pay): add an alert; near: checkout_errors (service=checkout, team=pay), "
        "queue_depth (team=pay)",
    ]


def test_the_review_asks_the_guides_questions(seeded: Seeded) -> None:
    timeline, rules, _, ids = seeded
    review = monthly_review(rules, timeline, "2026-10")
    assert [(a.kind, a.text) for a in review.advice] == [
        ("improve_runbook", IMPROVE_CHECKOUT),
        ("tune_or_delete", TUNE_DISK),
        ("tune_or_delete", TUNE_QUEUE),
        *(("add_alert", text) for text in _add_texts(ids)),
    ]
    checkout = review.runbook["checkout_errors"]
    assert (checkout.answers, checkout.no, checkout.share_no) == (4, 3, 0.75)
    assert "queue_depth" not in review.runbook  # nobody answered: "-" in the table
    assert review.counts() == {"runbook_answers": 4, "runbook_no_answers": 3,
                               "rules_runbook_insufficient": 1, "rules_improve_runbook": 1,
                               "rules_tune_or_delete": 2, "incidents_without_alert": 3}
    markdown, html = to_markdown(review), to_html(review)
    assert "| 3 of 4 (75%) |" in markdown
    for text in [IMPROVE_CHECKOUT, TUNE_QUEUE, TUNE_DISK, *_add_texts(ids)]:
        assert f"- {text}" in markdown
        assert f"<li>{escape(text)}</li>" in html, text
    assert "<h2>Improve the runbook</h2>" in html and "<td>3 of 4 (75%)</td>" in html
    assert "Old outage" not in markdown  # September's


def test_a_month_with_nothing_to_recommend_shows_nothing(seeded: Seeded) -> None:
    timeline, rules, _, _ = seeded
    october = monthly_review(rules, timeline, "2026-10")
    december = monthly_review(rules, timeline, "2026-12")
    assert october.advice  # positive control: the same code on the seeded month
    assert [r.rule for r, _ in december.rows] == ["checkout_errors"]
    assert december.advice == []
    assert december.runbook["checkout_errors"].text() == "0 of 1 (0%)"
    assert december.counts() == {"runbook_answers": 1, "runbook_no_answers": 0,
                                 "rules_runbook_insufficient": 0, "rules_improve_runbook": 0,
                                 "rules_tune_or_delete": 0, "incidents_without_alert": 0}
    markdown, html = to_markdown(december), to_html(december)
    for heading in ("Improve the runbook", "Tune or delete", "Add an alert"):
        assert heading not in markdown and heading not in html
        assert heading in to_markdown(october) and heading in to_html(october)


def test_the_asset_metadata_and_the_cli_carry_the_answers(seeded_sqlite: Seeded,
                                                          tmp_path: Path, capsys) -> None:
    timeline, rules, path, ids = seeded_sqlite
    assets = list(build_definitions(rules).assets or [])
    resource = AlertJobsResource(rules_file=str(path), database_url=timeline.url)
    with in_memory_instance() as instance:
        result = dg.materialize(assets[1:2], partition_key="2026-10-01", instance=instance,
                                resources={"alert_jobs": resource})
    assert result.success
    meta = result.asset_materializations_for_node("alert_quality_monthly")[0].metadata
    numbers = {k: meta[k].value for k in ("rules_runbook_insufficient", "rules_tune_or_delete",
                                          "incidents_without_alert", "rules_improve_runbook",
                                          "runbook_answers", "runbook_no_answers")}
    assert numbers == {"rules_runbook_insufficient": 1, "rules_tune_or_delete": 2,
                       "incidents_without_alert": 3, "rules_improve_runbook": 1,
                       "runbook_answers": 4, "runbook_no_answers": 3}
    assert all(type(v) is int for v in numbers.values())
    recommendations = str(meta["recommendations"].value)
    assert f"- {TUNE_QUEUE}" in recommendations and f"- {IMPROVE_CHECKOUT}" in recommendations
    assert f"- {TUNE_QUEUE}" in str(meta["review"].value)

    assert cli.main(["--database-url", timeline.url, "--rules", str(path), "quality",
                     "review", "--month", "2026-10", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"- {TUNE_QUEUE}" in out and f"- {_add_texts(ids)[2]}" in out
    sent = run_review(rules, timeline, "2026-10", send=False, out_dir=tmp_path / "out")
    assert escape(TUNE_QUEUE) in sent.html_path.read_text()


# ----- the pure parts ---------------------------------------------------------------


def test_near_rules_rank_by_shared_labels_and_ignore_severity() -> None:
    rule_labels = {"a": {("team", "pay")}, "b": {("team", "pay"), ("service", "checkout")},
                   "c": {("team", "infra")}, "d": {("severity", "critical")}}
    assert near_rules({"team": "pay", "service": "checkout", "severity": "critical"},
                      rule_labels) == [("b", ["service=checkout", "team=pay"]),
                                       ("a", ["team=pay"])]
    assert near_rules({"team": "ops"}, rule_labels) == []  # same key, other value


@pytest.mark.parametrize(("lo", "hi", "key", "expected"), [
    (170, 250, "max", 200), (165, 170, "max", 165), (179.83, 183.1, "max", 180),
    (0.12, 0.125, "max", 0.12), (100, 130, "min", 130), (41.5, 48.2, "min", 48),
    (-20, -3, "min", -10),
])
def test_roundest_bound_fires_like_the_stored_value(lo: float, hi: float, key: str,
                                                    expected: float) -> None:
    assert roundest(lo, hi, key=key) == expected


def test_candidates_go_outward_from_the_current_bound() -> None:
    values = [50, 130, 125, 300, 130, 80, 250]
    assert threshold_candidates(values, 120, "max") == [125, 200, 250, 300]
    assert threshold_candidates(values, 100, "min") == [80, 50]
    assert threshold_candidates([10, 20], 120, "max") == []
    with pytest.raises(ValueError, match="max or min"):
        threshold_candidates(values, 1, "width")


def _above(bound: float):
    def judge_one(ev: StoredEvaluation, was_firing: bool) -> Observation:
        return Observation("r", Status.ALERT if ev.value is not None and ev.value > bound
                           else Status.OK, {}, ev.value)
    return judge_one


def _history(peaks: list[tuple[float, str]]) -> tuple[list[StoredEvaluation],
                                                     list[StoredEpisode]]:
    """One evaluation per peak, each between two quiet ones; one stored episode each."""
    evals, episodes = [], []
    for k, (peak, verdict) in enumerate(peaks):
        at = OCT + k * 3 * STEP
        evals += [StoredEvaluation(at, "fp", "ok", 10.0),
                  StoredEvaluation(at + STEP, "fp", "alert", peak),
                  StoredEvaluation(at + 2 * STEP, "fp", "ok", 10.0)]
        episodes.append(StoredEpisode("fp", at + STEP, at + 2 * STEP, verdict))
    return evals, episodes


def test_best_threshold_keeps_every_actionable_episode_and_drops_the_most_noise() -> None:
    evals, episodes = _history([(130, "noisy"), (300, "actionable"), (170, "noisy"),
                                (250, "actionable"), (260, "noisy"), (140, "noisy")])
    choice = best_threshold(evals, episodes, RulePolicy(rule="r"), key="max", current=120,
                            judge_for=_above, end=OCT + timedelta(days=1))
    assert choice is not None
    assert (choice.key, choice.current, choice.value) == ("max", 120, 200)
    r = choice.result
    assert (r.actionable, r.actionable_caught, r.noisy, r.noisy_dropped) == (2, 2, 4, 3)
    # Positive and negative controls: a noisy peak above every actionable one cannot go,
    # and when the lowest peak is actionable no bound drops anything.
    evals, episodes = _history([(130, "actionable"), (170, "noisy")])
    assert best_threshold(evals, episodes, RulePolicy(rule="r"), key="max", current=120,
                          judge_for=_above, end=OCT + timedelta(days=1)) is None
