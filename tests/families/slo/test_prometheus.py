"""The SLO family's Prometheus source against a real Prometheus (see ``conftest.py``).

The scrape target runs ``demo_requests_total{code="200"}`` at 40 events/s and
``{code="500"}`` at 4/s from the start of the session, as integer counters.

Tolerance of ``increase()``: a query at ``t`` over ``[3s]`` sees the three samples
scraped at ``t − 2.5``, ``t − 1.5`` and ``t − 0.5`` (queries are placed half an
interval after a scrape, see ``PrometheusServer.wait_history``). Their difference spans
2 s and Prometheus extrapolates it to the 3-s window (× 1.5). An integer counter's
difference is off the true count by less than one event, and the few milliseconds
between Prometheus stamping a scrape and our target computing the value add well under
one more; × 1.5 that is under 3 events per series and window, against the true
``rate × 3 s`` (120 and 12). Hence ``PER_SERIES = 3``.

Tests that need no scraped history come first: they run while Prometheus waits for its
first scrape (about 5 s after start, see ``conftest.py``).
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alert_jobs.core.errors import SourceError
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import PrometheusSli, Sli
from alert_jobs.families.slo.prometheus import (
    describe,
    display_url,
    promql_duration,
    read_buckets,
)
from tests.conftest import free_port
from tests.families.slo.conftest import SCRAPE_INTERVAL, PrometheusServer, PrometheusStub

PER_SERIES = 3.0  # events; see the module docstring
GOOD_RATE, BAD_RATE = 40.0, 4.0
TOTAL = "sum(increase(demo_requests_total[{{window}}]))"
GOOD = 'sum(increase(demo_requests_total{code="200"}[{{window}}]))'
BAD = 'sum(increase(demo_requests_total{code="500"}[{{window}}]))'
STEP = timedelta(seconds=3)


def sli(url: str, *, total: str = TOTAL, good: str | None = None, bad: str | None = None,
        timeout: float = 10, headers: dict[str, Any] | None = None) -> PrometheusSli:
    if good is None and bad is None:
        bad = BAD
    return Sli.model_validate({"prometheus": {
        "url": url, "total": total, "good": good, "bad": bad,
        "query_timeout": f"{timeout:g}s", "headers": headers or {}}}).prometheus  # type: ignore[return-value]


def at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def true_count(prometheus: PrometheusServer, code: str, start: float, end: float) -> int:
    """Events the target counted in ``(start, end]``."""
    series = prometheus.need_target().series[f'demo_requests_total{{code="{code}"}}']
    return series.value_at(end) - series.value_at(start)


def steady(prometheus: PrometheusServer, seconds: int, attempts: int = 4) -> float:
    """An aligned moment ``t`` whose last ``seconds`` were scraped on time: one sample per
    interval in ``(t − seconds, t]``, each 1 ± 0.1 s after the one before.

    The counts' tolerance (module docstring) rests on that: a window a sample short or
    over is extrapolated by a third or a half. On a loaded machine Prometheus itself can
    scrape late; that is its sampling, not the source's reading, so the next window is
    taken, and after ``attempts`` late windows the test fails and says why. (Values that
    arrive late are the target's business: ``CounterTarget.scrape_moment``.)"""
    t = prometheus.wait_history(seconds + 1)
    seen = []
    for _ in range(attempts):
        [series] = prometheus.query(f'demo_requests_total{{code="200"}}[{seconds}s]', at=t)
        times = [float(stamp) for stamp, _ in series["values"]]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
        if len(times) == seconds and all(abs(g - SCRAPE_INTERVAL) <= 0.1 for g in gaps):
            return t
        seen.append(gaps)
        time.sleep(seconds)
        t = prometheus.aligned(time.time())
    pytest.fail(f"Prometheus scraped late in {attempts} windows of {seconds} s (gaps "
                f"between samples: {seen}); exact counts need scrapes on time")


# ----- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (60, "1m"), (90, "90s"), (300, "5m"), (3600, "1h"), (86400, "1d"),
    (1.5, "1500ms"), (604800, "1w")])
def test_window_becomes_a_promql_duration(seconds: float, text: str) -> None:
    assert promql_duration(timedelta(seconds=seconds)) == text


