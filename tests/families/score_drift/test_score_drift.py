"""score_drift against real SQLite and PostgreSQL tables and real Parquet/CSV files."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import AlertState, Severity, Status
from alert_jobs.families.score_drift.check import Grid, histogram_from_values
from alert_jobs.families.score_drift.run import (
    SegmentResult,
    build_references,
    check_segments,
    discover,
    hour_slots,
    reference_window,
)
from alert_jobs.families.score_drift.store import DriftReferenceStore
from alert_jobs.store import Timeline
from tests.families.score_drift.drift_data import (
    BAD_VALUES,
    EDGE_VALUES,
    NOW,
    Row,
    engine,
    scenario,
    spread,
    write_files,
    write_table,
)


def rules(source: str, **more: Any) -> Any:
    fields = "".join(f"\n      {k}: {v}" for k, v in more.items())
    return parse_rules(f"""
receivers: [{{name: console, type: console}}]
checks:
  score_drift:
    - name: model_scores
      {source}
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      feature_columns: [amount]
      min_samples: 500
      high_score: {{threshold: 0.9, min_samples: 1000}}{fields}
""")


def table_source(url: str, table: str = "scores") -> str:
    return f"database: '{url}'\n      table: {table}"


def by_check(result: SegmentResult) -> dict[str, Any]:
    out = {}
    for o in result.observations:
        key = o.labels["check"] + (f":{o.labels['feature']}" if "feature" in o.labels else "")
        out[key] = o
    return out


def run(ruleset: Any, timeline: Timeline, segments: list[str] | None = None,
        **kw: Any) -> dict[str, SegmentResult]:
    rule = ruleset.checks.score_drift[0]
    results = check_segments(ruleset, rule, timeline, segments, now=kw.pop("now", NOW), **kw)
    return {r.segment: r for r in results}


# ----- the same numbers everywhere ----------------------------------------------------


def test_same_numbers_on_sqlite_postgres_parquet_and_csv(sqlite_url: str, pg_url: str,
                                                         tmp_path: Path) -> None:
    rows = scenario(3, current={"fraud-v3": {"high": 0.3}})
    cur_start = NOW - timedelta(hours=1)
    # Values on fine-bin edges (where float rounding decides the bin) and bad values.
    rows += [Row(at, v, "fraud-v3") for at, v in zip(
        spread(cur_start, NOW, len(EDGE_VALUES)), EDGE_VALUES, strict=True)]
    rows += [Row(cur_start + timedelta(seconds=5), v, "fraud-v3")
             for v in [*BAD_VALUES, None]]
    write_table(sqlite_url, rows)
    write_table(pg_url, rows)
    files = write_files(tmp_path / "files", rows)
    results = {}
    for name, source in [("sqlite", table_source(sqlite_url)), ("postgresql", table_source(
            pg_url)), ("parquet", f"files: '{files['parquet']}'"),
            ("csv", f"files: '{files['csv']}'")]:
        timeline = Timeline(f"sqlite:///{tmp_path / f'{name}-timeline.db'}")
        results[name] = run(rules(source), timeline)
    base = results["postgresql"]
    assert set(base) == {"fraud-v3", "churn-v1"}
    for name, res in results.items():
        for seg in base:
            a, b = base[seg].metrics, res[seg].metrics
            assert set(a) == set(b), name
            for key in a:
                if key in ("nan_scores", "null_scores") and name in ("sqlite", "csv"):
                    continue  # SQLite stores NaN as NULL; checked below
                if key.startswith(("mean", "std", "mean_shift")):
                    assert b[key] == pytest.approx(a[key], rel=1e-12), (name, seg, key)
                elif key != "reference_age_hours":
                    assert b[key] == a[key], (name, seg, key)
            assert res[seg].bins_markdown == base[seg].bins_markdown
    fraud_pg, fraud_lite = base["fraud-v3"].metrics, results["sqlite"]["fraud-v3"].metrics
    assert fraud_pg["nan_scores"] == 1 and fraud_pg["null_scores"] == 1
    assert fraud_lite["nan_scores"] == 0 and fraud_lite["null_scores"] == 2
    assert fraud_pg["inf_scores"] == 2 and fraud_pg["out_of_range_scores"] == 2
    assert results["parquet"]["fraud-v3"].metrics["nan_scores"] == 1


def test_database_bins_equal_numpy_bins(db_url: str) -> None:
    """The SQL bucketing (width_bucket / CAST) puts every value where numpy does."""
    from alert_jobs.families.score_drift.source import ScoreTable, WindowSpec, read_histograms

    values = [*EDGE_VALUES, *np.random.default_rng(2).random(3000).tolist()]
    start = NOW - timedelta(hours=1)
    write_table(db_url, [Row(at, v, "m") for at, v in zip(spread(start, NOW, len(values)),
                                                          values, strict=True)])
    grid = Grid(0.0, 1.0, 1000)
    src = ScoreTable(db_url, "scores", "scored_at", "score")
    (hist,) = read_histograms(src, grid, WindowSpec(start, NOW), threshold=0.9).values()
    expected = histogram_from_values(values, grid, threshold=0.9)
    assert np.array_equal(hist.counts, expected.counts)
    assert hist.above == expected.above and hist.total == pytest.approx(expected.total)


# ----- alerts -------------------------------------------------------------------------


def test_high_scores_fire_with_the_guide_message(db_url: str) -> None:
    write_table(db_url, scenario(current={"fraud-v3": {"high": 0.5}}))
    timeline = Timeline(db_url)
    res = run(rules(table_source(db_url)), timeline)
    fraud, churn = by_check(res["fraud-v3"]), by_check(res["churn-v1"])
    dist = fraud["distribution"]
    assert dist.status == Status.ALERT and dist.severity == Severity.CRITICAL
    assert dist.summary.startswith(
        "PSI of fraud-v3 scores in the last 1 h is ")
    assert ("(expected < 0.10 against the previous 7 days; n = 2,000 vs 7,000). "
            "High-score rate 50 % (expected about ") in dist.summary
    high = fraud["high_score_rate"]
    assert high.status == Status.ALERT and high.labels == {"model": "fraud-v3",
                                                           "check": "high_score_rate"}
    assert high.summary.startswith("50 % of fraud-v3 scores in the last 1 h are above 0.9")
    assert all(o.status == Status.OK for o in churn.values()), [o.summary for o in
                                                                churn.values()]
    states = {(a.labels["model"], a.labels["check"]): a.state for a in timeline.alerts.list()}
    assert states[("fraud-v3", "distribution")] == AlertState.FIRING
    assert ("churn-v1", "distribution") not in states or \
        states[("churn-v1", "distribution")] == AlertState.INACTIVE
    m = res["fraud-v3"].metrics
    assert m["psi"] > 0.25 and 0.45 < m["high_score_rate"] < 0.55
    assert all(isinstance(v, float) for v in m.values())
    assert "| bin | scores | reference | current |" in res["fraud-v3"].bins_markdown


def test_high_score_rate_needs_the_minimum_sample(sqlite_url: str) -> None:
    write_table(sqlite_url, scenario(current={"fraud-v3": {"high": 0.5}}))
    ruleset = rules(table_source(sqlite_url)).model_copy()
    rule = ruleset.checks.score_drift[0]
    assert rule.high_score is not None
    rule.high_score.min_samples = 10_000  # the guide's: at least 10,000 scores
    res = run(ruleset, Timeline(sqlite_url), ["fraud-v3"])
    high = by_check(res["fraud-v3"])["high_score_rate"]
    assert high.status == Status.NODATA
    assert "only judged from 10,000 scores on" in high.summary


def test_broken_feature_and_silent_pipeline(db_url: str) -> None:
    write_table(db_url, scenario(current={"fraud-v3": {"null_amount": 0.4},
                                          "churn-v1": {"n": 0}}))
    res = run(rules(table_source(db_url), volume="{min_expected: 10}"), Timeline(db_url),
              ["fraud-v3", "churn-v1"])
    nulls = by_check(res["fraud-v3"])["null_rate:amount"]
    assert nulls.status == Status.ALERT and nulls.severity == Severity.CRITICAL
    assert nulls.labels == {"model": "fraud-v3", "check": "null_rate", "feature": "amount"}
    assert nulls.summary.startswith(
        "Null rate of feature amount for fraud-v3 scores in the last 1 h is 39 % (expected "
        "about 1.0 % against the previous 7 days, alerting from 6.0 %; 773 of 2,000 rows)")
    silent = by_check(res["churn-v1"])
    assert silent["volume"].status == Status.ALERT
    assert silent["volume"].severity == Severity.CRITICAL
    assert silent["volume"].summary.startswith(
        "Expected about 42 churn-v1 scores in the last 1 h (from the previous 7 days")
    dist = silent["distribution"]
    assert dist.status == Status.NODATA
    assert "no valid churn-v1 scores in the last 1 h; PSI and KS need at least 500" \
        in dist.summary


def test_nan_inf_and_out_of_range_scores_are_counted_not_crashed_on(db_url: str) -> None:
    bad = [math.nan, math.inf, -math.inf, 7.0, -1.0] * 20
    write_table(db_url, scenario(current={"fraud-v3": {"bad": bad}}))
    res = run(rules(table_source(db_url)), Timeline(db_url), ["fraud-v3"])
    invalid = by_check(res["fraud-v3"])["invalid_scores"]
    m = res["fraud-v3"].metrics
    pg = db_url.startswith("postgresql")
    assert m["inf_scores"] == 40 and m["out_of_range_scores"] == 40
    assert m["nan_scores"] == (20 if pg else 0)
    assert m["null_scores"] == (0 if pg else 20)  # SQLite stores NaN as NULL
    assert invalid.status == Status.ALERT
    assert "40 infinite, 40 out of range" in invalid.summary
    assert by_check(res["fraud-v3"])["distribution"].status == Status.OK


def test_missing_table_and_column_are_error_alerts_naming_them(db_url: str) -> None:
    write_table(db_url, scenario(ref_per_model=100, cur_per_model=10))
    timeline = Timeline(db_url)
    res = run(rules(table_source(db_url, "no_such_scores")), timeline, ["fraud-v3"])
    (obs,) = res["fraud-v3"].observations
    assert obs.status == Status.ERROR
    assert "table no_such_scores not found in" in obs.summary
    assert obs.labels == {"model": "fraud-v3", "check": "distribution"}
    eng = engine(db_url)
    with eng.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE scores RENAME COLUMN amount TO amount_eur")
    eng.dispose()
    res = run(rules(table_source(db_url)), timeline, ["fraud-v3"])
    (obs,) = res["fraud-v3"].observations
    assert "column(s) amount not found in table scores" in obs.summary
    assert "amount_eur" in obs.summary  # what the table does have


def test_unreachable_database_is_an_error_without_the_password(sqlite_url: str) -> None:
    url = "postgresql://monitor:hunter2pw@127.0.0.1:1/app"
    res = run(rules(table_source(url), query_timeout="2s"), Timeline(sqlite_url), ["fraud-v3"])
    (obs,) = res["fraud-v3"].observations
    assert obs.status == Status.ERROR and "hunter2pw" not in obs.summary
    assert "127.0.0.1:1" in obs.summary


def test_a_malformed_database_url_is_an_error_alert_not_a_crash(sqlite_url: str) -> None:
    url = "postgresql://monitor:hunter2pw@127.0.0.1:notaport/app"
    res = run(rules(table_source(url)), Timeline(sqlite_url), ["fraud-v3"])
    (obs,) = res["fraud-v3"].observations
    assert obs.status == Status.ERROR and "bad database URL" in obs.summary
    assert "hunter2pw" not in obs.summary


# ----- references ---------------------------------------------------------------------


def test_the_check_reads_only_the_current_window(db_url: str) -> None:
    write_table(db_url, scenario())
    ruleset = rules(table_source(db_url))
    rule = ruleset.checks.score_drift[0]
    timeline = Timeline(db_url)
    built = build_references(rule, timeline, ["fraud-v3", "churn-v1"], now=NOW, run_id="r1")
    assert [b.segment for b in built] == ["fraud-v3", "churn-v1"]
    assert built[0].metadata(rule)["valid_scores"] == 7000
    # Delete every reference row from the source: the stored summary is all a check needs.
    eng = engine(db_url)
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM scores WHERE scored_at < :t"),
                     {"t": (NOW - timedelta(hours=1)) if db_url.startswith("postgresql")
                      else (NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")})
    eng.dispose()
    res = run(ruleset, timeline)
    assert not res["fraud-v3"].reference_built
    assert res["fraud-v3"].metrics["n_reference"] == 7000
    assert by_check(res["fraud-v3"])["distribution"].status == Status.OK
    # Changing what the bins depend on rebuilds the reference (now from an empty window).
    rule.fine_bins = 500
    res = run(ruleset, timeline, ["fraud-v3"])
    assert res["fraud-v3"].reference_built
    assert by_check(res["fraud-v3"])["distribution"].status == Status.NODATA


def test_a_new_models_small_reference_is_rebuilt_hourly_until_it_can_judge(
        sqlite_url: str) -> None:
    """Discovered in its first hour, a model has no history: its first reference is
    empty. It is rebuilt (at most hourly) until it holds min_samples, not only by the
    daily schedule — else the new model would go unjudged for up to a day."""
    rng = np.random.default_rng(3)
    write_table(sqlite_url, [Row(t, float(rng.beta(2, 8)), "fraud-v3")
                             for t in spread(NOW - timedelta(days=1), NOW, 24_000)])
    ruleset = rules(table_source(sqlite_url))
    timeline = Timeline(sqlite_url)
    first = run(ruleset, timeline, ["fraud-v3"], now=NOW - timedelta(hours=23))["fraud-v3"]
    assert first.reference_built and first.metrics["n_reference"] == 0
    assert by_check(first)["distribution"].status == Status.NODATA
    soon = run(ruleset, timeline, ["fraud-v3"],
               now=NOW - timedelta(hours=22, minutes=30))["fraud-v3"]
    assert not soon.reference_built  # not on every run
    later = run(ruleset, timeline, ["fraud-v3"])["fraud-v3"]
    assert later.reference_built and later.metrics["n_reference"] == 23_000
    assert by_check(later)["distribution"].status == Status.OK
    again = run(ruleset, timeline, ["fraud-v3"], now=NOW + timedelta(hours=2))["fraud-v3"]
    assert not again.reference_built  # big enough: the daily schedule rebuilds it


def test_seasonal_reference_compares_the_same_hour_of_week(sqlite_url: str) -> None:
    rng = np.random.default_rng(4)
    rows = []
    # Four weeks of hourly data: Thursdays 11:00 score high (a weekly batch), others low.
    start = NOW - timedelta(weeks=4, hours=1)
    at = start
    while at < NOW:
        thursday_11 = at.weekday() == 3 and at.hour == 11
        for t in spread(at, at + timedelta(hours=1), 400 if thursday_11 else 20):
            rows.append(Row(t, float(rng.beta(8, 2) if thursday_11 else rng.beta(2, 8)), "m"))
        at += timedelta(hours=1)
    write_table(sqlite_url, rows)
    seasonal = rules(table_source(sqlite_url), reference="{kind: seasonal, weeks: 4}",
                     min_samples=50, volume="{min_expected: 10}")
    fixed = rules(table_source(sqlite_url), min_samples=50)
    rule = seasonal.checks.score_drift[0]
    assert reference_window(rule, NOW) == (NOW - timedelta(weeks=4, hours=1),
                                           NOW - timedelta(hours=1))
    assert hour_slots(NOW - timedelta(hours=1), NOW) == [3 * 24 + 11]
    s = run(seasonal, Timeline(f"{sqlite_url}-seasonal"), ["m"])["m"]
    f = run(fixed, Timeline(f"{sqlite_url}-fixed"), ["m"])["m"]
    assert s.metrics["psi"] < 0.1 < 0.25 < f.metrics["psi"]
    assert s.metrics["n_reference"] == 4 * 400
    assert s.metrics["rows_expected"] == pytest.approx(400)
    dist = by_check(s)["distribution"]
    assert "against the same hour of the week in the last 4 weeks" in dist.summary
    stored = DriftReferenceStore(Timeline(f"{sqlite_url}-seasonal")).load("model_scores", "m")
    assert len(stored) == 168


def test_seasonal_window_a_few_seconds_past_the_hour_weighs_that_hour_by_its_seconds(
        sqlite_url: str) -> None:
    """The hourly schedule runs at 12:00:05: the window touches hour 12 for 5 seconds.
    Thursdays 12:00 are a busy batch hour with other scores; the expectation must be
    hour 11's, not the mean of hours 11 and 12 (a false 'silent pipeline' and PSI)."""
    rng = np.random.default_rng(7)
    rows = []
    for week in range(1, 5):
        day = NOW - timedelta(weeks=week)
        rows += [Row(t, float(rng.beta(2, 8)), "m")
                 for t in spread(day - timedelta(hours=1), day, 400)]
        rows += [Row(t, float(rng.beta(8, 2)), "m")
                 for t in spread(day, day + timedelta(hours=1), 2000)]
    rows += [Row(t, float(rng.beta(2, 8)), "m")
             for t in spread(NOW - timedelta(hours=1), NOW, 400)]
    write_table(sqlite_url, rows)
    seasonal = rules(table_source(sqlite_url), reference="{kind: seasonal, weeks: 4}",
                     min_samples=50, volume="{min_expected: 10}")
    res = run(seasonal, Timeline(sqlite_url), ["m"], now=NOW + timedelta(seconds=5))["m"]
    assert res.metrics["rows_expected"] == pytest.approx(400, rel=0.01)
    assert by_check(res)["volume"].status == Status.OK
    assert res.metrics["n_reference"] == 4 * 400  # hour 11 only
    assert res.metrics["psi"] < 0.1


