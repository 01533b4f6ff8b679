"""The README's demo story, in fast time: each promise of "Quick start" checked.

The demo's real data and rules (``alerts.yaml``, the seed, the feed, a real Redis, the
real timeline) are driven through the families' own ``evaluate`` functions at chosen
simulated times, as the schedules and sensors of ``make run`` would call them; hours of
demo take seconds. Every "stays green" has its positive control beside it: the same
story on static data (no feed) turns churn-v1 and ``orders_last_hour`` red, which is
what the issue saw after 25 minutes and an hour; ``orders_last_hour`` staying green
through night and day has a rule with a fixed ``min`` beside it, which fires at night.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import load_rules
from alert_jobs.config.rules_file import RulesFile
from alert_jobs.core.model import Severity, Status
from alert_jobs.demo import feed, pinger
from alert_jobs.demo.data import seed, seed_quality_history
from alert_jobs.families.heartbeat import run as heartbeat_run
from alert_jobs.families.heartbeat.check import HeartbeatStatus, Signal
from alert_jobs.families.heartbeat.store import HeartbeatStore
from alert_jobs.families.redis_quota import run as redis_run
from alert_jobs.families.redis_quota.config import RedisQuotaTarget
from alert_jobs.families.score_drift import run as drift_run
from alert_jobs.families.score_drift.config import ScoreDriftRule
from alert_jobs.families.slo.report import build_report, to_markdown
from alert_jobs.families.sql_metric import run as sql_run
from alert_jobs.families.sql_metric.config import SqlMetricRule
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.store import Timeline
from tests.conftest import ROOT, free_port, in_memory_instance
from tests.seeded import seeded_copy

T0 = datetime(2026, 3, 10, 14, 2, 0, tzinfo=UTC)  # `make run` starts (a Tuesday, 14:02 UTC)
MIN = timedelta(minutes=1)


@dataclass
class Demo:
    """The demo's database, rules and timeline, at a simulated clock."""

    db: Path
    rules: RulesFile
    timeline: Timeline
    live: bool  # the feed runs (as under `make run`) or the data stays as seeded
    fed_until: datetime = T0
    log: dict[str, list[tuple[datetime, RuleOutcome]]] = field(default_factory=dict)

    def at(self, now: datetime) -> None:
        """Advance the clock: the feed appends what it would have written by ``now``."""
        if self.live and now > self.fed_until:
            feed.append(self.db, self.fed_until, now)
            self.fed_until = now

    def rule(self, name: str) -> Any:
        return self.rules.rule(name)

    def sql(self, name: str, now: datetime) -> RuleOutcome:
        self.at(now)
        rule = self.rule(name)
        assert isinstance(rule, SqlMetricRule)
        [outcome] = sql_run.evaluate(self.rules, rule, self.timeline, now=now, run_id=None)
        self.log.setdefault(name, []).append((now, outcome))
        return outcome

    def drift(self, now: datetime) -> dict[tuple[str, str], RuleOutcome]:
        """Every model_scores alert instance: (model, check) → outcome."""
        self.at(now)
        rule = self.rule("model_scores")
        assert isinstance(rule, ScoreDriftRule)
        outcomes = drift_run.evaluate(self.rules, rule, self.timeline, now=now, run_id=None)
        return {(o.observation.labels["model"], o.observation.labels["check"]): o
                for o in outcomes}


def _rules(tmp_path: Path, db: Path, redis_url: str = "redis://127.0.0.1:1/0") -> RulesFile:
    text = (ROOT / "alerts.yaml").read_text(encoding="utf-8")
    text = (text.replace("sqlite:///.dagster_home/demo.db", f"sqlite:///{db}")
            .replace("redis://127.0.0.1:6390/0", redis_url))
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def _demo(tmp_path: Path, *, live: bool, redis_url: str = "redis://127.0.0.1:1/0",
          slo_burst: bool = True) -> Demo:
    db = seeded_copy(tmp_path / "demo.db", now=T0, slo_burst=slo_burst)
    rules = _rules(tmp_path, db, redis_url)
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    demo = Demo(db, rules, timeline, live)
    # What model_scores_segments_sensor does within a minute: discover, build references.
    rule = demo.rule("model_scores")
    segments = drift_run.discover(rule, T0)
    assert sorted(segments) == ["churn-v1", "fraud-v3"]
    drift_run.build_references(rule, timeline, segments, now=T0)
    return demo