def test_shown_url_has_no_credentials_or_query_string() -> None:
    assert display_url("https://bob:hunter2@prom.example:9090/prom/?token=abc#x") == \
        "https://prom.example:9090/prom"
    assert display_url("not a url") == "<a Prometheus URL that cannot be parsed>"
    assert describe(sli("http://u:pw@prom:9090/?x=1")) == f"Prometheus at http://prom:9090, " \
        f"total {TOTAL}"
    assert describe(sli({"env": "NO_SUCH_PROM_URL_VAR"})) == (  # type: ignore[arg-type]
        f"Prometheus at {{env: NO_SUCH_PROM_URL_VAR}}, total {TOTAL}")


# ----- errors: no scraped history needed ---------------------------------------------------


def test_invalid_promql_quotes_prometheus_error(prometheus: PrometheusServer) -> None:
    broken = "sum(increase(demo_requests_total[{{window}}])"
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(prometheus.url, total=broken), at(time.time() - 60), at(time.time()),
                     timedelta(minutes=1))
    message = str(caught.value)
    assert f"Prometheus at {prometheus.url} refused the query" in message
    assert "bad_data" in message and "parse error" in message  # Prometheus' own text
    assert "sum(increase(demo_requests_total[1m])" in message  # the expression as sent


def test_too_many_points_is_prometheus_refusal_then_split(prometheus: PrometheusServer
                                                          ) -> None:
    """Prometheus refuses a range query of more than 11,000 points: its own message comes
    through when the split is disabled, and the default split reads the same range."""
    end = at(time.time())
    start = end - STEP * 11_500
    with pytest.raises(SourceError, match="exceeded maximum resolution of 11,000 points"):
        read_buckets(sli(prometheus.url), start, end, STEP, max_points=1_000_000)
    buckets = read_buckets(sli(prometheus.url), start, end, STEP)
    assert len(buckets) == 11_500
    assert [b.start for b in buckets] == [start + STEP * i for i in range(11_500)]
    assert not buckets[0].has_data  # hours before this Prometheus existed: a gap


def test_unreachable_prometheus_names_its_url_only(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    url = f"http://reader:hunter2@127.0.0.1:{port}/prom?token=abc123"
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(url, timeout=5), at(time.time() - 60), at(time.time()),
                     timedelta(minutes=1))
    message = str(caught.value)
    assert message.startswith(f"cannot reach Prometheus at http://127.0.0.1:{port}/prom ")
    assert "sum(increase(demo_requests_total[1m]))" in message
    assert "hunter2" not in message and "abc123" not in message
    assert time.monotonic() - started < 2  # refused at once, not waited for


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("url", ["http://127.0.0.1:notaport", "prometheus:9090",
                                 "ftp://127.0.0.1:9090"])
def test_invalid_url_is_a_source_error(url: str) -> None:
    with pytest.raises(SourceError, match="invalid Prometheus URL"):
        read_buckets(sli(url), at(1.8e9 - 60), at(1.8e9), timedelta(minutes=1))


def test_hanging_prometheus_times_out_within_query_timeout(silent_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(silent_server, timeout=1), at(time.time() - 60), at(time.time()),
                     timedelta(minutes=1))
    waited = time.monotonic() - started
    assert f"Prometheus at {silent_server} did not answer within 1 s" in str(caught.value)
    assert 0.9 <= waited < 2.5  # the timeout, not a hang and not an instant failure


def vector(value: str, stamp: float) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [stamp, value]}]}}


