"""The Prometheus provider and the judge against a REAL Prometheus (Debian's binary, 1 s scrapes) scraping a
real prometheus_client exporter fed with stable and canary traffic: healthy, erroring and slow canaries are
told apart; NaN, empty results and a stopped server are never a pass."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from controlplane.adapters.prometheus import PrometheusProvider
from controlplane.analysis.judge import (
    CANARY_INCONCLUSIVE,
    PROMETHEUS_UNAVAILABLE,
    SLO_BURN_ERRORS,
    SLO_BURN_LATENCY,
    analyze,
)
from controlplane.analysis.slo import SLOSpec, parse_slo_yaml
from controlplane.engine.types import Verdict
from controlplane.ports import MetricWindow
from tests.prometheus_fixture import MetricExporter, Profile, PrometheusServer, TrafficDriver

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

STEP = 12.0
SLO_TEXT = """
model: minilm
objectives:
  availability: {target: 99.9}
  latency: {target: 95, threshold: 200ms}
canary:
  min_requests: 100
  min_window: 3s
  compare: {interval: 3s, min_points: 4}
"""
HEALTHY, ERRORS, SLOW, STABLE = 2, 3, 4, 1


@pytest.fixture(scope="module")
def slo() -> SLOSpec:
    return parse_slo_yaml(SLO_TEXT, "test-slo.yaml")


@pytest.fixture(scope="module")
def world(prometheus_bin: str) -> Iterator[tuple[PrometheusServer, TrafficDriver]]:
    """One exporter with stable v1 and three canaries (healthy v2, 30 % errors v3, 400 ms v4), scraped
    for long enough to fill the longest window the analysis reads at a 12 s step."""
    exporter = MetricExporter()
    profiles = [
        Profile("minilm", STABLE, "stable", rps=30),
        Profile("minilm", HEALTHY, "canary", rps=30),
        Profile("minilm", ERRORS, "canary", rps=30, error_ratio=0.3),
        Profile("minilm", SLOW, "canary", rps=30, latency_median_s=0.4),
    ]
    driver = TrafficDriver(exporter, profiles).start()
    server = PrometheusServer([exporter.target], binary=prometheus_bin).start()
    try:
        server.wait_for_targets()
        time.sleep(STEP + 6)
        yield server, driver
    finally:
        driver.stop()
        server.cleanup()
        exporter.stop()


def _judge(server: PrometheusServer, slo: SLOSpec, canary: int, stable: int | None = STABLE):  # type: ignore[no-untyped-def]
    with PrometheusProvider(server.url, slo, step_duration_s=STEP) as provider:
        return analyze(slo, provider, "minilm", canary, stable, now=time.time() - 1.5, step_duration_s=STEP)


@pytest.mark.parametrize(
    ("canary", "verdict", "mode"),
    [
        (HEALTHY, Verdict.PASS, None),
        (ERRORS, Verdict.FAIL, SLO_BURN_ERRORS),
        (SLOW, Verdict.FAIL, SLO_BURN_LATENCY),
    ],
)
def test_canaries_are_told_apart(world: tuple[PrometheusServer, TrafficDriver], slo: SLOSpec, canary: int,
                                 verdict: Verdict, mode: str | None) -> None:
    server, _ = world
    result = _judge(server, slo, canary)
    assert (result.verdict, result.failure_mode) == (verdict, mode), result.reason
    ev = result.evidence
    assert any("model_requests_total" in q for q in ev["queries"].values())
    assert ev["canary"]["requests"] > 100 and ev["stable"]["requests"] > 100
    assert len(ev["canary"]["latencies_ms"]) == 4


def test_counts_match_what_was_served(world: tuple[PrometheusServer, TrafficDriver], slo: SLOSpec) -> None:
    server, _ = world
    end = time.time() - 1.5
    with PrometheusProvider(server.url, slo, step_duration_s=STEP) as provider:
        obs = provider.observe("minilm", ERRORS, STABLE, MetricWindow(end - 10, end))
    assert obs.error is None and obs.canary is not None and obs.stable is not None
    assert obs.canary.requests == pytest.approx(300, rel=0.25)
    assert obs.canary.errors / obs.canary.requests == pytest.approx(0.3, abs=0.08)
    assert obs.stable.errors == 0.0  # no error series at all: zero, not missing
    assert obs.stable.latency_good / obs.stable.requests > 0.99


def test_empty_results_are_inconclusive(world: tuple[PrometheusServer, TrafficDriver], slo: SLOSpec) -> None:
    server, _ = world
    result = _judge(server, slo, canary=99)  # a version nobody serves: every query is empty
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE)
    assert "too little data" in result.reason


def test_nan_is_inconclusive(world: tuple[PrometheusServer, TrafficDriver]) -> None:
    """A latency threshold that is not a bucket bound: the good-events query is empty while requests exist."""
    server, _ = world
    odd = parse_slo_yaml(SLO_TEXT.replace("threshold: 200ms", "threshold: 123ms"), "odd.yaml")
    result = _judge(server, odd, HEALTHY)
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    assert result.failure_mode == CANARY_INCONCLUSIVE


def test_rejected_query_is_a_source_failure(world: tuple[PrometheusServer, TrafficDriver]) -> None:
    server, _ = world
    broken = parse_slo_yaml(
        SLO_TEXT.replace(
            "availability: {target: 99.9}",
            "availability: {target: 99.9, errors_query: 'sum(increase(x{${selector}}[${window}])) +'}",
        ),
        "broken.yaml",
    )
    result = _judge(server, broken, HEALTHY)
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, PROMETHEUS_UNAVAILABLE)
    assert "bad_data" in result.reason


def test_stopped_prometheus_is_never_a_pass(
    prometheus_server: Callable[[Sequence[str]], PrometheusServer],
    metric_exporter: Callable[[], MetricExporter],
    slo: SLOSpec,
) -> None:
    exporter = metric_exporter()
    server = prometheus_server([exporter.target])
    server.stop()
    result = _judge(server, slo, HEALTHY)  # the retries are bounded: see the scripted-server tests below
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, PROMETHEUS_UNAVAILABLE)
    assert "unreachable" in result.reason


# ---- the HTTP edge: retries, Retry-After, partial responses, NaN (a scripted HTTP server) ----------


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers, body) of ``script``; repeats the last one."""

    script: ClassVar[list[tuple[int, dict[str, str], Any]]] = []
    calls: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Scripted.calls.append(time.monotonic())
        status, headers, body = _Scripted.script[min(len(_Scripted.calls), len(_Scripted.script)) - 1]
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def scripted() -> Iterator[Callable[[list[tuple[int, dict[str, str], Any]]], str]]:
    server = HTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def load(script: list[tuple[int, dict[str, str], Any]]) -> str:
        _Scripted.script, _Scripted.calls = script, []
        return f"http://127.0.0.1:{server.server_port}"

    yield load
    server.shutdown()
    server.server_close()


