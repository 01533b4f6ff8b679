"""Maintenance windows on routes (issue #19, 3): ``time_intervals`` in the rules file,
``mute_time_intervals``/``active_time_intervals`` on routes, through the engine, the
timeline and the outbox. What a window muted is in the timeline; the resolve still goes
to every target that was told the alert fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.core.time_intervals import Span, TimeRange
from alert_jobs.runtime.evaluate import process_observation
from alert_jobs.store import Timeline

# Tuesday 2026-12-01. Berlin is UTC+1 in winter, so the deploy window (02:00-04:00
# Berlin) is 01:00-03:00 UTC; business hours are 09:00-17:00 UTC, Monday to Friday.
BEFORE_WINDOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
IN_WINDOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

RULES = """
receivers:
  - {name: console, type: console}
  - {name: pager, type: webhook, url: 'http://127.0.0.1:9/page'}
  - {name: chat, type: webhook, url: 'http://127.0.0.1:9/chat'}
  - {name: audit, type: webhook, url: 'http://127.0.0.1:9/audit'}
defaults: {group_wait: 0s, group_interval: 5m}
time_intervals:
  - name: deploy_window
    time_intervals:
      - weekdays: [tuesday]
        times: [{start_time: "02:00", end_time: "04:00"}]
        location: Europe/Berlin
  - name: business_hours
    time_intervals:
      - weekdays: ["monday:friday"]
        times: [{start_time: 09:00, end_time: 17:00}]
route:
  receiver: console
  routes:
    - matchers: [team=payments]
      receiver: pager
      mute_time_intervals: [deploy_window]
      continue: true
    - matchers: [team=payments]
      receiver: chat
      active_time_intervals: [business_hours]
      continue: true
    - matchers: [team=payments]
      receiver: audit
checks:
  sql_metric:
    - {name: orders_stuck, database: 'sqlite://', query: SELECT 1, expect: {max: 0},
       labels: {team: payments}}
