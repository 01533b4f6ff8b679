"""Hung runs: the limit (pure), and real runs of a real Dagster instance in progress.

Runs are put in the instance's storage and moved through their statuses with the
instance's own event reporting (``report_dagster_event`` with the event's time), so
their start and end times are the ones a run worker would have written. ``now`` is
passed in, so a run "started 12 minutes ago" needs no waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from alert_jobs.config import load_rules
from alert_jobs.core.model import Status, fingerprint
from alert_jobs.families.heartbeat.config import RUN_FAILED, RUN_HUNG, SelfMonitoring
from alert_jobs.families.heartbeat.watch import report
from alert_jobs.families.heartbeat.watch_runs import (
    configured_limit,
    history_limit,
    history_needed,
    hung_limit,
    hung_observations,
    open_hung_alerts,
    p95,
)
from alert_jobs.store import Timeline

URL = "http://dagster.example:3000/"
T0 = datetime(2026, 3, 10, 12, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def sm(**settings: Any) -> SelfMonitoring:
    return SelfMonitoring(**settings)


# ----- the limit, without Dagster -------------------------------------------------------


def test_p95_is_the_nearest_rank_one_outlier_in_twenty_is_ignored() -> None:
    twenty = [10 * S] * 18 + [40 * S, 900 * S]
    assert p95(twenty) == 40 * S
    assert p95([10 * S, 20 * S, 30 * S, 40 * S, 50 * S]) == 50 * S  # of fewer: the longest
    with pytest.raises(ValueError, match="no durations"):
        p95([])


def test_configured_limit_by_job_then_family_then_default() -> None:
    after = {"nightly_job": 30 * M, "sql_metric": 10 * M, "default": 1 * M}
    assert configured_limit(after, "nightly_job", "sql_metric") == (30 * M,
                                                                    "hung_after.nightly_job")
    assert configured_limit(after, "batch_job", "sql_metric") == (10 * M, "hung_after.sql_metric")
    assert configured_limit(after, "batch_job", None) == (1 * M, "hung_after.default")
    assert configured_limit(after, "batch_job", "redis_quota") == (1 * M, "hung_after.default")
    assert configured_limit({"sql_metric": 10 * M}, "batch_job", "redis_quota") is None


def test_history_limit_is_factor_times_p95_never_below_hung_min() -> None:
    runs = [28 * S] * 19 + [30 * S]  # p95 (nearest rank of 20): 28 s
    limit, why = history_limit([d * 3 for d in runs], factor=3.0, floor=2 * M,
                               without_history=60 * M)
    assert limit == 3 * 84 * S
    assert why == "3 × p95 of its last 20 runs (1.4 min)"
    limit, why = history_limit(runs, factor=3.0, floor=2 * M, without_history=60 * M)
    assert limit == 2 * M  # 3 × 28 s = 84 s is under the floor
    assert why == "hung_min; 3 × p95 of its last 20 runs is only 1.4 min"


def test_too_little_history_gives_hung_without_history() -> None:
    limit, why = history_limit([M] * 4, factor=3.0, floor=2 * M, without_history=45 * M)
    assert (limit, why) == (45 * M, "hung_without_history: 4 finished runs to learn from, "
                                    "5 needed")
    assert history_limit([M] * 5, factor=3.0, floor=2 * M, without_history=45 * M)[0] == 3 * M


def test_hung_limit_prefers_configuration_over_history() -> None:
    history = [M] * 10
    assert hung_limit(history, sm(), "j") == (3 * M, "3 × p95 of its last 10 runs (1.0 min)")
    assert hung_limit(history, sm(hung_after={"default": "7m"}), "j") == (7 * M,
                                                                         "hung_after.default")
    assert hung_limit(history, sm(hung_history_factor=2, hung_min="5m"), "j")[0] == 5 * M


def test_history_is_needed_only_past_the_lowest_possible_learnt_limit() -> None:
    settings = sm(hung_min="2m", hung_without_history="1h")
    assert not history_needed(2 * M, settings)
    assert history_needed(2 * M + S, settings)
    assert history_needed(90 * S, sm(hung_min="2m", hung_without_history="1m"))


# ----- real runs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """One instance for the module (0.8 s to make), its event log in one SQLite file (as
    in one PostgreSQL database in production; a file per run costs 40 ms a run)."""
    events = str(tmp_path_factory.mktemp("event_log"))
    with dg.instance_for_test(overrides={"event_log_storage": {
            "module": "dagster.core.storage.event_log",
            "class": "ConsolidatedSqliteEventLogStorage", "config": {"base_dir": events}}}
            ) as inst:
        yield inst


@pytest.fixture
def instance(shared_instance: dg.DagsterInstance) -> Iterator[dg.DagsterInstance]:
    yield shared_instance
    shared_instance.wipe()  # every test starts with no runs


#: Where a run launched from a code location comes from, as Dagster stores it in its run
#: storage (a queued run must have one). Dagster has no public constructor for it, so it
#: is read back with its public ``deserialize_value``.
ORIGIN = ('{"__class__": "ExternalPipelineOrigin", "external_repository_origin": '
          '{"__class__": "ExternalRepositoryOrigin", "repository_location_origin": '
          '{"__class__": "RegisteredRepositoryLocationOrigin", "location_name": "%s"}, '
          '"repository_name": "__repository__"}, "pipeline_name": "%s"}')


def _event(instance: dg.DagsterInstance, run: dg.DagsterRun, kind: dg.DagsterEventType,
           at: datetime) -> None:
    instance.report_dagster_event(dg.DagsterEvent(event_type_value=kind.value,
                                                  job_name=run.job_name),
                                  run_id=run.run_id, timestamp=at.timestamp())


def new_run(instance: dg.DagsterInstance, job: str,
            status: dg.DagsterRunStatus = dg.DagsterRunStatus.NOT_STARTED,
            location: str | None = None) -> dg.DagsterRun:
    origin: Any = None if location is None else dg.deserialize_value(ORIGIN % (location, job))
    return instance.add_run(dg.DagsterRun(job_name=job, status=status,
                                          remote_job_origin=origin))


def started(instance: dg.DagsterInstance, job: str, at: datetime,
            location: str | None = None) -> dg.DagsterRun:
    run = new_run(instance, job, location=location)
    _event(instance, run, dg.DagsterEventType.RUN_START, at)
    return run


def finished(instance: dg.DagsterInstance, job: str, took: timedelta, at: datetime = T0,
             kind: dg.DagsterEventType = dg.DagsterEventType.RUN_SUCCESS) -> dg.DagsterRun:
    run = started(instance, job, at)
    _event(instance, run, kind, at + took)
    return run


def watch(instance: dg.DagsterInstance, settings: SelfMonitoring, now: datetime,
          active: dict[str, Any] | None = None, **kw: Any) -> list[Any]:
    return hung_observations(instance, settings, {} if active is None else active, now=now,
                             dagster_url=URL, **kw)


def test_a_run_past_its_configured_limit_is_one_alert_with_the_run_link(
        instance: dg.DagsterInstance) -> None:
    run = started(instance, "report_job", T0)
    active: dict[str, Any] = {}
    (obs,) = watch(instance, sm(hung_after={"report_job": "10m"}), T0 + 12 * M, active)
    link = f"http://dagster.example:3000/runs/{run.run_id}"
    assert obs.rule == RUN_HUNG and obs.status == Status.ALERT
    assert obs.labels == {"job": "report_job", "location": ""}
    assert obs.value == 12.0
    assert obs.details == {"run_id": run.run_id, "run_url": link}
    assert obs.summary == (f"Run {run.run_id[:8]} of job report_job has been running for "
                           f"12 minutes, past its limit of 10 minutes "
                           f"(hung_after.report_job): {link}")
    assert obs.expected == "runs of report_job to finish within 10 minutes " \
                           "(hung_after.report_job)"
    assert obs.seen == f"run {run.run_id} running for 12 minutes"
    assert active == {fingerprint(RUN_HUNG, obs.labels): obs.labels}


def test_limit_by_family_and_by_default(instance: dg.DagsterInstance) -> None:
    started(instance, "sql_batch_job", T0)
    started(instance, "other_job", T0)
    settings = sm(hung_after={"sql_metric": "5m", "default": "20m"})
    families = {"sql_batch_job": "sql_metric"}
    alerts = watch(instance, settings, T0 + 6 * M, families=families)
    assert [(o.labels["job"], o.expected) for o in alerts] == [
        ("sql_batch_job", "runs of sql_batch_job to finish within 5 minutes "
                          "(hung_after.sql_metric)")]
    alerts = watch(instance, settings, T0 + 21 * M, families=families)
    assert {o.labels["job"]: o.expected.split("(")[1] for o in alerts} == {
        "sql_batch_job": "hung_after.sql_metric)", "other_job": "hung_after.default)"}
    assert not watch(instance, settings, T0 + 6 * M), "without its family, the default: 20m"


def test_a_run_under_its_limit_gives_nothing_and_over_a_lower_one_alerts(
        instance: dg.DagsterInstance) -> None:
    started(instance, "report_job", T0)
    assert watch(instance, sm(hung_after={"report_job": "10m"}), T0 + 9 * M) == []
    assert len(watch(instance, sm(hung_after={"report_job": "8m"}), T0 + 9 * M)) == 1


def test_history_limit_from_the_jobs_own_successful_runs(instance: dg.DagsterInstance) -> None:
    for took in [60, 60, 60, 60, 60, 80]:  # p95 of six: the longest, 80 s → limit 4 min
        finished(instance, "batch_job", took * S)
    finished(instance, "batch_job", 60 * M, kind=dg.DagsterEventType.RUN_FAILURE)  # not learnt
    finished(instance, "other_job", 60 * M)  # another job's history: not learnt either
    now = T0 + timedelta(hours=1)
    run = started(instance, "batch_job", now)
    assert watch(instance, sm(), now + 4 * M) == []
    (obs,) = watch(instance, sm(), now + 4 * M + 30 * S)
    assert obs.details["run_id"] == run.run_id
    assert "past its limit of 4 minutes (3 × p95 of its last 6 runs (1.3 min))" in obs.summary
    # … and never below hung_min
    (obs,) = watch(instance, sm(hung_min="5m"), now + 5 * M + S)
    assert "limit of 5 minutes (hung_min; 3 × p95 of its last 6 runs is only 4.0 min)" \
        in obs.summary
    assert watch(instance, sm(hung_min="5m"), now + 5 * M) == []


def test_too_little_history_waits_for_hung_without_history(instance: dg.DagsterInstance
                                                           ) -> None:
    for _ in range(4):
        finished(instance, "young_job", 10 * S)
    started(instance, "young_job", T0 + M)
    settings = sm(hung_without_history="30m")
    assert watch(instance, settings, T0 + 30 * M) == []
    (obs,) = watch(instance, settings, T0 + 32 * M)
    assert "(hung_without_history: 4 finished runs to learn from, 5 needed)" in obs.summary


class CountingInstance:
    """The real instance, counting the run-record queries made through it."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance, self.queries = instance, 0

    def get_run_records(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return self.instance.get_run_records(*args, **kwargs)


def test_history_is_read_only_for_jobs_running_past_hung_min_once_each(
        instance: dg.DagsterInstance) -> None:
    for job in ("a_job", "b_job"):
        started(instance, job, T0)
        started(instance, job, T0 + 30 * S)
    counting = CountingInstance(instance)
    assert watch(counting, sm(), T0 + 2 * M) == []  # type: ignore[arg-type]
    assert counting.queries == 1, "the runs in progress only"
    counting.queries = 0
    assert watch(counting, sm(), T0 + 3 * M) == []  # type: ignore[arg-type]
    assert counting.queries == 3, "plus one history per job (no history: 1 h limit)"
    counting.queries = 0
    settings = sm(hung_after={"a_job": "1m", "b_job": "1m"})
    assert len(watch(counting, settings, T0 + 3 * M)) == 2  # type: ignore[arg-type]
    assert counting.queries == 1, "configured limits need no history"


def test_queued_and_not_started_runs_never_alert(instance: dg.DagsterInstance) -> None:
    queued = new_run(instance, "waiting_job", dg.DagsterRunStatus.QUEUED, "partner_location")
    new_run(instance, "waiting_job", dg.DagsterRunStatus.NOT_STARTED)
    settings = sm(hung_after={"default": "1m"})
    later = datetime.now(UTC) + timedelta(days=1)
    assert watch(instance, settings, later) == []
    _event(instance, queued, dg.DagsterEventType.RUN_START, datetime.now(UTC))
    (obs,) = watch(instance, settings, later)  # the positive control: once it runs
    assert obs.details["run_id"] == queued.run_id
    assert obs.labels == {"job": "waiting_job", "location": "partner_location"}
    assert f"Run {queued.run_id[:8]} of job waiting_job in partner_location has been " \
           "running for" in obs.summary


def test_starting_and_canceling_runs_can_hang_too(instance: dg.DagsterInstance) -> None:
    starting = new_run(instance, "launch_job")
    _event(instance, starting, dg.DagsterEventType.RUN_STARTING, T0)
    canceling = started(instance, "cancel_job", T0)
    _event(instance, canceling, dg.DagsterEventType.RUN_CANCELING, T0 + 9 * M)
    settings = sm(hung_after={"default": "10m"})
    alerts = watch(instance, settings, T0 + 11 * M)
    assert {o.labels["job"]: o.seen.split()[2:4] for o in alerts} == {
        "launch_job": ["starting", "for"], "cancel_job": ["canceling", "for"]}
    assert all("for 11 minutes" in o.seen for o in alerts), "timed from the start"


def test_the_oldest_run_of_a_job_is_the_alert_and_the_others_are_counted(
        instance: dg.DagsterInstance) -> None:
    oldest = started(instance, "report_job", T0)
    started(instance, "report_job", T0 + M)
    started(instance, "report_job", T0 + 9 * M)
    (obs,) = watch(instance, sm(hung_after={"default": "5m"}), T0 + 10 * M)
    assert obs.details["run_id"] == oldest.run_id and obs.value == 10.0
    assert "; 1 more of its runs are past the limit too:" in obs.summary


@pytest.mark.parametrize(("kind", "ended"), [
    (dg.DagsterEventType.RUN_SUCCESS, "succeeded"),
    (dg.DagsterEventType.RUN_FAILURE, "failed"),
    (dg.DagsterEventType.RUN_CANCELED, "was canceled"),
])
def test_the_alert_resolves_when_the_run_ends_saying_how(
        instance: dg.DagsterInstance, kind: dg.DagsterEventType, ended: str) -> None:
    run = started(instance, "report_job", T0)
    settings = sm(hung_after={"default": "5m"})
    other = fingerprint(RUN_FAILED, {"job": "x", "location": ""})
    active: dict[str, Any] = {other: {"job": "x", "location": ""}}
    (alert,) = watch(instance, settings, T0 + 6 * M, active)
    assert watch(instance, settings, T0 + 7 * M, active)[0].status == Status.ALERT
    _event(instance, run, kind, T0 + 8 * M)
    (ok,) = watch(instance, settings, T0 + 9 * M, active)
    assert ok.status == Status.OK and ok.labels == alert.labels
    assert ok.summary == (f"Job report_job has no run in progress any more: its latest run "
                          f"{run.run_id[:8]} {ended} "
                          f"(http://dagster.example:3000/runs/{run.run_id})")
    assert active == {other: {"job": "x", "location": ""}}, "other rules' alerts untouched"
    assert watch(instance, settings, T0 + 10 * M, active) == []


def test_a_hung_run_of_a_job_that_now_runs_within_its_limit_resolves(
        instance: dg.DagsterInstance) -> None:
    run = started(instance, "report_job", T0)
    settings = sm(hung_after={"default": "5m"})
    active: dict[str, Any] = {}
    assert len(watch(instance, settings, T0 + 6 * M, active)) == 1
    _event(instance, run, dg.DagsterEventType.RUN_FAILURE, T0 + 7 * M)
    new = started(instance, "report_job", T0 + 8 * M)
    (ok,) = watch(instance, settings, T0 + 9 * M, active)
    assert ok.status == Status.OK
    assert ok.summary == (f"Job report_job has no hung run any more: run {new.run_id[:8]} is "
                          "running within its limit")


def test_hung_runs_off_gives_nothing(instance: dg.DagsterInstance) -> None:
    started(instance, "report_job", T0)
    active = {fingerprint(RUN_HUNG, {"job": "report_job", "location": ""}):
              {"job": "report_job", "location": ""}}
    assert watch(instance, sm(hung_runs=False, hung_after={"default": "1m"}), T0 + 5 * M,
                 active) == []
    assert len(watch(instance, sm(hung_after={"default": "1m"}), T0 + 5 * M, active)) == 1


def test_through_the_engine_an_alert_opens_once_and_resolves(
        instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """What the instance-watch sensor does with them: report, and read the open alerts
    back as the next tick's ``active``."""
    rules_path = tmp_path / "alerts.yaml"
    rules_path.write_text("self_monitoring:\n  receivers: [console]\n"
                          "  hung_after: {default: 5m}\n")
    rules = load_rules(rules_path)
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        settings = rules.section(SelfMonitoring)
        run = started(instance, "report_job", T0)
        for minutes in (6, 7):
            now = T0 + minutes * M
            report(rules, timeline, watch(instance, settings, now, open_hung_alerts(timeline)),
                   now=now)
        (alert,) = timeline.alerts.list()
        assert alert.rule == RUN_HUNG and alert.state.is_active
        assert alert.labels == {"job": "report_job", "location": ""}
        assert run.run_id in alert.last_summary
        _event(instance, run, dg.DagsterEventType.RUN_SUCCESS, T0 + 8 * M)
        now = T0 + 9 * M
        report(rules, timeline, watch(instance, settings, now, open_hung_alerts(timeline)),
               now=now)
        assert timeline.alerts.list() == []
        assert open_hung_alerts(timeline) == {}
    finally:
        timeline.dispose()
