"""``GET /api/v2/alerts`` and ``/api/v2/alerts/groups`` over real HTTP: our engine's alerts
in Alertmanager's shapes, its filters and booleans, groups as routing groups them, and
the real ``amtool`` listing them."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alert_jobs.core.engine import RulePolicy
from alert_jobs.core.model import Matcher, Observation, Severity, Status
from alert_jobs.http.alertmanager import ApiAuth
from alert_jobs.store import Timeline, utcnow
from tests.http.pages_support import serve

TOKEN = "t" * 12 + "0123456789ab"
RULES = """
defaults: {receivers: [console], dagster_url: "http://dagster.example:3000"}
receivers:
  - {name: console, type: console}
  - {name: pager, type: console}
route:
  receiver: console
  group_by: [alertname]
  routes:
    - matchers: ["severity=critical"]
      receiver: pager
      group_by: [alertname, team]
inhibit_rules:
  - source_matchers: ["alertname=db_down"]
    target_matchers: ["alertname=orders_low"]
    equal: [cluster]
checks:
  sql_metric:
    - name: dead_letters
      database: sqlite://
      query: SELECT 1
      expect: {max: 0}
      keep_firing_for: 30m
      annotations:
        why: Orders are stuck in the dead-letter queue.
        runbook_url: https://runbooks.example.com/dead-letters
        dashboard_url: https://grafana.example.com/d/dl
