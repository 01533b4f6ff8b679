"""An SLO from a SQLite traffic table to a real webhook receiver, minute by simulated
minute: a slow burn raises a ticket, a fast burst raises the same alert to a page (one
alert per SLO, the severity raised), and the resolve arrives once the burst is over.
Each message is delivered once, in the message standard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_jobs.config import RulesFile
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.run import evaluate_batch
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline
from tests.conftest import HttpReceiver
from tests.families.slo.slo_env import MIN, Traffic, parse, rules_file, slo_yaml

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PAGE = "{long: 1h, short: 5m, factor: 14.4, severity: page}"
TICKET = "{long: 2h, short: 10m, factor: 3, severity: ticket}"


def _rules(traffic: Traffic, receiver: HttpReceiver) -> RulesFile:
    return parse(rules_file(
        slo_yaml(traffic.url, pairs=(PAGE, TICKET),
                 more="annotations: {runbook_url: 'https://runbooks.example/checkout'}"),
        receivers=f"[{{name: hook, type: webhook, url: '{receiver.url}', timeout: 5s}}]",
        defaults="{receivers: [hook], group_wait: 0s}"))


def _sent(receiver: HttpReceiver) -> list[dict[str, Any]]:
    return [alert for r in receiver.requests for alert in r.json()["alerts"]]


def test_ticket_then_page_then_resolve_reach_a_real_receiver_once_each(
        tmp_path: Path, http_receiver: HttpReceiver) -> None:
    traffic = Traffic(f"sqlite:///{tmp_path / 'app.db'}")
    # A quiet day, then 0.6 % errors (a 6× burn: the 2 h / 10 min ticket pair), then from
    # T0+60 min a burst of 5 % errors (50×: the 1 h / 5 min page pair), over at T0+80 min.
    traffic.add(T0 - timedelta(days=1), T0, ok=1000, failed=0)
    traffic.add(T0, T0 + 60 * MIN, ok=994, failed=6)
    traffic.add(T0 + 60 * MIN, T0 + 80 * MIN, ok=950, failed=50)
    traffic.add(T0 + 80 * MIN, T0 + 3 * timedelta(hours=1), ok=1000, failed=0)
    rules = _rules(traffic, http_receiver)
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    (rule,) = rules.rules_of(SloRule)

    seen: list[tuple[int, str, str]] = []  # minute, status, severity
    for minute in range(0, 121, 2):
        now = T0 + minute * MIN + timedelta(seconds=5)
        run_id = f"run-{minute}"
        (done,) = evaluate_batch(rules, [rule], timeline, now=now, run_id=run_id)
        obs = done.outcome.observation
        seen.append((minute, str(obs.status), str(obs.severity or "")))
        report = deliver(rules, timeline, run_id=run_id, raised_by=run_id, now=now)
        assert not report.errors

    def first(status: str, severity: str = "") -> int:
        return next(m for m, st, sev in seen if st == status and sev == severity)

    # The ticket's 2 h window reaches 3× after an hour of 6× (the Workbook's time to
    # fire: 0.001 / 0.006 × 2 h × 3 = 60 min) and is above it at the next run; the
    # page's 1 h window crosses 14.4× after (14.4 − 6) / (50 − 6) × 60 = 11.5 min of
    # the burst: the run at 72 min. Runs are every 2 simulated minutes.
    assert first("alert", "warning") == 62
    assert first("alert", "critical") == 72
    resolved_at = next(m for m, st, _ in seen if m > 72 and st == "ok")
    assert 80 < resolved_at <= 92  # the short windows forget the burst

    alerts = _sent(http_receiver)
    got = [(a["status"], a["labels"]["severity"]) for a in alerts]
    assert got == [("firing", "warning"), ("firing", "critical"), ("resolved", "critical")]
    assert {a["labels"]["alertname"] for a in alerts} == {"checkout"}  # one alert per SLO
    page = alerts[1]["annotations"]
    assert page["summary"].startswith(
        "Checkout availability (SLO 99.9 % over 1 day) is burning its error budget ")
    assert "too fast over the last 1 h and" in page["summary"]
    assert "× over the last 5 min (expected below 14.4×, which spends 60 % of the budget " \
           "in 1 h)." in page["summary"]
    assert page["runbook_url"] == "https://runbooks.example/checkout"
    # Delivered once each: every outbox row went out, none twice.
    rows = timeline.outbox.rows()
    assert len(rows) == 3 and all(r["delivered_at"] is not None and r["attempts"] == 1
                                  for r in rows)
