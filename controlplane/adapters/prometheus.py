"""Prometheus over its HTTP API: a ports.MetricProvider (the only module talking to Prometheus).

``observe`` turns one window into canary and stable VersionSamples: instant queries at the window's end
count requests, errors and requests under the latency threshold (``_bucket{le="<threshold>"}``); range
queries give one error ratio and one latency value per sub-interval for the Mann-Whitney comparison.

Failures never raise into the engine: an unreachable server, a timeout after retries, a rejected query or a
partial response come back as a MetricObservation with ``error`` set. Empty results are data: no series
means no requests (or no errors, except for a server that always exports its error counter: NaN); a
missing latency bucket while requests exist is NaN (the judge then says INCONCLUSIVE, never PASS).
Retries happen in one place, ``_call``, through the project's one retry loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from controlplane.analysis.queries import CANARY, STABLE, count_queries, selector, series_queries
from controlplane.analysis.slo import SLOSpec
from controlplane.errors import ExternalError, PermanentError, TemporaryError
from controlplane.ports import MetricObservation, MetricWindow, VersionSample
from controlplane.retry import with_retry

_RETRY_STATUS = {429, 500, 502, 503, 504}
_TEMPORARY_ERROR_TYPES = {"timeout", "canceled", "unavailable"}

Series = list[tuple[float, float]]


class PrometheusProvider:
    """ports.MetricProvider over a Prometheus server at ``url`` for the queries ``slo`` defines."""

    name = "prometheus"

    def __init__(
        self,
        url: str,
        slo: SLOSpec,
        *,
        step_duration_s: float | None = None,
        timeout_s: float = 2.0,
        attempts: int = 3,
        retry_delay_s: float = 0.2,
        max_retry_delay_s: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.slo = slo
        self.step_duration_s = step_duration_s
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self._sleep = sleep
        self._client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s), transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- ports.MetricProvider ----------------------------------------------------------

    def observe(
        self, model: str, canary_version: int, stable_version: int | None, window: MetricWindow
    ) -> MetricObservation:
        """Canary (and, when ``stable_version`` is given, stable) samples over ``window``; never raises."""
        queries: dict[str, str] = {}
        try:
            canary = self._sample(model, canary_version, CANARY, window, queries)
            stable = (
                self._sample(model, stable_version, STABLE, window, queries) if stable_version is not None else None
            )
        except ExternalError as exc:
            return MetricObservation(window, None, None, queries, error=f"prometheus {self.url}: {exc}")
        return MetricObservation(window, canary, stable, queries)

    # ---- one version -------------------------------------------------------------------

    def _sample(
        self, model: str, version: int, role: str, window: MetricWindow, queries: dict[str, str]
    ) -> VersionSample:
        length = window.end - window.start
        if length <= 0:
            raise PermanentError(f"empty window {window}")
        sel = selector(self.slo.metrics, model, version, role)
        counts = count_queries(self.slo, sel, length)
        values: dict[str, float | None] = {}
        for name, expr in counts.items().items():
            queries[f"{role}.{name}"] = expr
            values[name] = self.instant(expr, window.end)
        total = _zero_if_missing(values["total"])
        errors = values.get("errors")
        if errors is None:  # no error series: 0 errors, unless the server always has one (then: broken)
            errors = 0.0 if total <= 0 or self.slo.empty_errors_are_zero() else math.nan
        latency_good = self._latency_good(values, total)

        interval = self.slo.compare_interval(self.step_duration_s)
        points = int(length / interval + 1e-9)
        latencies: tuple[float, ...] = ()
        ratios: tuple[float, ...] = ()
        if points >= 1:
            start = window.end - (points - 1) * interval
            series = series_queries(self.slo, sel, interval)
            for name, expr in series.items().items():
                queries[f"{role}.{name}[{points}x{interval:g}s]"] = expr
            latencies = tuple(v for _, v in self.range(series.latency_ms, start, window.end, interval))
            if series.error_ratio is not None:
                ratios = tuple(v for _, v in self.range(series.error_ratio, start, window.end, interval))
        return VersionSample(
            requests=total, errors=errors, latency_good=latency_good, latencies_ms=latencies, error_ratios=ratios
        )

    def _latency_good(self, values: Mapping[str, float | None], total: float) -> float:
        if "latency_good" not in values:
            return total  # no latency objective: every request counts as fast
        good = values["latency_good"]
        if good is None:
            # the bucket series is absent: nothing was observed, or the threshold is not a bucket bound
            return 0.0 if total <= 0 else math.nan
        if "latency_total" in values:
            latency_total = values["latency_total"]
            if latency_total is None or not math.isfinite(latency_total) or latency_total <= 0:
                return 0.0 if total <= 0 else math.nan
            return good / latency_total * total  # the latency SLI's own denominator, scaled to requests
        return good

    # ---- the HTTP API ------------------------------------------------------------------

    def instant(self, expr: str, at: float) -> float | None:
        """The value of an instant query: the sum over the returned series; None when there is none."""
        values = self.instant_series(expr, at)
        return sum(values) if values else None

    def instant_series(self, expr: str, at: float) -> list[float]:
        """One value per series an instant query returns (a scalar is one series)."""
        data = self._call("/api/v1/query", {"query": expr, "time": _ts(at)})
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar":
            return [_value(result)]
        if kind != "vector" or not isinstance(result, list):
            raise PermanentError(f"unexpected {kind} result for an instant query")
        return [_value(item.get("value")) for item in result]

    def range(self, expr: str, start: float, end: float, step: float) -> Series:
        """(timestamp, value) pairs of a range query; several series are averaged per timestamp."""
        params = {"query": expr, "start": _ts(start), "end": _ts(end), "step": f"{step:g}"}
        data = self._call("/api/v1/query_range", params)
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise PermanentError(f"unexpected {data.get('resultType')} result for a range query")
        by_ts: dict[float, list[float]] = {}
        for item in result:
            for pair in item.get("values") or []:
                by_ts.setdefault(float(pair[0]), []).append(_value(pair))
        return [(ts, sum(vs) / len(vs)) for ts, vs in sorted(by_ts.items())]

    def _call(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """POST one API call; the one place that retries (TemporaryError) or gives up (PermanentError)."""
        return with_retry(
            lambda: self._once(path, params),
            attempts=self.attempts,
            max_delay=self.max_retry_delay_s,
            sleep=self._sleep,
        )

    def _once(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            response = self._client.post(path, data=dict(params))
        except httpx.TimeoutException as exc:
            raise TemporaryError(f"timed out ({type(exc).__name__})", self.retry_delay_s) from exc
        except httpx.TransportError as exc:
            raise TemporaryError(f"unreachable ({type(exc).__name__}: {exc})", self.retry_delay_s) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code in _RETRY_STATUS:
                raise TemporaryError(f"HTTP {response.status_code}", _retry_after(response, self.retry_delay_s))
            raise PermanentError(f"HTTP {response.status_code}: response is not Prometheus API JSON")
        if body.get("status") != "success":
            kind, message = body.get("errorType", "unknown"), body.get("error", "no message")
            text = f"HTTP {response.status_code} {kind}: {message}"
            if response.status_code in _RETRY_STATUS or kind in _TEMPORARY_ERROR_TYPES:
                raise TemporaryError(text, _retry_after(response, self.retry_delay_s))
            raise PermanentError(text)
        warnings = body.get("warnings")
        if warnings:
            raise PermanentError(f"partial response: {'; '.join(str(w) for w in warnings)}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise PermanentError("response without data")
        return data


def _ts(seconds: float) -> str:
    return f"{seconds:.3f}"


def _value(pair: object) -> float:
    """A sample value: Prometheus sends [timestamp, "string"]; "NaN", "+Inf" parse as floats."""
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise PermanentError(f"malformed sample {pair!r}")
    try:
        return float(pair[1])
    except (TypeError, ValueError):
        raise PermanentError(f"malformed sample value {pair[1]!r}") from None


def _zero_if_missing(value: float | None) -> float:
    return 0.0 if value is None else value


def _retry_after(response: httpx.Response, default: float) -> float:
    header = response.headers.get("Retry-After")
    try:
        return max(float(header), 0.0) if header is not None else default
    except ValueError:
        return default