@pytest.fixture
def live_demo(tmp_path: Path) -> Demo:
    return _demo(tmp_path, live=True)


@pytest.fixture
def static_demo(tmp_path: Path) -> Demo:
    return _demo(tmp_path, live=False)


def _every(step: timedelta, until: timedelta, start: timedelta = MIN) -> Iterator[datetime]:
    t = T0 + start
    while t <= T0 + until:
        yield t
        t += step


# ----- dead letters: fires within a minute, resolves by itself ------------------------


def test_dead_letters_fire_within_a_minute_and_resolve_after_the_burst_leaves(
        live_demo: Demo) -> None:
    states = {t: live_demo.sql("dead_letters", t).state for t in _every(MIN, timedelta(hours=1))}
    assert states[T0 + MIN] == "firing"  # `for: 0m`, on the first per-minute run
    firing = [t for t, s in states.items() if s == "firing"]
    resolved = [t for t, s in states.items() if s == "resolved"]
    # The burst spans the 5 minutes before T0 and the window is 30 minutes: it has left
    # by T0+30m; then 5 minutes of keep_firing_for ("thirty minutes later … resolves").
    assert max(firing) <= T0 + 30 * MIN
    assert resolved and T0 + 30 * MIN < min(resolved) <= T0 + 36 * MIN


# ----- orders and churn-v1 stay green with the feed; the positive control -----------------


def test_with_the_feed_orders_and_churn_stay_green_while_fraud_keeps_firing(
        live_demo: Demo) -> None:
    """Two hours of demo, a check every 5 minutes as the schedules run them."""
    churn_bad, fraud_high = [], []
    for t in _every(5 * MIN, timedelta(hours=2), start=5 * MIN):
        orders = live_demo.sql("orders_last_hour", t)
        assert orders.observation.status == Status.OK and orders.state == "inactive", t
        drift = live_demo.drift(t)
        churn_bad += [(t, check, o.observation.summary) for (model, check), o in drift.items()
                      if model == "churn-v1" and o.observation.status != Status.OK]
        fraud_high.append(drift[("fraud-v3", "high_score_rate")].observation.status)
    assert churn_bad == []  # green for the whole two hours, volume included
    assert set(fraud_high) == {Status.ALERT}  # "half of its cases as high risk", every check
    last = live_demo.drift(T0 + timedelta(hours=2, minutes=5))
    assert last[("fraud-v3", "distribution")].observation.value > 0.25  # "PSI far above 0.25"
    assert last[("fraud-v3", "high_score_rate")].state == "firing"


def test_static_data_turns_churn_and_orders_red_positive_control(static_demo: Demo) -> None:
    """Without the feed the story breaks as the issue saw it: churn-v1's volume check
    warns once under half of the expected scores are in its hour (~30 minutes), and
    orders_last_hour fires once its hour is empty (+ its 10-minute `for`)."""
    churn_volume = {t: static_demo.drift(t)[("churn-v1", "volume")]
                    for t in _every(5 * MIN, timedelta(minutes=45), start=5 * MIN)}
    bad = [t for t, o in churn_volume.items() if o.observation.status == Status.ALERT]
    assert bad and min(bad) <= T0 + 35 * MIN
    orders = {t: static_demo.sql("orders_last_hour", t)
              for t in _every(5 * MIN, timedelta(minutes=60), start=5 * MIN)}
    firing = [t for t, o in orders.items() if o.state == "firing"]
    assert firing, {t: o.observation.summary for t, o in orders.items()}
    assert orders[T0 + 5 * MIN].state == "inactive"  # 5 minutes of 60 missing: within the band
    assert min(firing) <= T0 + 30 * MIN  # "within half an hour" (the band, then `for: 10m`)


