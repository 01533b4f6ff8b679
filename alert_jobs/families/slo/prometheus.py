"""Good/total event counts from Prometheus' HTTP API (I/O).

Each expression counts the events of the last ``{{window}}`` (e.g.
``sum(increase(http_requests_total[{{window}}]))``); ``{{window}}`` becomes the bucket's
length as a PromQL duration. A query at time ``t`` then counts the events of
``(t − step, t]``, so:

* one bucket is an instant query at its end (``/api/v1/query``);
* several buckets (a backfill, or catching up after downtime) are one range query per
  expression (``/api/v1/query_range`` from the first bucket's end to the last's, with
  the bucket as step), split in pieces of at most :data:`MAX_POINTS` points because
  Prometheus refuses more than 11,000 points per series.

Shape of the answer: each expression must give one series (or none). Several series are
refused with advice to wrap the expression in ``sum()``, since adding them up silently
would double-count when an expression is written per instance by mistake. A missing
``total`` at a bucket is a gap (``has_data=False``), never zero traffic; a missing
``good``/``bad`` next to a present ``total`` is zero such events, because
``sum(increase(x{code=~"5.."}[…]))`` gives no series at all while no 5xx ever happened.
``increase()`` extrapolates to the window's edges, so ``good`` can come out a little
above ``total``: it is clamped to ``0 ≤ good ≤ total``.

Every failure is a :class:`~alert_jobs.core.errors.SourceError` naming the Prometheus
base URL (without credentials or query string) and the expression, with Prometheus' own
error text when it gives one; header values (tokens) never appear in a message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx

from alert_jobs.config import resolve
from alert_jobs.config.types import SecretMissingError
from alert_jobs.core.errors import SourceError
from alert_jobs.families.slo.check import Bucket
from alert_jobs.families.slo.config import PrometheusSli

#: Points per series in one range query. Prometheus refuses more than 11,000
#: ("exceeded maximum resolution of 11,000 points per timeseries").
MAX_POINTS = 11_000

#: Prometheus' own error text is quoted up to this many characters.
_ERROR_TEXT_LIMIT = 500

_UNITS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000),
          ("s", 1_000), ("ms", 1))


def promql_duration(step: timedelta) -> str:
    """``step`` in PromQL's duration grammar, in its largest whole unit: ``10s``, ``1m``,
    ``1h``, ``90s``, ``1500ms`` (what ``{{window}}`` becomes)."""
    millis = round(step.total_seconds() * 1000)
    if millis <= 0:
        raise ValueError(f"a window must be positive, got {step}")
    for unit, size in _UNITS:
        if millis % size == 0:
            return f"{millis // size}{unit}"
    raise AssertionError("unreachable: every whole number of ms divides by 1 ms")


def display_url(url: str) -> str:
    """The URL as messages show it: scheme, host, port and path; no user, password,
    query string or fragment (any of which may carry a credential)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<a Prometheus URL that cannot be parsed>"
    if not parts.scheme or not host:
        return "<a Prometheus URL that cannot be parsed>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def describe(sli: PrometheusSli) -> str:
    """The SLI as a message may name it, e.g. for a ``nodata`` alert:
    ``Prometheus at http://prom:9090, total sum(increase(x[{{window}}]))`` (the URL
    without credentials; an env reference stays a reference when it is not set)."""
    try:
        where = display_url(resolve(sli.url))
    except SecretMissingError:
        where = str(sli.url)
    return f"Prometheus at {where}, total {sli.total}"


