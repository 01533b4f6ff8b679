"""What INFO can and cannot know, against real private Redis servers and the real clock.

A restart loses the commands the old process ran after the last sample; the check
estimates them from the rate measured before (and says so), and never projects a day
from a rate measured over a few seconds. These tests run on the wall clock, because the
restart's time comes from the new server's real ``uptime_in_seconds``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alert_jobs.core.model import Severity, Status
from alert_jobs.families.redis_quota.run import check_target
from alert_jobs.store import Timeline
from benchmarks.redis_restart_soak import PacedLoad, commands_processed
from tests.families.redis_quota.test_redis_quota import load, quota_of, rules_for, target

NOON = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def test_restart_between_checks_is_estimated_within_a_few_percent(redis_factory,
                                                                   sqlite_url: str) -> None:
    """Steady load; checks at 0, 8 and 16 s; restart at 24 s; check at 26 s. The 8 s
    between the last check and the restart are unseen by INFO: estimated from the
    rate of the first 16 s. Beside it, the same load and checks without a restart
    (the control) are counted exactly. Redis reports uptime in whole seconds, so the
    restart's time is known to about ±1 s: the bound is 5 % of 26 s of traffic."""
    restarted, control = redis_factory(), redis_factory()
    rules = rules_for(target("restarted", restarted.url), target("control", control.url))
    t_r, t_c = rules.checks.redis_quota
    timeline = Timeline(sqlite_url)
    with PacedLoad(restarted, 2000) as load_r, PacedLoad(control, 2000) as load_c:
        for _ in range(3):
            last_r = check_target(rules, t_r, timeline, now=now()).metrics
            check_target(rules, t_c, timeline, now=now())
            time.sleep(8)
        with load_r.paused():
            old_server_count = commands_processed(restarted.port)
            restarted.restart()
        time.sleep(2)
        with load_r.paused(), load_c.paused():
            end_r = check_target(rules, t_r, timeline, now=now())
            end_c = check_target(rules, t_c, timeline, now=now())
            # less its INFO and the final check's
            new_server_count = commands_processed(restarted.port) - 2
            control_count = commands_processed(control.port) - 2
    m, c = end_r.metrics, end_c.metrics
    # What INFO can count is counted exactly, with and without a restart.
    assert m["used_counted"] == last_r["used"] + new_server_count
    assert c["used"] == c["used_counted"] == control_count
    assert c["estimated_commands"] == 0 and c["restarts"] == 0
    assert "estimated" not in quota_of(end_c).summary
    # What it cannot count is estimated, and marked as such.
    truth = old_server_count + new_server_count
    unseen = old_server_count - last_r["used"]
    assert unseen > 0.2 * truth  # the 8 s before the restart: about 30 % of the traffic
    assert m["restarts"] == 1 and m["estimated_commands"] > 0
    assert m["used"] == pytest.approx(m["used_counted"] + m["estimated_commands"])
    assert abs(m["used"] - truth) <= 0.05 * truth, (m["used"], truth)
    assert truth - m["used_counted"] == unseen, "without the estimate: the whole gap lost"
    summary = quota_of(end_r).summary
    assert f"includes ~{m['estimated_commands']:,.0f} commands estimated across a Redis " \
           "restart at " in summary
    assert end_r.text["estimate"] in summary


def test_burst_just_after_a_restart_is_not_projected(redis_factory, sqlite_url: str) -> None:
    """Two samples seconds apart after a restart, with a burst between them: tens of
    thousands of commands a second, which projected to the end of the day is billions.
    Not a projection (the rate spans seconds, project_after is 15 minutes), so no
    warning; used is far under 70 %. The control: the same samples with project_after
    1s do project, and warn."""
    server = redis_factory()
    rules = rules_for(target("cache", server.url, quota="{window: day, limit: 10000000}"),
                      target("eager", server.url, quota="{window: day, limit: 10000000}",
                             project_after="1s"))
    honest, eager = rules.checks.redis_quota
    timeline = Timeline(sqlite_url)
    check_target(rules, honest, timeline, now=now())
    check_target(rules, eager, timeline, now=now())
    server.restart()
    results: dict[str, list[Any]] = {"cache": [], "eager": []}
    for _ in range(2):
        load(server.client(), 30_000)
        time.sleep(1.1)
        results["cache"].append(check_target(rules, honest, timeline, now=now()))
        results["eager"].append(check_target(rules, eager, timeline, now=now()))
    last = results["cache"][-1]
    obs = quota_of(last)
    assert obs.status == Status.OK, obs.summary
    assert "projected" not in last.metrics
    assert last.metrics["rate_span_seconds"] < 15
    assert "too short to project (project_after 15 min)" in obs.summary
    assert last.metrics["percent"] < 70
    control = quota_of(results["eager"][-1])
    assert control.status == Status.ALERT and control.severity == Severity.WARNING
    assert "projected" in control.summary