"""


@pytest.fixture
def timeline(db_url):
    timeline = Timeline(db_url)
    timeline.upgrade()
    yield timeline
    timeline.dispose()


def evaluate(timeline, status, now, run_id, rules_text=RULES):
    rules = parse_rules(rules_text)
    rule = rules.rule("orders_stuck")
    obs = Observation(rule.name, status, dict(rule.labels), 1.0 if status == Status.ALERT
                      else 0.0, summary="1 order stuck")
    return process_observation(rules, rule, timeline, obs, now=now, run_id=run_id)


def sent(timeline, kind):
    """Receivers with an outbox message of ``kind`` (firing or resolved)."""
    return sorted(r["receiver"] for r in timeline.outbox.rows() if r["kind"] == kind)


def suppressed(timeline):
    return timeline.events.list(kinds=["suppressed"])


# ----- end to end ----------------------------------------------------------------------

def test_a_firing_inside_a_mute_window_is_not_queued_and_the_timeline_says_why(timeline):
    outcome = evaluate(timeline, Status.ALERT, IN_WINDOW, "run-in-window")
    assert outcome.state == "firing"
    # audit has no intervals: the positive control in the same evaluation.
    assert sent(timeline, "firing") == ["audit"]
    events = {e["payload"]["receiver"]: e for e in suppressed(timeline)}
    assert set(events) == {"pager", "chat"}
    pager = events["pager"]
    assert pager["reason"] == ("firing to pager muted by time interval deploy_window "
                               "on route root.0")
    assert pager["run_id"] == "run-in-window"
    assert pager["fingerprint"] == outcome.result.decision.record.fingerprint
    assert pager["payload"]["route_id"] == "root.0"
    assert events["chat"]["reason"] == ("firing to chat outside its active time intervals "
                                        "(business_hours) on route root.1")


def test_outside_the_window_the_same_firing_is_queued(timeline):
    """Positive control of the test above: the same alert at noon reaches every route."""
    evaluate(timeline, Status.ALERT, TUESDAY_NOON, "run-noon")
    assert sent(timeline, "firing") == ["audit", "chat", "pager"]
    assert suppressed(timeline) == []


def test_a_resolve_inside_the_window_goes_to_the_target_told_of_the_firing(timeline):
    evaluate(timeline, Status.ALERT, BEFORE_WINDOW, "run-fire")
    # Before the window, at night: pager and audit are told; chat is not (not business
    # hours), which the timeline says.
    assert sent(timeline, "firing") == ["audit", "pager"]
    assert [e["payload"]["receiver"] for e in suppressed(timeline)] == ["chat"]

    outcome = evaluate(timeline, Status.OK, IN_WINDOW, "run-resolve")
    assert outcome.state == "resolved"
    # pager is muted now, but it was told the alert fires: its resolve goes out.
    assert sent(timeline, "resolved") == ["audit", "pager"]
    # chat never saw the firing: no lone resolve, and the timeline says why.
    later = [e for e in suppressed(timeline) if e["run_id"] == "run-resolve"]
    assert [e["payload"]["receiver"] for e in later] == ["chat"]
    assert later[0]["reason"] == (
        "resolve not sent to chat: its firing was not sent there (outside its active "
        "time intervals (business_hours) on route root.1)")


def test_a_resolve_follows_a_firing_still_waiting_in_its_group(timeline):
    """The firing was queued before the window but its group had not been flushed yet
    (group_wait): the resolve is queued too, so the group's flush tells no one of an
    alert that fired and resolved, instead of sending a firing that never resolves."""
    rules = RULES.replace("group_wait: 0s", "group_wait: 10m")
    fired_at = datetime(2026, 12, 1, 0, 55, tzinfo=UTC)
    evaluate(timeline, Status.ALERT, fired_at, "run-fire", rules)
    assert timeline.outbox.rows() == []  # waiting for group_wait
    evaluate(timeline, Status.OK, fired_at + timedelta(minutes=7), "run-resolve", rules)
    # pager's resolve was kept (no event for pager); chat never had a firing queued.
    assert {e["payload"]["receiver"] for e in suppressed(timeline)} == {"chat"}
    timeline.outbox.flush_due(router=parse_rules(rules).router(),
                              now=fired_at + timedelta(minutes=15))
    assert sent(timeline, "firing") == [] and sent(timeline, "resolved") == []


def test_a_firing_waiting_in_its_group_is_sent_when_nothing_resolves_it(timeline):
    """Positive control of the test above: the same queued firing, not resolved, is
    flushed to pager (a window does not hold back what was queued before it began)."""
    rules = RULES.replace("group_wait: 0s", "group_wait: 10m")
    fired_at = datetime(2026, 12, 1, 0, 55, tzinfo=UTC)
    evaluate(timeline, Status.ALERT, fired_at, "run-fire", rules)
    timeline.outbox.flush_due(router=parse_rules(rules).router(),
                              now=fired_at + timedelta(minutes=15))
    assert sent(timeline, "firing") == ["audit", "pager"]


def test_active_time_intervals_send_only_inside_them(timeline):
    evaluate(timeline, Status.ALERT, SATURDAY_NOON, "run-saturday")
    assert "chat" not in sent(timeline, "firing")
    assert sent(timeline, "firing") == ["audit", "pager"]  # the others, same evaluation
    [event] = suppressed(timeline)
    assert event["payload"]["receiver"] == "chat" and event["run_id"] == "run-saturday"


def test_active_time_intervals_positive_control(timeline):
    evaluate(timeline, Status.ALERT, TUESDAY_NOON, "run-tuesday")
    assert "chat" in sent(timeline, "firing")


ONLY_PAGER = """
receivers:
  - {name: pager, type: webhook, url: 'http://127.0.0.1:9/page'}
defaults: {receivers: [pager], group_wait: 0s, group_interval: 5m, repeat_interval: 4h}
time_intervals:
  - name: deploy_window
    time_intervals:
      - weekdays: [tuesday]
        times: [{start_time: "02:00", end_time: "04:00"}]
        location: Europe/Berlin
route:
  receiver: pager
  routes:
    - {matchers: [team=payments], receiver: pager, mute_time_intervals: [deploy_window]}
checks:
  sql_metric:
    - {name: orders_stuck, database: 'sqlite://', query: SELECT 1, expect: {max: 0},
       labels: {team: payments}}