def test_headers_are_sent_and_never_shown(prometheus_stub: PrometheusStub,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TEST_TOKEN", "Bearer s3cr3t-t0ken")
    end = at(1_800_000_000)
    prometheus_stub.bodies = {"sum(increase(demo_requests_total[1m]))": vector("120", 1.8e9),
                              BAD.replace("{{window}}", "1m"): vector("6", 1.8e9)}
    source = sli(prometheus_stub.url + "/prom/",
                 headers={"Authorization": {"env": "PROM_TEST_TOKEN"}})
    buckets = read_buckets(source, end - timedelta(minutes=1), end, timedelta(minutes=1))
    assert buckets == [Bucket(end - timedelta(minutes=1), end, good=114.0, total=120.0)]
    first = prometheus_stub.requests[0]
    assert first.path == "/prom/api/v1/query"
    assert first.headers["Authorization"] == "Bearer s3cr3t-t0ken"
    assert first.params["time"] == "1800000000"
    assert first.params["timeout"] == "10"  # Prometheus stops when we stop waiting

    prometheus_stub.bodies = {}
    prometheus_stub.status = 401
    prometheus_stub.body = {"status": "error", "error": "token Bearer s3cr3t-t0ken refused"}
    with pytest.raises(SourceError) as caught:
        read_buckets(source, end - timedelta(minutes=1), end, timedelta(minutes=1))
    message = str(caught.value)
    assert f"Prometheus at {prometheus_stub.url}/prom refused the request (HTTP 401)" in message
    assert "s3cr3t" not in message

    # credentials and parameters in the URL itself (basic auth, a tenant) are used too
    prometheus_stub.status, prometheus_stub.body = 200, vector("1", 1.8e9)
    host = prometheus_stub.url.removeprefix("http://")
    read_buckets(sli(f"http://reader:pw0rd@{host}/prom?tenant=shop&key=k3y"),
                 end - timedelta(minutes=1), end, timedelta(minutes=1))
    last = prometheus_stub.requests[-1]
    assert last.path == "/prom/api/v1/query"
    assert last.headers["Authorization"] == "Basic cmVhZGVyOnB3MHJk"  # reader:pw0rd
    assert (last.params["tenant"], last.params["key"]) == ("shop", "k3y")
    assert last.params["query"] == BAD.replace("{{window}}", "1m")
    prometheus_stub.status = 400
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(f"http://reader:pw0rd@{host}/prom?tenant=shop&key=k3y"),
                     end - timedelta(minutes=1), end, timedelta(minutes=1))
    assert f"Prometheus at {prometheus_stub.url}/prom refused" in str(caught.value)
    assert "pw0rd" not in str(caught.value) and "k3y" not in str(caught.value)

    monkeypatch.delenv("PROM_TEST_TOKEN")
    with pytest.raises(SourceError, match="environment variable PROM_TEST_TOKEN is not set"):
        read_buckets(source, end - timedelta(minutes=1), end, timedelta(minutes=1))


@pytest.mark.parametrize(("status", "body", "expected"), [
    (422, {"status": "error", "errorType": "execution", "error": "many-to-many matching"},
     "refused the query: execution: many-to-many matching"),
    (503, {"status": "error", "errorType": "timeout", "error": "query timed out"},
     "failed (HTTP 503): timeout: query timed out"),
    (502, b"<html>bad gateway</html>", "failed (HTTP 502) (query: "),
    (404, b"404 page not found", "no Prometheus query API at"),
    (200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}},
     "the query gives a string, not a number of events"),
    (200, {"status": "success", "data": {"resultType": "vector", "result": [{}]}},
     "gave an answer that is not Prometheus' query API"),
])
def test_failed_answers_are_source_errors(prometheus_stub: PrometheusStub, status: int,
                                          body: Any, expected: str) -> None:
    prometheus_stub.status, prometheus_stub.body = status, body
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(prometheus_stub.url), at(1.8e9 - 60), at(1.8e9), timedelta(minutes=1))
    assert expected in str(caught.value)
    assert str(caught.value).count("(query: ") == 1


def test_extrapolated_counts_are_clamped_and_nan_is_a_gap(prometheus_stub: PrometheusStub
                                                          ) -> None:
    """``increase()`` extrapolates each series on its own, so good can exceed total a
    little; NaN (e.g. a division by zero in the expression) is no data, not a count."""
    end = at(1.8e9)
    step = timedelta(minutes=1)
    total, good = TOTAL.replace("{{window}}", "1m"), GOOD.replace("{{window}}", "1m")
    prometheus_stub.bodies = {total: vector("100", 1.8e9), good: vector("100.4", 1.8e9)}
    [bucket] = read_buckets(sli(prometheus_stub.url, good=GOOD), end - step, end, step)
    assert (bucket.good, bucket.total, bucket.bad, bucket.has_data) == (100, 100, 0, True)

    prometheus_stub.bodies = {total: vector("NaN", 1.8e9), good: vector("1", 1.8e9)}
    [bucket] = read_buckets(sli(prometheus_stub.url, good=GOOD), end - step, end, step)
    assert not bucket.has_data


