"""The baseline benchmarks' code paths, tiny: the accuracy generator labels what it
injects, both detectors see an injected anomaly and the scoring counts it; the cost
benchmark's two paths agree on every rule's band on a real timeline. Correctness, not
speed or accuracy targets: there is no timing or F1 assert."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from alert_jobs.core import baseline as core
from alert_jobs.store import Timeline, schema
from benchmarks import baseline_accuracy as acc
from benchmarks import baseline_cost as cost

#: A benchmark's quick run: `make bench` checks it, `make test` leaves it out.
pytestmark = pytest.mark.benchmark

# ----- accuracy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def series() -> list[acc.Series]:
    return acc.generate(5)


def test_the_generator_is_deterministic_and_labels_what_it_injects(
        series: list[acc.Series]) -> None:
    again = acc.generate(5)
    assert [s.values for s in again] == [s.values for s in series]
    assert [s.kind for s in series] == list(acc.SERIES_KINDS)
    week = 7 * 288
    for s in series:
        assert len(s.times) == (acc.WARMUP_WEEKS + acc.SCORED_WEEKS) * week
        assert s.scored_from == acc.WARMUP_WEEKS * week
        assert len(s.events) == acc.EVENTS_PER_SERIES
        for ev in s.events:
            assert s.times[s.scored_from] <= ev.start < ev.end
            assert ev.kind in acc.KINDS_OF[s.kind]
    zeros = [(s, ev) for s in series for ev in s.events if ev.kind == "zero"]
    assert zeros, "the seed gives at least one drop to zero"
    for s, ev in zeros:  # a drop to zero is zero in the metric (hour windows: at its end)
        i = s.times.index(ev.start)
        assert s.values[i] == 0 or s.kind == "orders_hour"
    spikes = [(s, ev) for s in series for ev in s.events if ev.kind == "spike"]
    s, ev = spikes[0]
    i = s.times.index(ev.start)
    assert s.values[i] > s.values[i - 7 * 288]  # above the same time last week


def test_scoring_counts_episodes_events_and_delays() -> None:
    s = acc.Series("x", "gauge", [acc.START + i * acc.STEP for i in range(40)],
                   [1.0] * 40, 0,
                   [acc.Event("spike", acc.START + 10 * acc.STEP, acc.START + 14 * acc.STEP),
                    acc.Event("dip", acc.START + 30 * acc.STEP, acc.START + 32 * acc.STEP)])
    alerts = [False] * 40
    alerts[12] = alerts[13] = True  # inside the spike: detected 10 minutes late
    alerts[20] = True  # a false alert
    alerts[35] = True  # 15 min after the dip ended: within the tolerance
    result = acc.score("t", [s], [alerts], 0.0)
    o = result.overall
    assert (o.events, o.detected, o.episodes, o.true_episodes, o.false_alerts) == (2, 2, 3, 2, 1)
    assert o.recall == 1.0 and o.precision == pytest.approx(2 / 3)
    assert sorted(o.delays_min) == [10.0, 25.0]
    late = [False] * 40
    late[36] = True  # 20 minutes after: too late, a false alert; the dip is missed
    o = acc.score("t", [s], [late], 0.0).overall
    assert (o.detected, o.false_alerts) == (0, 1)
    bad = [True, True, False, True, True, True, False, False, True] + [False] * 31
    pages = acc.engine_pages(s, bad, acc.Engine(for_=timedelta(minutes=10)))
    assert pages[:9] == [False] * 5 + [True] + [False] * 3  # bad for 10 minutes first
    kept = acc.engine_pages(s, bad, acc.Engine(keep_firing_for=timedelta(minutes=10)))
    assert kept[:12] == [True] * 11 + [False]  # resolved once good for 10 minutes
    engine = acc.Engine(keep_firing_for=timedelta(minutes=10))
    engine.step(True, s.times[0])
    engine.step(False, s.times[1])
    assert engine.state == "recovering" and engine.active_since == s.times[0]


def test_both_detectors_find_an_injected_spike_and_the_table_comes_out(
        series: list[acc.Series], tmp_path: Path) -> None:
    gauge = next(s for s in series if s.kind == "gauge")
    flags = acc.baseline_alerts(gauge)
    assert len(flags) == len(gauge.times) - gauge.scored_from
    base = acc.score("baseline", [gauge], [flags], 0.0)
    assert base.overall.detected >= 1  # positive control: an injected anomaly is seen
    quiet = acc.Series(gauge.name, gauge.kind, gauge.times, gauge.values, gauge.scored_from)
    # the same points with no labels: every episode counts as a false alert
    assert acc.score("b", [quiet], [flags], 0.0).overall.false_alerts == base.overall.episodes
    z = acc.zscore_alerts(gauge)
    assert len(z) == len(flags) and any(z)
    result = acc.run(2, events_per_series=2, variants=(acc.Variant("baseline"),))
    assert result.series == 2 and result.events == 4
    assert result.baseline.overall.events == result.zscore.overall.events == 4
    table = acc.format_table(result)
    assert "baseline, for 10m, keep_firing_for 1h" in table and "targets:" in table
    assert "z-score, for 10m, keep_firing_for 1h" in table
    out = tmp_path / "acc.json"
    acc.write_results(result, out)
    (row,) = json.loads(out.read_text())["results"]
    assert row["name"] == "baseline accuracy" and row["events"] == 4
    assert set(row["baseline"]["by_kind"]) == set(acc.KINDS)


def test_the_baseline_is_the_learner_and_the_engine_decides_what_pages(
        series: list[acc.Series]) -> None:
    gauge = next(s for s in series if s.kind == "gauge")
    learner = core.Learner(acc.DEFAULT, acc.TIMEZONE)
    start = gauge.scored_from
    learner.learn([core.Point(t, v) for t, v in
                   zip(gauge.times[:start], gauge.values[:start], strict=True)])
    by_hand = [learner.evaluate(v, t).is_alert
               for t, v in zip(gauge.times[start:], gauge.values[start:], strict=True)]
    observed = acc.baseline_observations(gauge)
    assert observed == by_hand and any(observed)
    engine = acc.Engine(for_=timedelta(minutes=10), keep_firing_for=timedelta(hours=1))
    pages = acc.baseline_alerts(gauge, engine=engine)
    assert pages == acc.engine_pages(gauge, observed, acc.Engine(
        for_=timedelta(minutes=10), keep_firing_for=timedelta(hours=1)))
    assert pages != observed  # for and keep_firing_for change what pages


def test_errors_are_a_30_minute_window_watched_above_only(series: list[acc.Series]) -> None:
    errors = next(s for s in series if s.kind == "errors_30m")
    assert acc.rule_settings(errors).direction == "above"
    assert acc.rule_settings(next(s for s in series if s.kind == "gauge")).direction == "both"
    assert all(ev.kind in ("spike", "level_shift") for ev in errors.events)
    assert all(v >= 0 and v.is_integer() for v in errors.values)
    # a rolling sum of six counts moves less from one point to the next than the counts
    steps = [abs(b - a) for a, b in zip(errors.values, errors.values[1:], strict=False)]
    assert sorted(steps)[len(steps) // 2] < 0.5 * sorted(errors.values)[len(errors.values) // 2]
    n = 200
    times = [acc.START + i * acc.STEP for i in range(n)]
    values = [100.0 + (i % 5) for i in range(n)]
    values[150:156] = [10.0] * 6  # a dip: news for orders, not for errors
    values[180:186] = [300.0] * 6  # a spike: news for both

    def flagged(kind: str) -> set[int]:
        z = acc.zscore_alerts(acc.Series(kind, kind, times, values, 0))
        return {i for i, f in enumerate(z) if f}

    assert 150 in flagged("orders_5m") and 180 in flagged("orders_5m")
    assert 150 not in flagged("errors_30m") and 180 in flagged("errors_30m")


# ----- cost --------------------------------------------------------------------------------


def test_a_tiny_cost_run_agrees_between_the_two_paths(tmp_path: Path) -> None:
    results, skipped = cost.run(3, 21, reps=2, cold=False, postgres=False, workdir=tmp_path)
    (r,) = results
    assert r.backend == "sqlite" and r.rules == 3 and r.rows == 3 * 21 * 288
    assert r.mismatches == 0 and r.points >= 20  # a band, not learning
    assert r.ours_ms > 0 and r.naive_ms > 0 and r.ratio > 0
    assert any("ix_alert_evaluations_rule_at" in line for line in r.plan)
    assert "baseline rule evaluation postgresql" in skipped
    table = cost.format_table(results, skipped)
    assert "sqlite" in table and "BANDS DIFFER" not in table
    out = tmp_path / "cost.json"
    cost.write_results(results, skipped, out)
    (row,) = json.loads(out.read_text())["results"]
    assert row["name"] == "baseline rule evaluation (sqlite)" and row["mismatches"] == 0


def test_the_paths_leave_out_the_same_alerting_evaluations(db_url: str) -> None:
    """An alerting evaluation with a wild value inside the slot changes neither path's
    band; the same value stored as ``ok`` moves both alike (the positive control), and a
    band that differs is seen by ``agree``."""
    cost.load(db_url, 2, 21)
    timeline = Timeline(db_url)
    try:
        before = cost.evaluate_ours(timeline, 0)
        assert before.band is not None and cost.agree(before, cost.evaluate_naive(timeline, 0))
        (start, end), *_ = reversed(core.slot_ranges(cost.END, "hour_of_week",
                                                     cost.SETTINGS.history, cost.TIMEZONE))
        at = start + (end - start) / 2 + timedelta(seconds=1)  # between two evaluations
        row = {"at": at, "rule": cost.rule_name(0), "fingerprint": cost.fingerprint(0),
               "value": 1e6, "expected": "", "summary": "", "state_after": "firing",
               "run_id": None, "details": {}}
        with timeline.tx() as conn:
            conn.execute(schema.evaluations.insert(), [{**row, "status": "alert"}])
        kept_out = cost.evaluate_ours(timeline, 0)
        assert kept_out == before and cost.agree(kept_out, cost.evaluate_naive(timeline, 0))
        with timeline.tx() as conn:
            conn.execute(schema.evaluations.insert(),
                         [{**row, "status": "ok", "at": at + timedelta(seconds=1)}])
        counted = cost.evaluate_ours(timeline, 0)
        assert counted.band is not None and counted.band.points == before.band.points + 1
        assert cost.agree(counted, cost.evaluate_naive(timeline, 0))
        assert not cost.agree(before, counted)
    finally:
        timeline.dispose()