"""
AFTER_WINDOW = datetime(2026, 12, 1, 3, 1, tzinfo=UTC)  # 04:01 Berlin


def test_an_alert_whose_every_target_is_in_a_window_is_sent_when_the_window_ends(timeline):
    """Every route of the alert is muted: the engine treats it as muted (as a silenced
    one), so nothing counts as sent and the first evaluation after the window sends it,
    as Alertmanager's next group flush would, not only at the next repeat (4 h)."""
    outcome = evaluate(timeline, Status.ALERT, IN_WINDOW, "run-in", ONLY_PAGER)
    assert outcome.state == "firing" and sent(timeline, "firing") == []
    record = outcome.result.decision.record
    assert not record.notified_firing  # nobody was told
    [event] = suppressed(timeline)
    assert event["reason"] == "muted by time interval deploy_window on route root.0"
    evaluate(timeline, Status.ALERT, IN_WINDOW + timedelta(minutes=30), "run-in-2", ONLY_PAGER)
    assert sent(timeline, "firing") == []  # still inside
    evaluate(timeline, Status.ALERT, AFTER_WINDOW, "run-after", ONLY_PAGER)
    assert sent(timeline, "firing") == ["pager"]  # the positive control: told at once


def test_an_alert_that_fires_and_clears_inside_its_window_is_never_sent(timeline):
    evaluate(timeline, Status.ALERT, IN_WINDOW, "run-in", ONLY_PAGER)
    evaluate(timeline, Status.OK, IN_WINDOW + timedelta(minutes=20), "run-ok", ONLY_PAGER)
    evaluate(timeline, Status.OK, AFTER_WINDOW, "run-after", ONLY_PAGER)
    assert sent(timeline, "firing") == [] and sent(timeline, "resolved") == []


# ----- the rules file --------------------------------------------------------------------

def test_child_routes_do_not_inherit_time_intervals():
    text = RULES.replace("""      mute_time_intervals: [deploy_window]
      continue: true""", """      mute_time_intervals: [deploy_window]
      continue: true
      routes:
        - matchers: [severity=critical]
          receiver: console""")
    router = parse_rules(text).router()
    targets = {t.receiver: t for t in router.targets(
        {"alertname": "x", "team": "payments", "severity": "critical"})}
    assert targets["console"].route_id == "root.0.0"
    assert targets["console"].mute_time_intervals == ()  # as Alertmanager: not inherited
    assert router.time_muted(targets["console"], IN_WINDOW) is None
    parent = {t.receiver: t for t in router.targets({"alertname": "x", "team": "payments"})}
    assert parent["pager"].mute_time_intervals == ("deploy_window",)
    assert router.time_muted(parent["pager"], IN_WINDOW) == (
        "muted by time interval deploy_window on route root.0")


def test_unquoted_times_and_ranges_mean_what_they_say():
    """YAML 1.1 reads unquoted 17:00 and 1:5 as base-60 numbers; Alertmanager's reader
    keeps the text. Both spellings mean the same here."""
    rules = parse_rules("""
time_intervals:
  - name: evenings
    time_intervals:
      - times: [{start_time: 17:00, end_time: 24:00}]
        days_of_month: [1:5, 15, "-3:-1"]
        months: [1:3, 12]
        years: [2026, "2027:2028"]
        weekdays: [Saturday]
""")
    [entry] = rules.router().time_intervals["evenings"].entries
    assert entry.times == (TimeRange(1020, 1440),)
    assert entry.days_of_month == (Span(1, 5), Span(15, 15), Span(-3, -1))
    assert entry.months == (Span(1, 3), Span(12, 12))
    assert entry.years == (Span(2026, 2026), Span(2027, 2028))
    assert entry.weekdays == (Span(6, 6),)


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


BAD = """receivers:
  - {name: console, type: console}
time_intervals:
  - name: deploy_window
    time_intervals:
      - times:
          - {start_time: "02:00", end_time: "25:00"}
          - {start_time: "22:00", end_time: "06:00"}
        weekdays: [tuesday, funday]
        days_of_month: ["0"]
        months: [smarch]
        location: Mars/Olympus
  - name: weekend
route:
  receiver: console
  routes:
    - matchers: [team=payments]
      mute_time_intervals: [deploy_windw]
      active_time_intervals: [weekend, holidays]
"""


