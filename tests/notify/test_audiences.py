"""Issue 21 point 5: the same alert in each receiver's audience's words (the ML guide's
three-column example), from the payload the engine really queued, rendered by the real
Slack, webhook and email receivers. Golden: the exact words each audience reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.core.model import Observation, Status
from alert_jobs.notify.email import render_text
from alert_jobs.notify.registry import build_receivers
from alert_jobs.runtime.evaluate import process_observations
from alert_jobs.store import Timeline, utcnow

RULES = """
receivers:
  - {name: console, type: console}
  - {name: oncall, type: slack, webhook_url: https://hooks.example.com/1, audience: engineering}
  - {name: ml_team, type: webhook, url: https://hooks.example.com/2, audience: data_science}
  - name: product
    type: email
    host: mail.example.com
    from_address: alerts@example.com
    to: [product@example.com]
    audience: business
    send_resolved: true
  - {name: plain, type: slack, webhook_url: https://hooks.example.com/3}
checks:
  sql_metric:
    - name: loan_model_timeouts
      database: sqlite:///unused.db
      query: SELECT 1
      window: 5m
      expect: {max: 0.05}
      severity: critical
      receivers: [oncall, ml_team, product, plain]
      annotations:
        why: Loan applications wait for this model's answer.
        dashboard_url: https://grafana.example.com/d/pods
        audience_text:
          engineering: Check pod health and scaling settings.
          data_science:
            text: Feature X used by model Y is slow to retrieve.
            metrics: [feature_x_ms]
            dashboard_url: https://grafana.example.com/d/features
          business:
            text: "Fewer customers than usual are being given loans; more in #loans on Slack."
            metrics: [loans_given, loans_expected, not_reported]
            dashboard_url: https://bi.example.com/loans
"""


@pytest.fixture
def groups(tmp_path: Any) -> dict[str, Any]:
    """The group each receiver was queued, by receiver name."""
    rules = parse_rules(RULES)
    timeline = Timeline(f"sqlite:///{tmp_path}/t.db")
    obs = Observation("loan_model_timeouts", Status.ALERT, {}, 0.5,
                      summary="Timeout rate for realtime model Y is at 50% for the last 5 "
                              "minutes (expected between 1-5%)",
                      details={"feature_x_ms": 500, "loans_given": 1, "loans_expected": 100})
    process_observations(rules, rules.rule("loan_model_timeouts"), timeline, [(obs, "")],
                         now=utcnow() - timedelta(minutes=1), run_id=None)
    receivers = build_receivers(rules.receivers)
    out = {row["receiver"]: receivers[row["receiver"]].prepare(row["payload"])
           for row in timeline.outbox.rows()}
    out["_receivers"] = receivers
    timeline.dispose()
    return out


def _slack_text(groups: dict[str, Any], name: str) -> str:
    body = groups["_receivers"][name].render(groups[name])
    return "\n".join(b["text"]["text"] for b in body["blocks"] if b.get("type") == "section")


def test_engineering_reads_its_words_on_slack(groups: dict[str, Any]) -> None:
    text = _slack_text(groups, "oncall")
    assert "*Timeout rate for realtime model Y is at 50% for the last 5 minutes (expected " \
           "between 1-5%)*\n*Why it matters:* Loan applications wait for this model's " \
           "answer.\nCheck pod health and scaling settings.\n" \
           "<https://grafana.example.com/d/pods|Dashboard>" in text
    assert "loans" not in text and "Feature X" not in text


def test_data_science_reads_its_words_metric_and_dashboard_on_the_webhook(
        groups: dict[str, Any]) -> None:
    body = groups["_receivers"]["ml_team"].render(groups["ml_team"])
    (alert,) = body["alerts"]
    notes = alert["annotations"]
    assert notes["audience_text"] == ("Feature X used by model Y is slow to retrieve. "
                                      "(feature_x_ms: 500)")
    assert notes["dashboard_url"] == "https://grafana.example.com/d/features"


def test_business_reads_its_words_metrics_and_dashboard_by_email(
        groups: dict[str, Any]) -> None:
    text = render_text(groups["product"])
    assert ("For business: Fewer customers than usual are being given loans; more in #loans "
            "on Slack. (loans_given: 1 · loans_expected: 100)\n"
            "Dashboard: https://bi.example.com/loans\n") in text
    assert "pod health" not in text and "grafana" not in text


def test_a_receiver_without_an_audience_reads_the_rules_audience(
        groups: dict[str, Any]) -> None:
    """Back-compat: the rule's ``audience`` (engineering by default) decides."""
    assert _slack_text(groups, "plain") == _slack_text(groups, "oncall")


def test_the_payload_carries_every_audiences_view(groups: dict[str, Any]) -> None:
    (alert,) = groups["product"]["alerts"]
    assert set(alert["audiences"]) == {"engineering", "data_science", "business"}


def test_unknown_audience_is_an_error_naming_the_yaml_path() -> None:
    bad = RULES.replace("audience: data_science}", "audience: marketing}").replace(
        "          business:\n", "          executives:\n")
    with pytest.raises(RulesError) as err:
        parse_rules(bad)
    lines = err.value.lines()
    assert any(line.startswith("alerts.yaml: receivers[2].audience: Input should be "
                               "'engineering', 'data_science' or 'business'") for line in lines)
    assert any("checks.sql_metric[0].annotations.audience_text.executives" in line
               for line in lines), lines