# ----- orders_last_hour: a learned, seasonal baseline ---------------------------------------


def test_the_seeded_orders_follow_the_day_and_the_week(tmp_path: Path) -> None:
    """29 days of orders: about 140 an hour at night, 1,200 on a weekday afternoon,
    weekends 30 % less; indexed on created_at (the backfill runs thousands of counts)."""
    import sqlite3

    db = seeded_copy(tmp_path / "demo.db", now=T0)

    def hour(start: datetime) -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute(
                "SELECT count(*) FROM orders WHERE created_at >= ? AND created_at < ?",
                (start.strftime(feed.FMT), (start + timedelta(hours=1)).strftime(feed.FMT))
            ).fetchone()[0])

    tuesday = T0.replace(hour=15, minute=0) - timedelta(days=7)
    saturday = tuesday - timedelta(days=3)
    assert 1_100 <= hour(tuesday) <= 1_300  # 15:00–16:00 on a weekday
    assert 100 <= hour(tuesday.replace(hour=3, minute=30)) <= 200  # the night
    assert 0.6 <= hour(saturday) / hour(tuesday) <= 0.8
    with sqlite3.connect(db) as conn:
        first = conn.execute("SELECT min(created_at) FROM orders").fetchone()[0]
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM orders WHERE created_at >= ? AND "
            "created_at < ?", ("a", "b")))
    assert first == (T0 - timedelta(days=29) + MIN).replace(second=0).strftime(feed.FMT)
    assert "ix_orders_created_at" in plan


def _orders_story(demo: Demo, until: timedelta) -> list[tuple[datetime, RuleOutcome]]:
    """orders_last_hour on its schedule (every 5 minutes) from T0+5m: its first runs
    backfill 28 days of the seeded orders, then every run learns from its own values."""
    return [(t, demo.sql("orders_last_hour", t))
            for t in _every(5 * MIN, until, start=5 * MIN)]


def test_orders_stay_green_through_night_and_day_where_a_fixed_min_fires(
        live_demo: Demo) -> None:
    """30 hours of demo (Tuesday 14:07 to Wednesday 20:02 UTC, through the night): the
    baseline rule never even goes pending. The positive control judges the same values
    with a fixed ``min``: one high enough to notice a broken checkout in the afternoon
    (half the afternoon's 1,200) fires every night."""
    from alert_jobs.families.sql_metric.check import Bounds, judge

    seen = _orders_story(live_demo, timedelta(hours=30))
    assert {(o.observation.status, o.state) for _, o in seen} == {(Status.OK, "inactive")}
    [state] = live_demo.timeline.baselines.states(
        [seen[0][1].result.decision.record.fingerprint]).values()
    # 28 days of 5-minute windows before the first evaluation (less the grid's edges)
    assert state.backfill_finished and 8_000 < state.backfill_done <= 28 * 24 * 12
    values = [float(o.observation.value or 0) for _, o in seen]
    assert min(values) < 300 < 1_000 < max(values)  # night and day in the stretch
    # Judged at today's level: 1 until 6 evaluations are in, then from them.
    levels = [float(o.observation.details["level"]) for _, o in seen]
    assert set(levels[:6]) == {1.0} and len(set(levels[6:])) > 10
    assert all(0.8 < level < 1.25 for level in levels)
    first = seen[0][1].observation.summary
    assert re.fullmatch(r"Expected orders in the last hour to be about [\d,]+ \([\d,]+–[\d,]+, "
                        r"from the same hour of the week over the last 4 weeks\), got [\d,]+",
                        first), first  # a baseline from the first run: the backfill
    # (the night and the morning, 22:00 to 10:00 UTC, are under 600 orders an hour)
    fixed = [(t, judge("orders_last_hour", v, Bounds(min=600), subject="orders",
                       window="1 hour").status) for (t, _), v in zip(seen, values, strict=True)]
    night = [t for t, status in fixed if status == Status.ALERT]
    assert len(night) > 100 and all(t.hour < 10 or t.hour >= 22 for t in night)