def test_bad_intervals_and_unknown_names_are_reported_at_once_with_lines():
    with pytest.raises(RulesError) as info:
        parse_rules(BAD, "alerts.yaml")
    problems = {p.path: p for p in info.value.problems}
    base = "time_intervals[0].time_intervals[0]"
    expected = {
        f"{base}.times[0].end_time": ("HH:MM from 00:00 to 24:00, got '25:00'", "25:00"),
        f"{base}.times[1]": ("end_time 06:00 must be after start_time 22:00", "22:00"),
        f"{base}.weekdays[1]": ("'funday' is not a weekday", "funday"),
        f"{base}.days_of_month[0]": ("0 is not a day of the month", "days_of_month"),
        f"{base}.months[0]": ("'smarch' is not a month", "smarch"),
        f"{base}.location": ("unknown location 'Mars/Olympus'", "Mars/Olympus"),
        "route.routes[0].mute_time_intervals[0]": (
            "unknown time interval 'deploy_windw'; did you mean deploy_window?",
            "deploy_windw"),
        "route.routes[0].active_time_intervals[1]": (
            "unknown time interval 'holidays' (known time intervals: deploy_window, weekend)",
            "holidays"),
    }
    for path, (reason, needle) in expected.items():
        assert path in problems, (path, info.value.lines())
        assert reason in problems[path].reason, (path, problems[path].reason)
        assert problems[path].line == _line_of(BAD, needle), path
    assert set(problems) == set(expected), info.value.lines()
    assert any(line.startswith("alerts.yaml: route.routes[0].mute_time_intervals[0]: ")
               and line.endswith(f"(line {_line_of(BAD, 'deploy_windw')})")
               for line in info.value.lines())


def test_known_names_load():
    """Positive control: the names fixed, the same routes load."""
    good = BAD.split("time_intervals:\n  - name: deploy_window")[0] + \
        "time_intervals:\n  - name: deploy_window\n  - name: weekend\n  - name: holidays\n" + \
        "route:" + BAD.split("route:")[1].replace("deploy_windw", "deploy_window")
    assert parse_rules(good).route is not None


def test_the_root_route_cannot_have_time_intervals():
    text = RULES.replace("route:\n  receiver: console\n",
                         "route:\n  receiver: console\n  mute_time_intervals: [deploy_window]\n")
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    [problem] = info.value.problems
    assert problem.path == "route.mute_time_intervals"
    assert "root route cannot have mute_time_intervals" in problem.reason
    assert problem.line == _line_of(text, "  mute_time_intervals: [deploy_window]")


def test_interval_names_are_unique():
    text = RULES.replace("  - name: business_hours", "  - name: deploy_window", 1)
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    problems = {p.path: p for p in info.value.problems}
    dup = problems["time_intervals[1].name"]
    assert dup.reason == "time interval name 'deploy_window' is used twice"
    assert dup.line == _line_of(RULES, "  - name: business_hours")


def test_the_documented_example_loads():
    """docs/notifications.md "Maintenance windows" is a working rules file."""
    doc = (Path(__file__).parent.parent / "docs" / "notifications.md").read_text()
    example = doc.split("## Maintenance windows")[1].split("```yaml\n")[1].split("```")[0]
    receivers = ("receivers:\n  - {name: console, type: console}\n"
                 "  - {name: pager, type: webhook, url: 'http://127.0.0.1:9/p'}\n"
                 "  - {name: team_slack, type: webhook, url: 'http://127.0.0.1:9/s'}\n")
    router = parse_rules(receivers + example).router()
    assert set(router.time_intervals) == {"deploy_window", "business_hours", "year_end_freeze"}
    freeze = router.time_intervals["year_end_freeze"]
    assert freeze.contains(datetime(2026, 12, 28, 12, 0, tzinfo=UTC))
    assert not freeze.contains(datetime(2026, 12, 20, 12, 0, tzinfo=UTC))