def test_pinned_reference_is_the_training_period(sqlite_url: str) -> None:
    write_table(sqlite_url, scenario())
    ruleset = rules(table_source(sqlite_url),
                    reference="{kind: pinned, start: '2026-01-08 12:00', end: '2026-01-09'}")
    res = run(ruleset, Timeline(sqlite_url), ["fraud-v3"])["fraud-v3"]
    assert res.metrics["n_reference"] == 500  # 7,000 over 7 days: half a day of them
    assert "2026-01-08 12:00 to 2026-01-09 00:00 UTC" in by_check(res)["distribution"].summary


def test_pinned_range_with_an_offset_is_read_as_utc(sqlite_url: str) -> None:
    """'2026-01-08T14:00+02:00' is 12:00 UTC: the same rows as the UTC range above, on
    SQLite too (where times are compared as UTC text)."""
    write_table(sqlite_url, scenario())
    counts = {}
    for start, end in [("2026-01-15 07:00", "2026-01-15 11:00"),
                       ("2026-01-15T09:00:00+02:00", "2026-01-15T13:00:00+02:00")]:
        ruleset = rules(table_source(sqlite_url), reference=f"{{kind: pinned, start: "
                        f"'{start}', end: '{end}'}}", min_samples=100)
        res = run(ruleset, Timeline(f"{sqlite_url}-{len(counts)}"), ["fraud-v3"])["fraud-v3"]
        assert "2026-01-15 07:00 to 2026-01-15 11:00 UTC" in \
            by_check(res)["distribution"].summary
        counts[start] = res.metrics["n_reference"]
    # 4 reference hours (the current hour's 2,000 rows start at 11:00 UTC)
    assert set(counts.values()) == {7000 * 4 // 168}


def test_sampling_with_tablesample_on_postgres(pg_url: str) -> None:
    write_table(pg_url, scenario(ref_per_model=40_000, models=("fraud-v3",)))
    ruleset = rules(table_source(pg_url), sample_percent=50)
    rule = ruleset.checks.score_drift[0]
    (build,) = build_references(rule, Timeline(pg_url), ["fraud-v3"], now=NOW)
    meta = build.metadata(rule)
    assert 0 < meta["valid_scores"] < 40_000
    assert meta["estimated_rows"] == pytest.approx(40_000, rel=0.3)
    res = run(ruleset, Timeline(pg_url), ["fraud-v3"])["fraud-v3"]
    assert res.metrics["rows_expected"] == pytest.approx(40_000 / 7 / 24, rel=0.3)
    assert res.metrics["n_current"] == 2000  # the current hour is not sampled by default


def test_segments_are_discovered_and_checked_apart(sqlite_url: str) -> None:
    write_table(sqlite_url, scenario(current={"fraud-v3": {"high": 0.5}}))
    ruleset = rules(table_source(sqlite_url))
    rule = ruleset.checks.score_drift[0]
    assert discover(rule, NOW) == ["churn-v1", "fraud-v3"]
    timeline = Timeline(sqlite_url)
    run(ruleset, timeline)
    firing = {a.labels["model"] for a in timeline.alerts.list() if a.state == AlertState.FIRING}
    assert firing == {"fraud-v3"}
    # Checking only churn-v1 must not resolve fraud-v3's alerts.
    run(ruleset, timeline, ["churn-v1"])
    assert {a.labels["model"] for a in timeline.alerts.list() if a.state == AlertState.FIRING} \
        == {"fraud-v3"}
    # A segment value is a bound parameter, never SQL.
    evil = "x' OR '1'='1"
    res = run(ruleset, timeline, [evil])
    assert res[evil].metrics["rows_current"] == 0


def test_scores_stuck_on_one_value_breach_the_spread_check(sqlite_url: str) -> None:
    rows = [r for r in scenario() if r.at < NOW - timedelta(hours=1) or r.model != "fraud-v3"]
    # 0.5 is exact in binary, so the sums give a spread of exactly 0 (a model stuck on it)
    rows += [Row(at, 0.5, "fraud-v3") for at in spread(NOW - timedelta(hours=1), NOW, 2000)]
    write_table(sqlite_url, rows)
    res = run(rules(table_source(sqlite_url), psi="{warn: 50}", ks="null",
                    mean_shift="null"), Timeline(sqlite_url), ["fraud-v3"])["fraud-v3"]
    obs = by_check(res)["distribution"]
    assert res.metrics["std_ratio"] == 0.0
    assert obs.status == Status.ALERT and obs.severity == Severity.CRITICAL
    assert "spread ratio inf ≥ 2" in obs.summary


def test_a_segment_value_holding_the_separator_does_not_stop_the_others(db_url: str) -> None:
    """Segment keys join values with '|': a model named 'a|b' cannot be split back into
    labels, so it is skipped (logged) instead of crashing the check of every model."""
    rows = scenario(current={"fraud-v3": {"high": 0.5}})
    rows += [Row(NOW - timedelta(minutes=m), 0.5, "odd|name") for m in range(1, 30)]
    write_table(db_url, rows)
    ruleset = rules(table_source(db_url))
    rule = ruleset.checks.score_drift[0]
    assert discover(rule, NOW) == ["churn-v1", "fraud-v3"]
    res = run(ruleset, Timeline(db_url))
    assert set(res) == {"churn-v1", "fraud-v3"} and res["fraud-v3"].error is None
    with pytest.raises(ValueError, match="does not give one value per segment column"):
        run(ruleset, Timeline(db_url), ["odd|name"])


def test_too_many_segments_are_said_not_silently_cut(sqlite_url: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from alert_jobs.families.score_drift import source as scores

    write_table(sqlite_url, scenario(ref_per_model=10, cur_per_model=10))
    monkeypatch.setattr(scores, "MAX_SEGMENTS", 1)
    with caplog.at_level("WARNING", logger="alert_jobs.drift"):
        found = discover(rules(table_source(sqlite_url)).checks.score_drift[0], NOW)
    assert found == ["churn-v1"]
    assert "has at least 1 segments; only the first 1" in caplog.text


# ----- config -------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "message"), [
    ("table", "'scores; DROP TABLE x'", "expected a table name like scores or ml.scores"),
    ("table", "'a.b.c'", "expected a table name"),
    ("time_column", "'t\" OR 1=1 --'", "expected a SQL identifier"),
    ("feature_columns", "['ok', 'bad col']", "expected a SQL identifier"),
])
def test_identifiers_that_could_inject_sql_are_rejected(field: str, value: str,
                                                        message: str) -> None:
    base = {"database": "sqlite:///x.db", "table": "scores", "time_column": "t",
            "score_column": "s"}
    base[field] = value
    body = "\n".join(f"      {k}: {v}" for k, v in base.items())
    with pytest.raises(RulesError, match=message):
        parse_rules(f"checks:\n  score_drift:\n    - name: d\n{body}\n")