def read_buckets(sli: PrometheusSli, start: datetime, end: datetime, step: timedelta,
                 *, max_points: int = MAX_POINTS) -> list[Bucket]:
    """Buckets ``[start, start+step)`` … up to ``end``: an instant query at ``end`` when
    there is one bucket, else one range query (``start+step`` … ``end``, step ``step``)
    per expression, with ``{{window}}`` = ``step``. ``max_points`` bounds each range
    query (longer ranges are read in consecutive pieces)."""
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    start, end = _utc(start), _utc(end)
    count = int((end - start) / step)
    if count <= 0:
        return []
    ends = [start + step * (i + 1) for i in range(count)]
    window = promql_duration(step)
    numerator = sli.good if sli.good is not None else sli.bad
    assert numerator is not None  # the model requires exactly one of good / bad
    with _Client(sli) as client:
        total = client.values(sli.total.replace("{{window}}", window), ends, step, max_points)
        part = client.values(numerator.replace("{{window}}", window), ends, step, max_points)
    buckets = []
    for bucket_end in ends:
        key = _key(bucket_end)
        buckets.append(_bucket(bucket_end - step, bucket_end, total.get(key), part.get(key),
                               good_given=sli.good is not None))
    return buckets


def _bucket(start: datetime, end: datetime, total: float | None, part: float | None,
            *, good_given: bool) -> Bucket:
    """One bucket from the two values at its end (see the module docstring for why a
    missing numerator is zero and a missing total is a gap)."""
    if total is None or not math.isfinite(total):
        return Bucket(start=start, end=end, good=0.0, total=0.0, has_data=False)
    if part is not None and not math.isfinite(part):
        return Bucket(start=start, end=end, good=0.0, total=0.0, has_data=False)
    total = max(total, 0.0)
    value = min(max(part or 0.0, 0.0), total)
    good = value if good_given else total - value
    return Bucket(start=start, end=end, good=good, total=total)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (as everywhere in the timeline)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _key(moment: datetime) -> int:
    """A bucket end as whole milliseconds, the resolution of Prometheus' timestamps."""
    return round(moment.timestamp() * 1000)


def _unix(moment: datetime) -> str:
    """The moment as sent: the same whole milliseconds as its :func:`_key`, so the
    timestamps Prometheus answers with find their buckets."""
    return _seconds(_key(moment) / 1000)