def test_orders_stopped_fire_with_the_standard_message(static_demo: Demo) -> None:
    """No more orders after T0 (the feed stopped, or checkout broke): the hour empties
    and the baseline rule fires within half an hour, in the standard's words. The first
    check outside the band goes pending; `for: 10m` fires it two checks later."""
    seen = dict(_orders_story(static_demo, timedelta(minutes=65)))
    firing = [t for t, o in seen.items() if o.state == "firing"]
    assert firing
    pending = [t for t, o in seen.items() if o.state == "pending"]
    assert pending and min(firing) == min(pending) + 10 * MIN
    assert all(o.state == "inactive" for t, o in seen.items() if t < min(pending))
    obs = seen[min(firing)].observation
    assert obs.status == Status.ALERT
    assert min(firing) == T0 + 25 * MIN  # "within half an hour"; the README's message:
    assert obs.summary == ("Expected orders in the last hour to be about 1,140 (985–1,290, "
                           "from the same hour of the week over the last 4 weeks), got 663")
    assert obs.details["crossed"] == "lower"
    assert obs.value is not None and obs.value < float(obs.details["lower"])
    last = seen[T0 + 65 * MIN].observation  # the hour holds no order at all
    assert last.value == 0 and last.summary.endswith("got 0") and last.status == Status.ALERT
    assert seen[T0 + 65 * MIN].state == "firing"


def test_orders_that_come_back_resolve_an_hour_after_the_hour_looks_normal(
        static_demo: Demo) -> None:
    """The orders stop at T0 and come back at T0+40m (the feed restarted): the rule fires
    (above), stays firing while the hour fills again, and resolves one hour after the
    first check back inside the band (`keep_firing_for: 1h`), with no second page."""
    seen: list[tuple[datetime, RuleOutcome]] = []
    for t in _every(5 * MIN, timedelta(hours=3), start=5 * MIN):
        if t == T0 + 40 * MIN:  # the feed starts again: orders from now on
            static_demo.live, static_demo.fed_until = True, t
        seen.append((t, static_demo.sql("orders_last_hour", t)))
    states = [o.state for _, o in seen]
    back = next(t for t, o in seen if t > T0 + 40 * MIN and o.observation.status == Status.OK)
    resolved = next(t for t, o in seen if o.state == "resolved")
    assert resolved == back + timedelta(hours=1)
    assert all(o.state == "recovering" and o.observation.status == Status.OK
               for t, o in seen if back <= t < resolved)
    assert all(o.state == "firing" for t, o in seen if T0 + 25 * MIN <= t < back)
    assert states.count("pending") == 2 and states[-1] == "resolved"  # one episode
    fired = [e for _, o in seen for e in o.result.decision.events if e.kind == "firing"]
    assert len(fired) == 1
    # Positive control: the same values without keep_firing_for resolve at once.
    from alert_jobs.core.engine import evaluate
    from alert_jobs.runtime.evaluate import policy_for

    rule = static_demo.rule("orders_last_hour")
    policy = policy_for(static_demo.rules, rule)
    # The README: the defaults (width 4, no floor) with `for: 10m`, `keep_firing_for: 1h`.
    assert (policy.for_, policy.keep_firing_for) == (10 * MIN, timedelta(hours=1))
    assert (rule.expect.baseline.width, rule.expect.baseline.floor) == (4, 0)
    quick = replace(policy, keep_firing_for=timedelta(0), receivers=())
    record = None
    for t, o in seen:
        record = evaluate(o.observation, record, quick, t).record
        if t == back:
            assert record.state == "resolved"


# ----- redis_quota: a warning on the projection first, then a critical page -----------------


