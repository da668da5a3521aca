"""The Prometheus provider and the judge against a REAL Prometheus (Debian's binary, 1 s scrapes) scraping a
real prometheus_client exporter fed with stable and canary traffic: healthy, erroring and slow canaries are
told apart; NaN, empty results and a stopped server are never a pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

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
    started = time.monotonic()
    result = _judge(server, slo, HEALTHY)
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, PROMETHEUS_UNAVAILABLE)
    assert "unreachable" in result.reason
    assert time.monotonic() - started < 10  # bounded retries, then data