def _vector(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, value]}]}}


def test_retries_honour_retry_after(scripted: Callable[..., str], slo: SLOSpec) -> None:
    url = scripted([(503, {"Retry-After": "0.3"}, b"busy"), (200, {}, _vector("42"))])
    with PrometheusProvider(url, slo, retry_delay_s=0.01) as provider:
        assert provider.instant("up", 1.0) == 42.0
    assert len(_Scripted.calls) == 2
    assert _Scripted.calls[1] - _Scripted.calls[0] >= 0.25


def test_partial_response_and_bad_query_are_errors_not_data(scripted: Callable[..., str], slo: SLOSpec) -> None:
    partial = {**_vector("1"), "warnings": ["remote read failed for one store"]}
    url = scripted([(200, {}, partial)])
    with PrometheusProvider(url, slo) as provider:
        obs = provider.observe("minilm", HEALTHY, STABLE, MetricWindow(0.0, 12.0))
    assert obs.error is not None and "partial response" in obs.error
    assert len(_Scripted.calls) == 1  # a permanent error is not retried
    url = scripted([(400, {}, {"status": "error", "errorType": "bad_data", "error": "parse error"})])
    with PrometheusProvider(url, slo) as provider:
        obs = provider.observe("minilm", HEALTHY, STABLE, MetricWindow(0.0, 12.0))
    assert obs.error is not None and "bad_data" in obs.error


def test_nan_values_are_data(scripted: Callable[..., str], slo: SLOSpec) -> None:
    url = scripted([(200, {}, _vector("NaN"))])
    with PrometheusProvider(url, slo) as provider:
        value = provider.instant("x", 1.0)
    assert value is not None and math.isnan(value)


def test_retries_are_bounded(scripted: Callable[..., str], slo: SLOSpec) -> None:
    url = scripted([(503, {}, {"status": "error", "errorType": "unavailable", "error": "overloaded"})])
    with PrometheusProvider(url, slo, attempts=3, retry_delay_s=0.01) as provider:
        obs = provider.observe("minilm", HEALTHY, None, MetricWindow(0.0, 12.0))
    assert obs.error is not None and "unavailable" in obs.error
    assert len(_Scripted.calls) == 3