# ----- counts from scraped counters -------------------------------------------------------


def test_several_series_ask_for_sum(prometheus: PrometheusServer) -> None:
    t = prometheus.wait_history(3)
    per_code = "increase(demo_requests_total[{{window}}])"
    with pytest.raises(SourceError) as caught:
        read_buckets(sli(prometheus.url, total=per_code), at(t - 3), at(t), STEP)
    message = str(caught.value)
    assert "gives 2 series" in message and 'code="200"' in message and 'code="500"' in message
    assert "wrap it in sum(…)" in message
    assert "increase(demo_requests_total[3s])" in message


def test_instant_counts_match_counter_increments(prometheus: PrometheusServer) -> None:
    t = steady(prometheus, 3)
    good_true = true_count(prometheus, "200", t - 3, t)
    bad_true = true_count(prometheus, "500", t - 3, t)
    assert good_true == pytest.approx(GOOD_RATE * 3, abs=1)  # the target itself

    [by_bad] = read_buckets(sli(prometheus.url, bad=BAD), at(t - 3), at(t), STEP)
    [by_good] = read_buckets(sli(prometheus.url, good=GOOD), at(t - 3), at(t), STEP)
    assert (by_bad.start, by_bad.end) == (at(t - 3), at(t))
    assert by_bad.has_data and by_good.has_data
    assert by_bad.total == pytest.approx(good_true + bad_true, abs=2 * PER_SERIES)
    assert by_bad.bad == pytest.approx(bad_true, abs=PER_SERIES)
    assert by_good.good == pytest.approx(good_true, abs=PER_SERIES)
    assert by_good.total == by_bad.total  # the same query at the same time
    # a good-based and a bad-based SLI agree, up to each series' own extrapolation
    assert by_good.good == pytest.approx(by_bad.good, abs=2 * PER_SERIES)


def test_no_series_is_a_gap_beside_a_control_with_data(prometheus: PrometheusServer) -> None:
    t = prometheus.wait_history(4)
    missing = sli(prometheus.url, total="sum(increase(no_such_metric_total[{{window}}]))")
    gaps = read_buckets(missing, at(t - 6), at(t), STEP)
    assert [(b.has_data, b.total) for b in gaps] == [(False, 0.0), (False, 0.0)]
    control = read_buckets(sli(prometheus.url), at(t - 3), at(t), STEP)
    assert control[0].has_data and control[0].total > 100


def test_no_bad_series_is_zero_errors_not_a_gap(prometheus: PrometheusServer) -> None:
    """``sum(increase(x{code=~"5.."}[…]))`` has no series until the first 5xx: that
    total with no bad series is a bucket of zero errors."""
    t = prometheus.wait_history(4)
    never = 'sum(increase(demo_requests_total{code="503"}[{{window}}]))'
    [bucket] = read_buckets(sli(prometheus.url, bad=never), at(t - 3), at(t), STEP)
    assert bucket.has_data and bucket.bad == 0 and bucket.good == bucket.total > 100


def test_range_query_backfills_the_instant_buckets(prometheus: PrometheusServer) -> None:
    """One range query per expression gives the buckets that instant queries at each
    bucket's end give (the same evaluation), consecutive and oldest first; and they add
    up to the events counted over the whole range."""
    t = steady(prometheus, 9)
    start, end = at(t - 9), at(t)
    ranged = read_buckets(sli(prometheus.url), start, end, STEP)
    assert [(b.start, b.end) for b in ranged] == [
        (start, start + STEP), (start + STEP, start + 2 * STEP), (start + 2 * STEP, end)]
    instant = [read_buckets(sli(prometheus.url), b.start, b.end, STEP)[0] for b in ranged]
    assert ranged == instant
    assert all(b.has_data for b in ranged)

    good_true = true_count(prometheus, "200", t - 9, t)
    bad_true = true_count(prometheus, "500", t - 9, t)
    assert sum(b.good for b in ranged) == pytest.approx(good_true, abs=3 * PER_SERIES)
    assert sum(b.bad for b in ranged) == pytest.approx(bad_true, abs=3 * PER_SERIES)

    # read in pieces of two points: the same buckets
    assert read_buckets(sli(prometheus.url), start, end, STEP, max_points=2) == ranged
