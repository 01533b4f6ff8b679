"""An SLO with a Prometheus SLI through the family's real path
(``alert_jobs.families.slo.run.evaluate``): a real Prometheus scraping counters we
control (``conftest.py``), the bucket table in a real timeline database, the engine.

The rule uses the smallest windows the rules allow (10-s buckets, a 20 s / 10 s pair) so
that the test waits seconds, not hours; its default 30-day backfill still goes through
Prometheus' range API once, where everything before this Prometheus started is a gap.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alert_jobs.config import RulesFile, parse_rules
from alert_jobs.core.model import Severity, Status
from alert_jobs.families.slo.config import SloRule
from alert_jobs.families.slo.run import evaluate
from alert_jobs.runtime.evaluate import RuleOutcome
from alert_jobs.store import Timeline
from tests.conftest import free_port
from tests.families.slo.conftest import PrometheusServer

BUCKET = 10.0  # seconds: the rule's bucket, on the UTC grid of whole 10 s

RULES = """
version: 1
defaults: {{receivers: [console], group_interval: 0s}}
receivers:
  - {{name: console, type: console}}
checks:
  slo:
    - name: checkout
      service: Checkout availability
      objective: 99
      bucket: 10s
      min_events: 50
      pairs: [{{long: 20s, short: 10s, factor: 5, severity: page}}]
      sli:
        prometheus:
          url: "{url}"
          total: 'sum(increase(slo_requests_total[{{{{window}}}}]))'
          bad: 'sum(increase(slo_requests_total{{code="500"}}[{{{{window}}}}]))'
          query_timeout: 5s
"""


def rules_for(url: str, **replace: str) -> tuple[RulesFile, SloRule]:
    text = RULES.format(url=url)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    rules = parse_rules(text)
    return rules, rules.rules_of(SloRule)[0]


@pytest.fixture
def timeline(tmp_path: Path) -> Timeline:
    timeline = Timeline(f"sqlite:///{tmp_path / 'alerts.db'}")
    timeline.upgrade()
    return timeline


def run(rules: RulesFile, rule: SloRule, timeline: Timeline) -> RuleOutcome:
    [outcome] = evaluate(rules, rule, timeline, now=datetime.now(UTC), run_id="test-run")
    return outcome


def wait_for_bucket_end(after: float) -> None:
    """Sleep until a 10-s bucket that ends at or after ``after`` is complete and the
    scrape at its end is stored (half a second later)."""
    end = math.ceil(after / BUCKET) * BUCKET
    time.sleep(max(0.0, end + 0.6 - time.time()))


def test_unreachable_prometheus_is_an_error_alert_naming_slo_and_query(
        timeline: Timeline) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    rules, rule = rules_for(url)
    outcome = run(rules, rule, timeline)
    assert outcome.observation.status == Status.ERROR
    summary = outcome.observation.summary
    assert "Checkout availability" in summary and "checkout" in summary
    assert f"cannot reach Prometheus at {url}" in summary
    assert "sum(increase(slo_requests_total[" in summary


def test_no_series_is_nodata_naming_the_slo(prometheus: PrometheusServer,
                                            timeline: Timeline) -> None:
    rules, rule = rules_for(prometheus.url, slo_requests_total="no_such_requests_total")
    outcome = run(rules, rule, timeline)
    assert outcome.observation.status == Status.NODATA
    assert "Checkout availability" in outcome.observation.summary
    # it names where nothing came from: the Prometheus and the query
    assert f"Prometheus at {prometheus.url.rstrip('/')}" in outcome.observation.summary
    assert "no_such_requests_total" in outcome.observation.summary


@pytest.mark.long_running  # up to ~40 s, nearly all of it waiting for scrapes
def test_error_burst_pages_through_the_real_path(prometheus: PrometheusServer,
                                                 timeline: Timeline) -> None:
    target = prometheus.need_target()
    rules, rule = rules_for(prometheus.url)
    # Two buckets with data (the long window): each bucket's [10s] window needs two
    # samples, so the older one must end at least one interval after the first scrape.
    prometheus.wait_history(0)
    assert prometheus.first_scrape is not None
    wait_for_bucket_end(prometheus.first_scrape + 1.5 + BUCKET)

    calm = run(rules, rule, timeline)  # the control: no errors, nothing fires
    assert calm.observation.status == Status.OK, calm.observation.summary
    assert calm.observation.value == 0  # the burn rate: not one error yet

    burst_from = time.time()
    target.set_rate(target.series['slo_requests_total{code="500"}'], 400, since=burst_from)
    wait_for_bucket_end(burst_from + 4)  # at least 4 s of the burst in the short window

    burning = run(rules, rule, timeline)
    obs = burning.observation
    assert obs.status == Status.ALERT, obs.summary
    assert obs.severity == Severity.CRITICAL  # page
    assert obs.summary.startswith("Checkout availability (SLO 99 % over 30 days) is "
                                  "burning its error budget")
    # 400 errors/s against 40 good: the short window is mostly burst, far above 5×
    assert obs.value is not None and obs.value > 20