@pytest.mark.parametrize(("extra", "message"), [
    ("files: x.parquet", "give either database \\+ table, or files"),
    ("segments: ['a|b']", "segments need segment_columns"),
    ("score_range: [1, 0]", "low < high"),
    ("psi: {warn: 0.3, critical: 0.1}", "critical \\(0.1\\) is below warn"),
    ("reference: {kind: pinned}", "a pinned reference needs start and end"),
    ("segment_columns: [check]", "would clash with alert labels"),
    ("high_score: {threshold: 2}", "outside score_range"),
])
def test_bad_rules_are_reported(extra: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        parse_rules("checks:\n  score_drift:\n    - {name: d, database: 'sqlite:///x.db', "
                    f"table: scores, time_column: t, score_column: s, {extra}}}\n")


def test_reserved_and_mixed_case_names_are_quoted(db_url: str) -> None:
    """Names are quoted for the dialect: a reserved word and a mixed-case column work."""
    eng = engine(db_url)
    pg = eng.dialect.name == "postgresql"
    start = NOW - timedelta(hours=2)
    with eng.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "Order" ("when" {"TIMESTAMPTZ" if pg else "TEXT"}, '
                             '"Score" DOUBLE PRECISION, "group" TEXT)')
        conn.execute(sa.text('INSERT INTO "Order" VALUES (:w, :s, :g)'), [
            {"w": at if pg else at.strftime("%Y-%m-%d %H:%M:%S"), "s": (i % 100) / 100,
             "g": "a"} for i, at in enumerate(spread(start, NOW, 2000))])
    eng.dispose()
    ruleset = parse_rules(f"""
checks:
  score_drift:
    - name: quoted
      database: '{db_url}'
      table: Order
      time_column: when
      score_column: Score
      segment_columns: [group]
      reference: {{kind: fixed, lookback: 1h}}
      min_samples: 100
""")
    rule = ruleset.checks.score_drift[0]
    assert discover(rule, NOW) == ["a"]
    (result,) = check_segments(ruleset, rule, Timeline(db_url), None, now=NOW)
    assert result.error is None and result.metrics["n_current"] == 1000
    assert result.metrics["psi"] == pytest.approx(0.0, abs=1e-9)
