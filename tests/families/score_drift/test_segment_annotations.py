"""Per-segment annotations: "Fraud decisions follow these scores" only on fraud's alerts.

Two models drift in the same hour; the messages a real webhook receiver gets are read
back, one group per model, so each message is one segment's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alert_jobs.config import RulesError, parse_rules
from alert_jobs.families.score_drift.run import check_segments
from alert_jobs.runtime.deliver import deliver
from alert_jobs.store import Timeline
from tests.conftest import HttpReceiver
from tests.families.score_drift.drift_data import NOW, scenario, write_table

FRAUD_WHY = "Fraud decisions follow these scores; a surge blocks good customers."
CHURN_WHY = "Retention offers follow these scores; a surge wastes the offer budget."
RULE_WHY = "Automated decisions follow these scores."

RULE = """
    - name: model_scores
      database: '{url}'
      table: scores
      time_column: scored_at
      score_column: score
      segment_columns: [model]
      min_samples: 500
      window: 1h
      high_score: {{threshold: 0.9, min_samples: 1000}}
      annotations:
        why: {rule_why}
        runbook_url: https://runbooks.example/model-scores
        audience: business
        audience_text: {{business: Scores look unusual.}}
      segment_annotations:
{segments}
"""

SEGMENTS = f"""\
        fraud-v3:
          why: "{FRAUD_WHY}"
          runbook_url: https://runbooks.example/fraud
          audience_text: {{business: More customers than usual are being flagged as fraud.}}
        churn-v1:
          why: "{CHURN_WHY}"
"""


def _rules_text(url: str, segments: str = SEGMENTS, hook: str = "http://127.0.0.1:9/x") -> str:
    return f"""
receivers: [{{name: hook, type: webhook, url: '{hook}'}}]
defaults: {{receivers: [hook], group_by: [alertname, model]}}
checks:
  score_drift:{RULE.format(url=url, rule_why=RULE_WHY, segments=segments)}"""


def test_each_segment_gets_its_own_annotations(tmp_path: Path,
                                               http_receiver: HttpReceiver) -> None:
    data = f"sqlite:///{tmp_path / 'scores.db'}"
    write_table(data, scenario(current={"fraud-v3": {"high": 0.5}, "churn-v1": {"high": 0.5},
                                        "other-v1": {"high": 0.5}},
                               models=("fraud-v3", "churn-v1", "other-v1")))
    rules = parse_rules(_rules_text(data, hook=http_receiver.url))
    timeline = Timeline(f"sqlite:///{tmp_path / 't.db'}")
    try:
        check_segments(rules, rules.checks.score_drift[0], timeline, now=NOW)
        assert deliver(rules, timeline).sent == 3
    finally:
        timeline.dispose()
    bodies: dict[str, dict[str, Any]] = {}
    for request in http_receiver.requests:
        body = request.json()
        bodies[body["commonLabels"]["model"]] = body
    assert set(bodies) == {"fraud-v3", "churn-v1", "other-v1"}

    fraud, churn, other = bodies["fraud-v3"], bodies["churn-v1"], bodies["other-v1"]
    assert FRAUD_WHY in fraud["text"]
    assert {a["annotations"]["audience_text"] for a in fraud["alerts"]} == {
        "More customers than usual are being flagged as fraud."}
    assert "https://runbooks.example/fraud" in fraud["text"]
    assert all(a["annotations"]["why"] == FRAUD_WHY for a in fraud["alerts"])

    assert CHURN_WHY in churn["text"] and "Fraud" not in churn["text"]
    # What churn-v1 does not override comes from the rule: its runbook and business text.
    assert "https://runbooks.example/model-scores" in churn["text"]
    assert {a["annotations"]["audience_text"] for a in churn["alerts"]} == {
        "Scores look unusual."}

    # A segment without its own entry keeps the rule-wide text (the positive control).
    assert RULE_WHY in other["text"] and "Fraud" not in other["text"]
    assert "Retention" not in other["text"]


def test_annotations_for_is_exact_per_segment() -> None:
    rules = parse_rules(_rules_text("sqlite:///x.db"))
    rule = rules.checks.score_drift[0]
    assert rule.annotations_for({"model": "fraud-v3", "check": "psi"}).why == FRAUD_WHY
    assert rule.annotations_for({"model": "churn-v1"}).runbook_url.endswith("/model-scores")
    assert rule.annotations_for({"model": "fraud-v4"}).why == RULE_WHY
    assert rule.annotations_for({}).why == RULE_WHY  # e.g. an error before segments are known
    assert rule.annotations_for({"model": "fraud-v3"}).audience == "business"


@pytest.mark.parametrize(("segments", "message"), [
    ("        fraud-v3: {summary: nope}\n",
     r"segment_annotations\.fraud-v3\.summary: unknown key"),
    ("        fraud-v3: {audience: marketing}\n",
     r"segment_annotations\.fraud-v3\.audience"),
    ("        fraud|v3: {why: x}\n",
     r"segment_annotations key\(s\) 'fraud\|v3' must give one value per segment column "
     r"\(model\)"),
])
def test_bad_segment_annotations_are_named(segments: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        parse_rules(_rules_text("sqlite:///x.db", segments))


def test_segment_annotations_must_name_known_segments() -> None:
    text = _rules_text("sqlite:///x.db").replace(
        "segment_columns: [model]", "segment_columns: [model]\n      segments: [fraud-v3]")
    with pytest.raises(RulesError, match=r"segment_annotations name segment\(s\) 'churn-v1' "
                                         r"that are not in segments \(fraud-v3\)"):
        parse_rules(text)
    no_columns = _rules_text("sqlite:///x.db").replace("      segment_columns: [model]\n", "")
    with pytest.raises(RulesError, match="segment_annotations need segment_columns"):
        parse_rules(no_columns)