def test_redis_quota_warns_on_the_projection_then_pages_once_9000_are_used(
        tmp_path: Path, redis_factory: Any) -> None:
    """The demo's traffic (10 commands/s, alert_jobs.demo.traffic) against the demo's
    10,000-a-day quota, checked every 5 minutes: commands are sent in fast time (what 5
    minutes of traffic would send) before each check at the simulated time."""
    from alert_jobs.demo.traffic import COMMANDS_PER_SECOND

    server = redis_factory()
    demo = _demo(tmp_path, live=True, redis_url=server.url)
    target = demo.rule("demo_cache")
    assert isinstance(target, RedisQuotaTarget)
    client = server.client()
    seen: list[tuple[timedelta, Status, Severity | None, str]] = []
    for t in _every(5 * MIN, timedelta(minutes=30), start=4 * MIN):  # first tick ≤ 5 min in
        pipe = client.pipeline(transaction=False)
        for i in range(int(COMMANDS_PER_SECOND * (t - T0).total_seconds()) - (
                int(COMMANDS_PER_SECOND * (t - 5 * MIN - T0).total_seconds())
                if t - 5 * MIN > T0 else 0)):
            pipe.get(f"tenant:{i % 200}")
        pipe.execute()
        result = redis_run.check_target(demo.rules, target, demo.timeline, now=t)
        quota = next(o for o in result.outcomes if o.observation.labels.get("check") == "quota")
        obs = quota.observation
        seen.append((t - T0, obs.status, obs.severity, obs.summary))
    statuses = [(s, sev) for _, s, sev, _ in seen]
    first_bad = next(i for i, (s, _) in enumerate(statuses) if s != Status.OK)
    assert statuses[first_bad] == (Status.ALERT, Severity.WARNING), seen
    assert "projected" in seen[first_bad][3], seen
    assert seen[first_bad][0] <= timedelta(minutes=10), seen  # "within 10 minutes"
    critical = [when for when, s, sev, _ in seen if sev == Severity.CRITICAL]
    assert critical and critical[0] <= timedelta(minutes=20), seen  # "about 15 minutes in"
    assert "used 9," in next(text for when, _, sev, text in seen if when == critical[0]) or \
        critical[0] > timedelta(minutes=14)


# ----- heartbeats: demo_backup goes down about 3 minutes in; demo_etl stays up -------------


@pytest.mark.parametrize("ping_after", [timedelta(seconds=8), timedelta(seconds=110)])
def test_demo_backup_goes_down_1_to_3_minutes_after_its_ping_and_demo_etl_stays_up(
        live_demo: Demo, ping_after: timedelta) -> None:
    """demo_backup: cron */2 (Europe/Berlin), grace 1m. A ping just after a 2-minute
    mark is down ~3 minutes later; one just before it, ~1 minute later."""
    store = HeartbeatStore(live_demo.timeline)
    heartbeat_run.evaluate_due(live_demo.rules, live_demo.timeline, now=T0)  # declared rows
    # The pinger's one demo_backup ping lands once serve listens.
    pinged = T0 + ping_after
    assert store.ping("demo_backup", Signal.SUCCESS, pinged) is not None
    down_at = None
    t = T0
    while t < T0 + timedelta(minutes=15):
        t += timedelta(seconds=30)
        store.ping("demo_etl", Signal.START, t, rid=t.isoformat())
        store.ping("demo_etl", Signal.SUCCESS, t + timedelta(seconds=1), rid=t.isoformat())
        heartbeat_run.evaluate_due(live_demo.rules, live_demo.timeline,
                                   now=t + timedelta(seconds=2))  # the sensor's tick
        backup = store.get("demo_backup")
        assert backup is not None
        if down_at is None and backup.state.status == HeartbeatStatus.DOWN:
            down_at = t
        etl = store.get("demo_etl")
        assert etl is not None and etl.state.status == HeartbeatStatus.UP, t
    assert down_at is not None
    # The sensor ticks every 30 s here: down at the first tick after the grace ended.
    assert timedelta(minutes=1) <= down_at - pinged <= timedelta(minutes=3, seconds=30)
    assert (down_at - pinged > timedelta(minutes=2)) == (ping_after < timedelta(minutes=1))


