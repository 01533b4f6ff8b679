"""Batches of sql_metric rules: which rules share a run, the bounded concurrent reads, and
the decisions of a batch written together — on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import Status
from alert_jobs.families.sql_metric.batches import batches_of, cron_slug, default_batch_name
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.families.sql_metric.run import evaluate_batch, evaluate_rule
from alert_jobs.runtime.bounded import Task, run_bounded
from alert_jobs.store import Timeline

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rules_text(*rules: str, defaults: str = "{receivers: [console]}") -> str:
    return (f"version: 1\ndefaults: {defaults}\nreceivers: [{{name: console, type: console}}]\n"
            "checks:\n  sql_metric:\n" + "".join(f"    - {r}\n" for r in rules))


def rule(name: str, *, database: str = "sqlite://", query: str = "SELECT 1",
         more: str = "") -> str:
    return (f"{{name: {name}, database: '{database}', query: \"{query}\", "
            f"expect: {{max: 0}}{', ' + more if more else ''}}}")


@pytest.mark.parametrize(("cron", "slug"), [
    ("* * * * *", "every_minute"),
    ("*/5 * * * *", "every_5m"),
    ("0 * * * *", "hourly_at_00"),
    ("15 * * * *", "hourly_at_15"),
    ("0 */6 * * *", "every_6h_at_00"),
    ("30 7 * * *", "daily_0730"),
    ("0 9 * * 1-5", "cron_0_9_x_x_1to5"),
    ("*/10 8-18 * * MON-FRI", "cron_xevery10_8to18_x_x_montofri"),
])
def test_batch_names_say_when_they_run(cron: str, slug: str) -> None:
    assert cron_slug(cron) == slug
    assert default_batch_name(cron, "UTC") == f"sql_metric_{slug}"
    assert default_batch_name(cron, "America/New_York") == f"sql_metric_{slug}_america_new_york"


def test_rules_of_one_cron_and_timezone_share_a_batch_and_batch_splits_one_off() -> None:
    rules = parse_rules(rules_text(
        rule("a"), rule("b", more="schedule: '* * * * *'"), rule("c"),
        rule("d", more="timezone: Europe/Berlin"),
        rule("e", more="batch: slow_ones"), rule("f", more="batch: slow_ones"),
        rule("g", more="schedule: '* * * * *'")))
    got = {b.name: (b.cron, b.timezone, b.rules) for b in batches_of(rules)}
    assert got == {
        "sql_metric_every_5m": ("*/5 * * * *", "UTC", ("a", "c")),
        "sql_metric_every_minute": ("* * * * *", "UTC", ("b", "g")),
        "sql_metric_every_5m_europe_berlin": ("*/5 * * * *", "Europe/Berlin", ("d",)),
        "sql_metric_slow_ones": ("*/5 * * * *", "UTC", ("e", "f")),
    }
    # Stable: adding a rule changes no batch's name.
    more = parse_rules(rules_text(rule("a"), rule("z"), rule("c")))
    assert [b.name for b in batches_of(more)] == ["sql_metric_every_5m"]


def test_a_named_batch_that_takes_a_default_name_on_another_schedule_stays_apart() -> None:
    rules = parse_rules(rules_text(rule("a"), rule("b", more="batch: every_5m, "
                                                             "schedule: '* * * * *'")))
    names = [b.name for b in batches_of(rules)]
    assert len(set(names)) == 2 and all(n.startswith("sql_metric_every_5m_") for n in names)
    # Positive control: on the same schedule the named batch is simply the same batch.
    same = parse_rules(rules_text(rule("a"), rule("b", more="batch: every_5m")))
    assert [(b.name, b.rules) for b in batches_of(same)] == [("sql_metric_every_5m",
                                                               ("a", "b"))]


def test_one_batch_on_two_schedules_and_a_bad_batch_name_are_refused() -> None:
    with pytest.raises(RulesError) as err:
        parse_rules(rules_text(rule("a", more="batch: nightly"),
                               rule("b", more="batch: nightly, schedule: '0 3 * * *'")))
    text = str(err.value)
    assert "checks.sql_metric[1].batch" in text
    assert "batch 'nightly' runs on '*/5 * * * *' (UTC) as rule 'a' says" in text
    with pytest.raises(RulesError) as err:
        parse_rules(rules_text(rule("a", more="batch: Nightly-Run")))
    assert "checks.sql_metric[0].batch" in str(err.value)


def test_source_concurrency_is_validated() -> None:
    rules = parse_rules(rules_text(rule("a"), defaults="{source_concurrency: 3}"))
    assert rules.defaults.source_concurrency == 3
    with pytest.raises(RulesError, match="source_concurrency"):
        parse_rules(rules_text(rule("a"), defaults="{source_concurrency: 0}"))


# ----- bounded concurrent calls -----------------------------------------------------------


def test_run_bounded_keeps_the_bound_and_the_order() -> None:
    lock = threading.Lock()
    running, peak = 0, 0

    def call(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return i * i

    tasks = [Task(call=lambda i=i: call(i), limit=5.0, late=lambda _s: -1) for i in range(20)]
    started = time.monotonic()
    assert run_bounded(tasks, concurrency=4) == [i * i for i in range(20)]
    took = time.monotonic() - started
    assert peak == 4  # positive control: the calls did overlap, up to the bound
    assert took < 20 * 0.05 * 0.6  # concurrent, not one after another


def test_a_hung_call_costs_only_its_own_limit_even_with_one_thread() -> None:
    """Concurrency 1: the hung call is given up at its limit and frees its slot, so the
    calls behind it still run and the whole takes about the limit, not the hang."""
    release = threading.Event()
    tasks = [Task(call=lambda: release.wait(30) and "hung", limit=0.3,
                  late=lambda s: f"late after {s:g} s"),
             Task(call=lambda: "second", limit=5.0, late=lambda _s: "late"),
             Task(call=lambda: "third", limit=5.0, late=lambda _s: "late")]
    started = time.monotonic()
    try:
        assert run_bounded(tasks, concurrency=1) == ["late after 0.3 s", "second", "third"]
        assert time.monotonic() - started < 2.0
    finally:
        release.set()


def test_a_call_that_raises_raises_in_the_caller() -> None:
    def boom() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_bounded([Task(call=boom, limit=5, late=lambda _s: "late")], concurrency=2)
    with pytest.raises(ValueError, match="concurrency"):
        run_bounded([], concurrency=0)


# ----- a batch against real databases ------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (5)"))
    engine.dispose()
    return url


def test_a_slow_source_errors_at_its_timeout_and_the_others_are_decided(
        source: str, pg_url: str, db_url: str) -> None:
    fast = [rule(f"fast_{i}", database=source, query="SELECT n FROM t") for i in range(6)]
    slow = rule("slow", database=pg_url, query="SELECT pg_sleep(20)", more="query_timeout: 1s")
    broken = rule("broken", database=source, query="SELECT n FROM no_such_table")
    rules = parse_rules(rules_text(*fast[:3], slow, broken, *fast[3:]))
    batch = rules.rules_of(SqlMetricRule)
    timeline = Timeline(db_url)
    started = time.monotonic()
    outcomes = evaluate_batch(rules, batch, timeline, now=NOW, run_id="run-1", concurrency=2)
    took = time.monotonic() - started
    assert took < 6.0, f"the batch took {took:.1f} s: the slow source held the others up"
    by_rule = {o.observation.rule: o for o in outcomes}
    assert [o.observation.rule for o in outcomes] == [r.name for r in batch]
    assert by_rule["slow"].observation.status == Status.ERROR
    assert "timed out after 1 s" in by_rule["slow"].observation.summary
    assert by_rule["broken"].observation.status == Status.ERROR
    assert "no such table" in by_rule["broken"].observation.summary
    for i in range(6):
        outcome = by_rule[f"fast_{i}"]
        assert outcome.observation.status == Status.ALERT and outcome.observation.value == 5
        assert str(outcome.state) == "firing"
    # Every decision was written, each under its own rule, in this run.
    for r in batch:
        (evaluation,) = timeline.alerts.evaluations(r.name)
        assert evaluation["run_id"] == "run-1"
    states = {a.rule: str(a.state) for a in timeline.alerts.list()}
    assert states == {**{f"fast_{i}": "firing" for i in range(6)}, "slow": "firing",
                      "broken": "firing"}


def test_a_batch_writes_in_chunks_and_resolves_instances_whose_labels_changed(
        source: str, db_url: str) -> None:
    names = [f"r{i:03d}" for i in range(7)]
    text = rules_text(*[rule(n, database=source, query="SELECT n FROM t",
                             more="labels: {team: a}") for n in names])
    timeline = Timeline(db_url)
    rules = parse_rules(text)
    evaluate_batch(rules, rules.rules_of(SqlMetricRule), timeline, now=NOW, run_id="one")
    assert {str(a.state) for a in timeline.alerts.list()} == {"firing"}

    relabelled = parse_rules(text.replace("team: a", "team: b"))
    outcomes = evaluate_batch(relabelled, relabelled.rules_of(SqlMetricRule), timeline,
                              now=NOW + timedelta(minutes=5), run_id="two",
                              chunk=3)  # several transactions for one batch
    assert [o.observation.labels for o in outcomes] == [{"team": "b"}] * 7
    states = {(a.rule, a.labels["team"]): str(a.state)
              for a in timeline.alerts.list(include_inactive=True)}
    assert states == {**{(n, "a"): "resolved" for n in names},
                      **{(n, "b"): "firing" for n in names}}


def test_process_batch_chunks_are_transactions_of_at_most_chunk(source: str,
                                                               sqlite_url: str) -> None:
    from alert_jobs.runtime.evaluate import process_batch

    rules = parse_rules(rules_text(*[rule(f"r{i}", database=source, query="SELECT n FROM t")
                                     for i in range(5)]))
    timeline = Timeline(sqlite_url)
    calls: list[int] = []
    real = timeline.alerts.process_many

    def counting(items, **kw):  # a spy on the real store, not a replacement
        calls.append(len(items))
        return real(items, **kw)

    timeline.alerts.process_many = counting  # type: ignore[method-assign]
    from alert_jobs.families.sql_metric.run import observe_sql_metric

    batch = rules.rules_of(SqlMetricRule)
    evaluations = [(r, observe_sql_metric(r, now=NOW, was_firing=False), "") for r in batch]
    outcomes = process_batch(rules, timeline, evaluations, now=NOW, run_id="x", chunk=2)
    assert calls == [2, 2, 1]
    assert [str(o.state) for o in outcomes] == ["firing"] * 5
    with pytest.raises(ValueError, match="chunk"):
        process_batch(rules, timeline, evaluations, now=NOW, run_id="x", chunk=0)


def test_one_rule_alone_goes_the_same_way(source: str, sqlite_url: str) -> None:
    rules = parse_rules(rules_text(rule("solo", database=source, query="SELECT n FROM t")))
    outcome = evaluate_rule(rules, rules.rules_of(SqlMetricRule)[0], Timeline(sqlite_url),
                            now=NOW, run_id="r")
    assert outcome.observation.value == 5 and str(outcome.state) == "firing"


def test_a_large_batch_is_evaluated_in_parts_of_a_hundred_rules_in_order() -> None:
    """Dagster's bookkeeping per asset output grows with its step's outputs, so a batch
    of 250 rules is three steps (multi-assets) of at most 100, in rules-file order; a
    batch of 100 stays one step named after the batch."""
    names = [f"r{i:03d}" for i in range(250)]
    rules = parse_rules(rules_text(*(rule(n) for n in names)))
    (batch,) = batches_of(rules)
    parts = batch.parts()
    assert [p.name for p in parts] == [f"sql_metric_every_5m_part_{i}" for i in (1, 2, 3)]
    assert [len(p.rules) for p in parts] == [100, 100, 50]
    assert [r for p in parts for r in p.rules] == names
    assert {(p.cron, p.timezone) for p in parts} == {("*/5 * * * *", "UTC")}
    small = parse_rules(rules_text(*(rule(n) for n in names[:100])))
    assert [(p.name, len(p.rules)) for p in batches_of(small)[0].parts()] == [
        ("sql_metric_every_5m", 100)]