def _seconds(value: float) -> str:
    """Seconds as Prometheus' API takes them (a float, to the millisecond)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass
class _Client:
    """One HTTP client per read: the SLI's URL, headers and timeout."""

    sli: PrometheusSli
    http: httpx.Client | None = None
    base: str = ""  # the URL without query string: the API paths go after it
    base_params: tuple[tuple[str, str], ...] = ()  # the URL's own query (e.g. a tenant)
    shown: str = ""
    timeout: float = 0.0

    def __enter__(self) -> _Client:
        try:
            url = resolve(self.sli.url)
        except SecretMissingError as exc:
            raise SourceError(f"Prometheus URL: {exc}") from None
        self.shown = display_url(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            raise SourceError(f"invalid Prometheus URL {self.shown}: give "
                              "http(s)://host:port") from None
        self.base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.base_params = tuple(parse_qsl(parts.query, keep_blank_values=True))
        try:
            headers = {name: resolve(value) for name, value in self.sli.headers.items()}
        except SecretMissingError as exc:
            raise SourceError(f"Prometheus at {self.shown}: a header's {exc}") from None
        self.timeout = self.sli.query_timeout.total_seconds()
        self.http = httpx.Client(headers={"Accept": "application/json", **headers},
                                 timeout=self.timeout, follow_redirects=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.http is not None:
            self.http.close()

    def values(self, expr: str, ends: list[datetime], step: timedelta, max_points: int
               ) -> dict[int, float]:
        """The expression's value at each bucket end that has one, keyed by
        :func:`_key`."""
        if len(ends) == 1:
            data = self._get("/api/v1/query", expr, {"time": _unix(ends[0])})
            return self._series(expr, data)
        found: dict[int, float] = {}
        for first in range(0, len(ends), max_points):
            piece = ends[first:first + max_points]
            data = self._get("/api/v1/query_range", expr, {
                "start": _unix(piece[0]), "end": _unix(piece[-1]),
                "step": _seconds(step.total_seconds())})
            found.update(self._series(expr, data))
        return found

    def _get(self, path: str, expr: str, params: Mapping[str, str]) -> Any:
        assert self.http is not None
        where = f"Prometheus at {self.shown}"
        # Prometheus stops evaluating at the same deadline as we stop waiting.
        query = (*self.base_params, ("query", expr), *params.items(),
                 ("timeout", _seconds(self.timeout)))
        try:
            response = self.http.get(self.base + path, params=query)
        except httpx.TimeoutException:
            raise SourceError(f"{where} did not answer within {self.timeout:g} s "
                              f"(query: {expr})") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise SourceError(f"invalid Prometheus URL {self.shown}: give "
                              "http(s)://host:port") from None
        except httpx.TransportError as exc:
            raise SourceError(f"cannot reach Prometheus at {self.shown} "
                              f"({type(exc).__name__}) (query: {expr})") from None
        body = _json(response)
        if response.status_code == 200 and isinstance(body, dict) and \
                body.get("status") == "success":
            return body.get("data")
        raise SourceError(_failure(where, expr, response.status_code, body))

    def _series(self, expr: str, data: Any) -> dict[int, float]:
        """One series' values by timestamp; several series are refused."""
        try:
            return self._parse(expr, data)
        except (KeyError, IndexError, TypeError, ValueError):
            raise SourceError(f"Prometheus at {self.shown} gave an answer that is not "
                              f"Prometheus' query API (query: {expr})") from None

    def _parse(self, expr: str, data: Any) -> dict[int, float]:
        where = f"Prometheus at {self.shown}"
        if not isinstance(data, dict):
            raise SourceError(f"{where} gave an answer without data (query: {expr})")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return {round(float(result[0]) * 1000): _float(result[1])}
        if kind not in ("vector", "matrix") or not isinstance(result, list):
            raise SourceError(f"{where}: the query gives a {kind}, not a number of events "
                              f"(query: {expr})")
        if len(result) > 1:
            shown = ", ".join(_labels(series.get("metric", {})) for series in result[:3])
            raise SourceError(
                f"{where}: the query gives {len(result)} series ({shown}"
                f"{', …' if len(result) > 3 else ''}), one is needed; wrap it in sum(…) "
                f"to count them together (query: {expr})")
        if not result:
            return {}
        series = result[0]
        if kind == "vector":
            stamp, value = series["value"]
            return {round(float(stamp) * 1000): _float(value)}
        return {round(float(stamp) * 1000): _float(value) for stamp, value in series["values"]}


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _float(value: Any) -> float:
    """Prometheus sends sample values as strings ("12.5", "NaN", "+Inf")."""
    return float(value)


def _labels(metric: Mapping[str, Any]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()))
    return "{" + inner + "}"


def _failure(where: str, expr: str, status: int, body: Any) -> str:
    """A message for a non-success answer, quoting Prometheus' ``error`` when it has one
    (400 bad_data, 422 execution, 503 timeout or canceled)."""
    text = ""
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType")
        text = f"{kind}: {body['error']}" if kind else str(body["error"])
        if len(text) > _ERROR_TEXT_LIMIT:
            text = text[:_ERROR_TEXT_LIMIT - 1] + "…"
    if status in (400, 422):
        return f"{where} refused the query: {text or f'HTTP {status}'} (query: {expr})"
    if status in (401, 403):
        return (f"{where} refused the request (HTTP {status}): check the SLI's url and "
                f"headers (query: {expr})")
    if status == 404:
        return (f"no Prometheus query API at {where[len('Prometheus at '):]} (HTTP 404): "
                f"check the url (query: {expr})")
    if status == 200:
        return f"{where} answered without success: {text or 'no JSON'} (query: {expr})"
    detail = f": {text}" if text else ""
    return f"{where} failed (HTTP {status}){detail} (query: {expr})"