def test_a_backup_that_is_never_pinged_never_goes_down_positive_control(
        live_demo: Demo) -> None:
    """What the issue saw: the one ping was lost (ConnectError), so the check stayed new."""
    heartbeat_run.evaluate_due(live_demo.rules, live_demo.timeline, now=T0)
    heartbeat_run.evaluate_due(live_demo.rules, live_demo.timeline, now=T0 + 15 * MIN)
    backup = HeartbeatStore(live_demo.timeline).get("demo_backup")
    assert backup is not None and backup.state.status == HeartbeatStatus.NEW


def test_the_pinger_retries_until_serve_listens(tmp_path: Path) -> None:
    """`alert-jobs serve` starts after the pinger (a busy machine): the first attempts
    meet a closed port, the ping lands once it listens, and the silence starts then."""
    from alert_jobs.http.app import create_app

    db = seed(tmp_path / "demo.db", now=datetime.now(UTC))
    rules = _rules(tmp_path, db)
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    heartbeat_run.evaluate_due(rules, timeline, now=datetime.now(UTC))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert pinger.ping_until_accepted("demo_backup", url, deadline=0) is None  # not yet
    result: dict[str, int | None] = {}
    thread = threading.Thread(target=lambda: result.update(
        attempts=pinger.ping_until_accepted("demo_backup", url, deadline=60)))
    thread.start()
    time.sleep(2.0)  # serve is late: the pinger has met a closed port a few times
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(lambda: timeline, lambda: rules),
                                           host="127.0.0.1", port=port, log_level="error"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    try:
        thread.join(timeout=30)
        assert result["attempts"] is not None and result["attempts"] >= 2
        backup = HeartbeatStore(timeline).get("demo_backup")
        assert backup is not None and backup.state.last_ping is not None
    finally:
        server.should_exit = True
        serving.join(timeout=10)


# ----- alert quality: figures within minutes of `make run` -----------------------------------