"""


@dataclass
class Api:
    base: str
    timeline: Timeline

    def get(self, path: str, params: Any = None, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.base + path, params=params, headers=headers, timeout=30)

    def push(self, alerts: list[dict[str, Any]]) -> None:
        response = httpx.post(self.base + "/api/v2/alerts", json=alerts, timeout=30,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.text

    def alerts(self, params: Any = None) -> list[dict[str, Any]]:
        response = self.get("/api/v2/alerts", params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


@contextlib.contextmanager
def served(tmp_path: Path) -> Iterator[Api]:
    with serve(tmp_path, rules=RULES, api_auth=ApiAuth(tokens={TOKEN: "bot"})) as app:
        yield Api(app.base, app.timeline)


def fire(timeline: Timeline, rule: str, labels: dict[str, str], *,
         severity: Severity = Severity.WARNING, for_: timedelta = timedelta(0),
         keep: timedelta = timedelta(0), ago: timedelta = timedelta(minutes=20),
         status: Status = Status.ALERT) -> str:
    obs = Observation(rule, status, labels, 7.0, summary=f"{rule} is bad",
                      expected="to be 0", severity=severity)
    policy = RulePolicy(rule=rule, severity=severity, receivers=(), for_=for_,
                        keep_firing_for=keep)
    return timeline.alerts.process(obs, policy, now=utcnow() - ago,
                                   run_id="run-1234abcd").decision.record.fingerprint


def when(text: str) -> datetime:
    assert text.endswith("Z") and len(text) == len("2026-01-02T15:04:05.000Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def by_name(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["labels"]["alertname"]: a for a in alerts}


def test_firing_and_recovering_alerts_are_listed_in_alertmanagers_shape(
        tmp_path: Path) -> None:
    with served(tmp_path) as api:
        tl = api.timeline
        dead = fire(tl, "dead_letters", {"team": "payments"}, severity=Severity.CRITICAL,
                    ago=timedelta(minutes=1))
        disk = fire(tl, "disk_full", {"host": "db1"})
        fire(tl, "latency", {"team": "search"}, for_=timedelta(hours=1))  # pending
        gone = fire(tl, "queue_depth", {"team": "ops"}, ago=timedelta(minutes=30))
        fire(tl, "queue_depth", {"team": "ops"}, status=Status.OK, ago=timedelta(minutes=10))
        slow = fire(tl, "dead_letters", {"team": "web"}, keep=timedelta(minutes=30),
                    ago=timedelta(minutes=30))
        fire(tl, "dead_letters", {"team": "web"}, keep=timedelta(minutes=30), status=Status.OK,
             ago=timedelta(minutes=10))  # recovering: still firing for its receivers
        assert tl.alerts.get(gone).state == "resolved"  # type: ignore[union-attr]
        assert tl.alerts.get(slow).state == "recovering"  # type: ignore[union-attr]

        now = utcnow()
        alerts = api.alerts()
        assert [a["fingerprint"] for a in alerts] == sorted([dead, disk, slow])
        one = next(a for a in alerts if a["fingerprint"] == dead)
        record = tl.alerts.get(dead)
        assert record is not None and record.fired_at is not None
        assert one["labels"] == {"team": "payments", "alertname": "dead_letters",
                                 "severity": "critical"}
        assert one["annotations"] == {
            "summary": "dead_letters is bad", "expected": "to be 0", "value": "7",
            "description": "Orders are stuck in the dead-letter queue.",
            "runbook_url": "https://runbooks.example.com/dead-letters",
            "dashboard_url": "https://grafana.example.com/d/dl"}
        assert when(one["startsAt"]) == record.fired_at.replace(
            microsecond=record.fired_at.microsecond // 1000 * 1000)
        assert one["updatedAt"] == one["startsAt"]  # one evaluation so far
        # endsAt: the next evaluation due (the default schedule, every 5 minutes)
        assert when(one["endsAt"]) - when(one["updatedAt"]) == timedelta(minutes=5)
        assert one["generatorURL"] == "http://dagster.example:3000/runs/run-1234abcd"
        assert one["receivers"] == [{"name": "pager"}]  # critical → the pager route
        assert one["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": [],
                                 "mutedBy": []}

        old = by_name(alerts)["disk_full"]
        assert old["receivers"] == [{"name": "console"}]
        # evaluated 20 minutes ago: the next evaluation is overdue, never a past endsAt
        assert now < when(old["endsAt"]) <= utcnow() + timedelta(minutes=5)
        assert "runbook_url" not in old["annotations"]  # not in the rules file
        # recovering: ends when the rule's keep_firing_for (30m from 10 minutes ago) does
        ends = when(next(a for a in alerts if a["fingerprint"] == slow)["endsAt"])
        assert timedelta(minutes=19) < ends - now < timedelta(minutes=21)


def test_alerts_pushed_by_prometheus_are_listed_as_it_sent_them(tmp_path: Path) -> None:
    with served(tmp_path) as api:
        checked = fire(api.timeline, "disk_full", {"host": "db1"})
        starts = (utcnow() - timedelta(minutes=7)).replace(microsecond=0)
        ends = (utcnow() + timedelta(minutes=4)).replace(microsecond=0)

        def pushed(instance: str) -> dict[str, Any]:
            return {"labels": {"alertname": "NodeDown", "instance": instance, "job": "node",
                               "severity": "critical"},
                    "annotations": {"summary": f"{instance} is down",
                                    "runbook_url": "https://runbooks.example.com/node"},
                    "startsAt": starts.isoformat().replace("+00:00", "Z"),
                    "endsAt": ends.isoformat().replace("+00:00", "Z"),
                    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up"}

        api.push([pushed("10.0.0.1:9100"), pushed("10.0.0.2:9100")])
        alerts = api.alerts()
        assert len(alerts) == 3  # ours and Prometheus's, side by side
        node = [a for a in alerts if a["labels"]["alertname"] == "NodeDown"]
        assert sorted(a["labels"]["instance"] for a in node) == ["10.0.0.1:9100",
                                                                  "10.0.0.2:9100"]
        one = next(a for a in node if a["labels"]["instance"] == "10.0.0.1:9100")
        assert one["labels"] == {"alertname": "NodeDown", "instance": "10.0.0.1:9100",
                                 "job": "node", "severity": "critical"}
        assert one["annotations"] == {"summary": "10.0.0.1:9100 is down",
                                      "runbook_url": "https://runbooks.example.com/node"}
        assert when(one["startsAt"]) == starts and when(one["endsAt"]) == ends
        assert one["generatorURL"] == "http://prometheus.example:9090/graph?g0.expr=up"
        assert one["receivers"] == [{"name": "pager"}]  # critical: the pager route
        assert one["status"]["state"] == "active"
        # ours keeps its own annotations beside them
        ours = next(a for a in alerts if a["fingerprint"] == checked)
        assert ours["annotations"]["summary"] == "disk_full is bad"
        assert api.alerts({"filter": "instance=~\"10.0.0.2.*\""})[0]["labels"][
            "instance"] == "10.0.0.2:9100"
        # a second Alertmanager alert of the same instance (another severity label): the
        # instance shows the one the engine follows (the highest severity firing) and
        # the span of both
        warning = {**pushed("10.0.0.1:9100"), "annotations": {"summary": "maybe down"}}
        warning["labels"] = {**warning["labels"], "severity": "warning"}
        warning["startsAt"] = (starts - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        warning["endsAt"] = (ends + timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
        api.push([warning])
        both = next(a for a in api.alerts({"filter": 'instance="10.0.0.1:9100"'}))
        assert both["labels"]["severity"] == "critical"
        assert both["annotations"]["summary"] == "10.0.0.1:9100 is down"
        assert when(both["startsAt"]) == starts - timedelta(minutes=5)
        assert when(both["endsAt"]) == ends + timedelta(minutes=10)
        assert len(api.alerts()) == 3  # still one alert of ours per instance

        groups = api.get("/api/v2/alerts/groups", {"filter": "alertname=NodeDown"}).json()
        assert [(g["labels"], g["receiver"]["name"], len(g["alerts"])) for g in groups] == [
            ({"alertname": "NodeDown"}, "pager", 2)]  # no team label: one group


def test_filters_select_by_label_and_receiver_and_bad_ones_are_a_400(tmp_path: Path) -> None:
    with served(tmp_path) as api:
        tl = api.timeline
        fire(tl, "dead_letters", {"team": "payments"}, severity=Severity.CRITICAL)
        fire(tl, "dead_letters", {"team": "search"})
        fire(tl, "disk_full", {"team": "payments", "host": "db1"})

        def names(params: Any) -> list[tuple[str, str]]:
            return sorted((a["labels"]["alertname"], a["labels"]["team"])
                          for a in api.alerts(params))

        assert len(api.alerts()) == 3  # positive control for every narrowing below
        assert names({"filter": 'team="payments"'}) == [("dead_letters", "payments"),
                                                        ("disk_full", "payments")]
        assert names([("filter", 'team="payments"'), ("filter", "alertname=~dead.*")]) == [
            ("dead_letters", "payments")]
        assert names({"filter": 'alertname!~"dead.*"'}) == [("disk_full", "payments")]
        assert names({"filter": "severity=critical"}) == [("dead_letters", "payments")]
        assert names({"filter": 'alertname=~"dead"'}) == []  # anchored, as Alertmanager
        assert names({"receiver": "pag.*"}) == [("dead_letters", "payments")]
        assert names({"receiver": "console|pager"}) == names({})
        assert names({"receiver": ""}) == names({})  # amtool sends it empty: no filter
        assert names({"receiver_matchers": 'owner="x"'}) == []  # receivers have no labels

        for params, words in [({"filter": "team"}, "cannot parse matcher"),
                              ({"filter": 'alertname=~"("'}, "regex"),
                              ({"receiver": "("}, "failed to parse receiver param"),
                              ({"active": "maybe"}, "active must be true or false")]:
            for path in ("/api/v2/alerts", "/api/v2/alerts/groups"):
                response = api.get(path, params)
                assert response.status_code == 400, (path, params, response.text)
                assert response.headers["content-type"] == "application/json"
                assert isinstance(response.json(), str) and words in response.json()


def test_silenced_and_inhibited_alerts_are_suppressed_and_the_booleans_select(
        tmp_path: Path) -> None:
    with served(tmp_path) as api:
        tl = api.timeline
        disk = fire(tl, "disk_full", {"host": "db1"})
        db_down = fire(tl, "db_down", {"cluster": "eu"}, severity=Severity.CRITICAL)
        orders = fire(tl, "orders_low", {"cluster": "eu"})
        orders_us = fire(tl, "orders_low", {"cluster": "us"})  # other cluster: not inhibited
        acked = fire(tl, "queue_depth", {"team": "ops"})
        snoozed = fire(tl, "queue_depth", {"team": "web"})
        tl.actions.ack(acked, by="bob")
        until = utcnow() + timedelta(hours=1)
        tl.actions.snooze(snoozed, until=until, by="bob")
        silence = tl.silences.add([Matcher("host", "=", "db1")], created_by="bob",
                                  comment="disk swap", ends_at=utcnow() + timedelta(hours=2))
        tl.silences.add([Matcher("host", "=", "db1")], created_by="bob", comment="later",
                        starts_at=utcnow() + timedelta(hours=1),
                        ends_at=utcnow() + timedelta(hours=2))  # not active yet

        everything = {a["fingerprint"]: a for a in api.alerts()}
        assert set(everything) == {disk, db_down, orders, orders_us, acked, snoozed}
        assert everything[disk]["status"] == {"state": "suppressed", "silencedBy": [silence.id],
                                              "inhibitedBy": [], "mutedBy": []}
        assert everything[orders]["status"] == {"state": "suppressed", "silencedBy": [],
                                                "inhibitedBy": [db_down], "mutedBy": []}
        for fp in (db_down, orders_us, acked, snoozed):
            assert everything[fp]["status"]["state"] == "active", fp
        # ack and snooze are ours alone: active for Alertmanager, said in annotations
        assert everything[acked]["annotations"]["acked_by"] == "bob"
        assert when(everything[snoozed]["annotations"]["snoozed_until"]) == until.replace(
            microsecond=until.microsecond // 1000 * 1000)
        assert "acked_by" not in everything[db_down]["annotations"]

        def fps(**params: str) -> set[str]:
            return {a["fingerprint"] for a in api.alerts(params)}

        assert fps(silenced="false") == set(everything) - {disk}
        assert fps(inhibited="false") == set(everything) - {orders}
        assert fps(silenced="false", inhibited="false") == set(everything) - {disk, orders}
        assert fps(active="false") == {disk, orders}
        assert fps(active="false", silenced="false") == {orders}
        assert fps(unprocessed="false") == set(everything)  # none of ours is unprocessed

        # the same booleans apply inside groups; muted=false drops all-suppressed groups
        def grouped(**params: str) -> dict[str, set[str]]:
            response = api.get("/api/v2/alerts/groups", params)
            assert response.status_code == 200, response.text
            return {g["labels"]["alertname"]: {a["fingerprint"] for a in g["alerts"]}
                    for g in response.json()}

        assert grouped()["orders_low"] == {orders, orders_us}
        assert grouped(inhibited="false")["orders_low"] == {orders_us}
        assert "disk_full" in grouped() and "disk_full" not in grouped(muted="false")
        assert "orders_low" in grouped(muted="false")  # one of its alerts is not muted


def test_groups_follow_the_routes_group_by(tmp_path: Path) -> None:
    with served(tmp_path) as api:
        tl = api.timeline
        critical = [fire(tl, "dead_letters", {"team": team, "queue": q},
                         severity=Severity.CRITICAL)
                    for team in ("payments", "search") for q in ("a", "b")]
        warnings = [fire(tl, "dead_letters", {"team": "payments", "queue": q})
                    for q in ("c", "d", "e")]
        disk = fire(tl, "disk_full", {"host": "db1"})

        response = api.get("/api/v2/alerts/groups")
        assert response.status_code == 200, response.text
        groups = response.json()
        shape = [(g["labels"], g["receiver"]["name"], sorted(a["fingerprint"] for a in g["alerts"]))
                 for g in groups]
        # critical ones go to the pager grouped by alertname and team; the rest to the
        # console grouped by alertname; groups sorted by labels, then receiver
        assert shape == [
            ({"alertname": "dead_letters"}, "console", sorted(warnings)),
            ({"alertname": "dead_letters", "team": "payments"}, "pager", sorted(critical[:2])),
            ({"alertname": "dead_letters", "team": "search"}, "pager", sorted(critical[2:])),
            ({"alertname": "disk_full"}, "console", [disk]),
        ]
        assert all(g["routeLabels"] == {} for g in groups)
        member = groups[1]["alerts"][0]
        assert member["receivers"] == [{"name": "pager"}] and member["status"]["state"] == "active"
        assert set(member) == {"labels", "annotations", "startsAt", "endsAt", "updatedAt",
                               "generatorURL", "fingerprint", "receivers", "status"}

        narrowed = api.get("/api/v2/alerts/groups", {"receiver": "pager",
                                                     "filter": 'team="search"'}).json()
        assert [(g["labels"], [a["fingerprint"] for a in g["alerts"]]) for g in narrowed] == [
            ({"alertname": "dead_letters", "team": "search"}, sorted(critical[2:]))]


def test_the_api_refuses_callers_without_credentials(tmp_path: Path) -> None:
    with served(tmp_path) as api:
        fire(api.timeline, "disk_full", {"host": "db1"})
        for path in ("/api/v2/alerts", "/api/v2/alerts/groups"):
            assert api.get(path).status_code == 200  # positive control
            for token in (None, "wrong-token-" + "x" * 20):
                response = api.get(path, token=token)
                assert response.status_code == 401, (path, token)
                assert isinstance(response.json(), str)
                assert "Bearer" in response.headers["www-authenticate"]


@pytest.mark.skipif(shutil.which("amtool") is None,
                    reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_amtool_lists_the_alerts(tmp_path: Path) -> None:
    config = tmp_path / "http.yml"
    config.write_text(f"authorization:\n  credentials: {TOKEN}\n")
    with served(tmp_path) as api:
        tl = api.timeline
        dead = fire(tl, "dead_letters", {"team": "payments"}, severity=Severity.CRITICAL)
        disk = fire(tl, "disk_full", {"host": "db1"})
        silence = tl.silences.add([Matcher("host", "=", "db1")], created_by="bob",
                                  comment="disk swap", ends_at=utcnow() + timedelta(hours=2))

        def amtool(*args: str) -> list[dict[str, Any]]:
            done = subprocess.run(
                ["amtool", f"--alertmanager.url={api.base}", f"--http.config.file={config}",
                 "alert", "query", "-o", "json", *args],
                capture_output=True, text=True, timeout=30, check=False)
            assert done.returncode == 0, done.stderr
            result: list[dict[str, Any]] = json.loads(done.stdout)
            return result

        # by default amtool asks for active alerts only (silenced=false)
        listed = amtool()
        assert [a["fingerprint"] for a in listed] == [dead]
        assert listed[0]["labels"]["alertname"] == "dead_letters"
        assert listed[0]["annotations"]["runbook_url"] == \
            "https://runbooks.example.com/dead-letters"
        silenced = amtool("--silenced")
        assert [(a["fingerprint"], a["status"]["silencedBy"]) for a in silenced] == [
            (disk, [silence.id])]
        assert [a["fingerprint"] for a in amtool("--active", "--silenced")] == sorted([dead, disk])
        assert amtool("team=search") == []
        assert [a["fingerprint"] for a in amtool("dead_letters")] == [dead]  # alertname=

        bad = subprocess.run(["amtool", f"--alertmanager.url={api.base}", "alert", "query"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert bad.returncode != 0  # no credentials: refused