def test_first_check_of_a_window_does_not_project(redis_factory, sqlite_url: str) -> None:
    """The demo's case: a server busy since well before the first check. One sample is
    no rate: not used ÷ seconds since midnight (that said 0.058 ops/s for a real 22), and
    not a projection; the message says how the rate is known."""
    server = redis_factory()
    load(server.client(), 20_000)
    rules = rules_for(target("cache", server.url, quota="{window: day, limit: 100000}"))
    t = rules.checks.redis_quota[0]
    timeline = Timeline(sqlite_url)
    first = check_target(rules, t, timeline, now=NOON)
    obs = quota_of(first)
    assert "rate_ops_per_sec" not in first.metrics and "projected" not in first.metrics
    assert first.metrics["rate_samples"] == 1 and first.metrics["rate_span_seconds"] == 0
    assert "rate not yet known: 1 sample in this window, so no projection" in obs.summary
    assert first.text["rate_basis"] == "rate not yet known: 1 sample in this window"
    assert obs.status == Status.OK
    # The control: the second check, 15 minutes of samples later, has a rate and projects.
    load(server.client(), 3000)
    second = check_target(rules, t, timeline, now=NOON + timedelta(minutes=15))
    assert second.metrics["rate_ops_per_sec"] == pytest.approx(3001 / 900, rel=0.01)
    assert "projected" in second.metrics
    assert "over the last 15 min, projected" in quota_of(second).summary


def test_first_check_after_midnight_does_not_project_from_yesterday(redis_factory,
                                                                    sqlite_url: str) -> None:
    """Yesterday's samples, however recent, are not this window's rate."""
    server = redis_factory()
    rules = rules_for(target("cache", server.url, quota="{window: day, limit: 100000}"))
    t = rules.checks.redis_quota[0]
    timeline = Timeline(sqlite_url)
    check_target(rules, t, timeline, now=datetime(2026, 1, 15, 23, 40, tzinfo=UTC))
    load(server.client(), 3000)
    check_target(rules, t, timeline, now=datetime(2026, 1, 15, 23, 55, tzinfo=UTC))
    load(server.client(), 6000)
    after = check_target(rules, t, timeline, now=datetime(2026, 1, 16, 0, 10, tzinfo=UTC))
    assert "projected" not in after.metrics
    assert "rate not yet known: 1 sample in this window" in quota_of(after).summary
    assert 3900 <= after.metrics["used"] <= 4100, "10 of the 15 minutes are today's"


def test_projection_warns_once_measured_over_project_after(redis_factory,
                                                           sqlite_url: str) -> None:
    """Checks every 5 minutes with 1,000 commands between: about 3.3 ops/s, which
    projects to about 144,000 by 24:00 against a limit of 100,000. At 5 and 10
    minutes of samples it is too short to project (no warning, used is 3 %); at 15 it
    warns on the projection. The 70 % threshold on used does not need a projection."""
    server = redis_factory()
    rules = rules_for(target("cache", server.url, quota="{window: day, limit: 100000}"))
    t = rules.checks.redis_quota[0]
    timeline = Timeline(sqlite_url)
    statuses = []
    for minutes in (0, 5, 10, 15):
        result = check_target(rules, t, timeline, now=NOON + timedelta(minutes=minutes))
        statuses.append((quota_of(result).severity, "projected" in result.metrics))
        load(server.client(), 1000)
    assert statuses == [(None, False), (None, False), (None, False),
                        (Severity.WARNING, True)]
    assert "projected 14" in quota_of(result).summary
    # Used alone still warns, with no rate at all: a fresh target, one sample.
    load(server.client(), 75_000)
    fresh = rules_for(target("fresh", server.url, quota="{window: day, limit: 100000}"))
    alone = check_target(fresh, fresh.checks.redis_quota[0], Timeline(sqlite_url), now=NOON)
    assert quota_of(alone).severity == Severity.WARNING
    assert "projected" not in alone.metrics


@pytest.mark.parametrize(
    ("more", "message"),
    [
        pytest.param({"project_after": "0s"}, "project_after must be longer than 0s",
                     id="zero"),
        pytest.param({"project_after": "2h"},
                     "project_after (2 hours) is longer than rate_window (1 hour)",
                     id="longer-than-rate-window"),
    ],
)
def test_project_after_is_validated(more: dict[str, str], message: str) -> None:
    from alert_jobs.config import RulesError

    with pytest.raises(RulesError) as info:
        rules_for(target("cache", "redis://127.0.0.1:1/0", **more))
    assert message in str(info.value)