def test_quality_catchup_shows_figures_within_minutes(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-up sensor's ticks (every 30 s) request the newest missing days first,
    3 at a time: the first tick's runs (executed in process, as the daemon would launch
    them) show figures at once; all 35 days and last month's review are requested
    within 13 ticks (6.5 minutes) when runs finish between ticks. Later ticks' runs are
    recorded as materializations without executing them, to keep the test fast."""
    from alert_jobs.definitions import build_definitions
    from alert_jobs.families.quality.definitions import (
        CATCHUP_DAYS,
        CATCHUP_INTERVAL_SECONDS,
        CATCHUP_PER_TICK,
        DAILY_KEY,
        MONTHLY_KEY,
    )

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ALERT_JOBS_DATABASE_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    db = seed(tmp_path / "demo.db")
    rules_path = tmp_path / "alerts.yaml"
    _rules(tmp_path, db)
    assert seed_quality_history(Timeline()) > 20
    defs = build_definitions(str(rules_path))
    sensor = defs.resolve_sensor_def("alert_quality_catchup_sensor")
    assert sensor.minimum_interval_seconds == CATCHUP_INTERVAL_SECONDS
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    daily_job = defs.resolve_job_def("alert_quality_daily_job")
    today = datetime.now(UTC).date()
    with in_memory_instance() as instance:
        ticks = 0
        while True:
            result = sensor(dg.build_sensor_context(instance=instance))
            if isinstance(result, dg.SkipReason):
                break
            ticks += 1
            assert 0 < len(result.run_requests) <= CATCHUP_PER_TICK
            for request in result.run_requests:
                assert request.run_key == f"catchup:{request.partition_key}"
                if ticks == 1:
                    assert request.job_name == "alert_quality_daily_job"
                    outcome = daily_job.execute_in_process(
                        instance=instance, partition_key=request.partition_key)
                    assert outcome.success
                else:
                    key = DAILY_KEY if request.job_name == "alert_quality_daily_job" \
                        else MONTHLY_KEY
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(key, partition=request.partition_key))
            if ticks == 1:  # the newest days first, yesterday included, with figures
                first = instance.get_materialized_partitions(DAILY_KEY)
                assert (today - timedelta(days=1)).isoformat() in first
                event = instance.get_latest_materialization_event(DAILY_KEY)
                assert event is not None and event.asset_materialization is not None
                assert "alerts_fired" in event.asset_materialization.metadata
            assert ticks < 20
        daily = instance.get_materialized_partitions(DAILY_KEY)
        monthly = instance.get_materialized_partitions(MONTHLY_KEY)
    expected = {(today - timedelta(days=d)).isoformat() for d in range(1, CATCHUP_DAYS + 1)}
    assert daily == expected
    assert monthly == {(today.replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()}
    assert ticks * CATCHUP_INTERVAL_SECONDS <= 7 * 60


def test_quality_catchup_requests_nothing_when_done_and_only_the_missing(
        tmp_path: Path) -> None:
    """Positive control for the skip: one missing day among done ones is requested."""
    from alert_jobs.families.quality.definitions import DAILY_KEY, catchup_requests

    daily = dg.DailyPartitionsDefinition(start_date="2025-09-01", timezone="UTC")
    monthly = dg.MonthlyPartitionsDefinition(start_date="2025-09-01", timezone="UTC")
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    keys = daily.get_partition_keys(current_time=now)[-35:]
    with in_memory_instance() as instance:
        for key in keys:
            if key != "2026-02-20":
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(DAILY_KEY, partition=key))
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey("alert_quality_monthly"),
                                    partition="2026-02-01"))
        requests = catchup_requests(instance, daily, monthly, now=now)
        assert [r.partition_key for r in requests] == ["2026-02-20"]
        assert requests[0].tags["dagster/priority"] == "-1"  # behind the checks
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DAILY_KEY, partition="2026-02-20"))
        assert catchup_requests(instance, daily, monthly, now=now) == []


def test_quality_catchup_keeps_at_most_3_runs_in_flight() -> None:
    """Catch-up runs in flight count against the limit and are not requested again; the
    limit frees up as they finish (the positive control)."""
    from alert_jobs.families.quality.definitions import (
        CATCHUP_PER_TICK,
        CATCHUP_TAG,
        catchup_requests,
    )

    daily = dg.DailyPartitionsDefinition(start_date="2025-09-01", timezone="UTC")
    monthly = dg.MonthlyPartitionsDefinition(start_date="2025-09-01", timezone="UTC")
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    with in_memory_instance() as instance:
        first = catchup_requests(instance, daily, monthly, now=now)
        assert [r.partition_key for r in first] == ["2026-03-09", "2026-03-08", "2026-03-07"]
        assert len(first) == CATCHUP_PER_TICK
        runs = [dg.DagsterRun(job_name="alert_quality_daily_job",
                              status=dg.DagsterRunStatus.STARTED,
                              tags={CATCHUP_TAG: "true", "dagster/partition": r.partition_key})
                for r in first[:2]]
        for run in runs:
            instance.add_run(run)
        assert [r.partition_key for r in catchup_requests(instance, daily, monthly, now=now)
                ] == ["2026-03-07"]
        instance.report_run_failed(runs[0])  # finished (failed: its run key stays used)
        instance.report_runless_asset_event(
            dg.AssetMaterialization("alert_quality_daily", partition="2026-03-09"))
        assert [r.partition_key for r in catchup_requests(instance, daily, monthly, now=now)
                ] == ["2026-03-07", "2026-03-06"]


# ----- the checkout SLO: a page a few minutes into the burst, resolved after ----------------


def _slo_story(demo: Demo, until: timedelta) -> list[tuple[datetime, RuleOutcome]]:
    """The SLO's every-minute schedule (``* * * * *``) from T0+1m: the first run backfills
    the 30 days (the rest of it on the second), each later run reads its new minute."""
    from alert_jobs.families.slo import run as slo_run
    from alert_jobs.families.slo.config import SloRule

    rule = demo.rule("checkout_availability")
    assert isinstance(rule, SloRule)
    seen = []
    for t in _every(MIN, until):
        demo.at(t)
        [outcome] = slo_run.evaluate(demo.rules, rule, demo.timeline, now=t, run_id=None)
        seen.append((t, outcome))
    return seen


def test_checkout_slo_pages_minutes_into_the_burst_and_resolves_after(live_demo: Demo) -> None:
    """30 % errors from T0+3m for 10 minutes: the 1 h / 5 min pair (14.4×) holds once 3
    minutes of burst are in the hour, so the page fires ~6 minutes in; the 6 h / 30 min
    pair (6×) holds until the burst has left the last 30 minutes (~T0+43m), then the
    alert resolves (the ticket pairs never hold: 10 minutes of burst is under 1× over
    3 days)."""
    seen = _slo_story(live_demo, timedelta(minutes=50))
    states = {t: o.state for t, o in seen}
    firing = [t for t, s in states.items() if s == "firing"]
    assert firing and T0 + 5 * MIN <= min(firing) <= T0 + 8 * MIN, states
    assert all(s == "inactive" for t, s in states.items() if t < min(firing))
    first = dict(seen)[min(firing)].observation
    assert first.status == Status.ALERT and first.severity == Severity.CRITICAL
    assert first.summary.startswith("Checkout availability (SLO 99.9 % over 30 days) is "
                                    "burning its error budget"), first.summary
    resolved = [t for t, s in states.items() if s == "resolved"]
    assert resolved and T0 + 40 * MIN <= min(resolved) <= T0 + 47 * MIN, states
    assert max(firing) < min(resolved)
    # The budget report of the month shows the page and what the burst cost.
    report = build_report(live_demo.rules, live_demo.timeline, "2026-03",
                          now=T0 + 50 * MIN)
    (checkout,) = [s for s in report.slos if s.rule == "checkout_availability"]
    assert [a.severity for a in checkout.alerts] == ["critical"]
    assert checkout.alerts[0].resolve_seconds is not None
    assert checkout.spent is not None and 0.0 < checkout.spent < 0.5  # the month so far
    assert "| checkout_availability | 99.9 % |" in to_markdown(report)


def test_checkout_slo_stays_quiet_without_the_burst_negative_control(tmp_path: Path) -> None:
    """The same hour on data without the burst (0.02 % errors): never pending or firing."""
    quiet = _demo(tmp_path, live=True, slo_burst=False)
    seen = _slo_story(quiet, timedelta(minutes=20))
    assert {o.state for _, o in seen} == {"inactive"}
    assert {o.observation.status for _, o in seen} == {Status.OK}


# ----- the feed --------------------------------------------------------------------------


def test_the_feed_writes_each_row_once_however_irregular_its_ticks(tmp_path: Path) -> None:
    start = T0
    ticks = [start + timedelta(seconds=s) for s in (0, 7, 8, 61, 200, 200, 333, 600)]
    pieces = [feed.score_rows(a, b) for a, b in itertools.pairwise(ticks)]
    joined = [row[:2] for piece in pieces for row in piece]
    whole = [row[:2] for row in feed.score_rows(ticks[0], ticks[-1])]
    assert joined == whole and len(set(joined)) == len(joined)
    assert len(whole) == 2 * 600 // feed.SCORE_STEP  # 240 an hour per model
    orders = [o for a, b in itertools.pairwise(ticks) for o in feed.order_rows(a, b)]
    assert orders == feed.order_rows(ticks[0], ticks[-1])  # each minute's orders once
    assert len({o[1] for o in orders}) == 10  # ten minutes, each stamped with its minute
    assert len(orders) == sum(feed.order_count(feed.EPOCH + timedelta(minutes=m))
                              for m in range(int(T0.timestamp()) // 60 + 1,
                                             int(T0.timestamp()) // 60 + 11))
