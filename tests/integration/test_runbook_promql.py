"""Every PromQL block of every runbook, rendered for an incident, runs on a real Prometheus that
scrapes a canary burning its error budget beside a healthy stable: the query parses, and the queries
over the model servers' metrics return the series the runbook reasons about (one per role)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from controlplane.app import runbooks
from tests.prometheus_fixture import MetricExporter, Profile, PrometheusServer, TrafficDriver

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

QUERIES = [
    (rid, query)
    for rid, book in sorted(runbooks.load_runbooks().items())
    for query in runbooks.blocks(runbooks.render(book, model="minilm", version=3, stable=2, incident=7), "promql")
]


@pytest.fixture(scope="module")
def scraped() -> Iterator[PrometheusServer]:
    exporter = MetricExporter()
    driver = TrafficDriver(exporter, [
        Profile("minilm", 2, "stable", rps=60.0),
        Profile("minilm", 3, "canary", rps=20.0, error_ratio=0.3, latency_median_s=0.25),
    ]).start()
    server = PrometheusServer([exporter.target]).start()
    try:
        server.wait_for_targets()
        _until(lambda: len(server.query('sum by (role) (rate(model_requests_total{model="minilm"}[1m]))')) == 2)
        yield server
    finally:
        driver.stop()
        server.cleanup()
        exporter.stop()


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "Prometheus never had both roles' rates"
        time.sleep(0.5)


def test_the_runbooks_that_reason_with_metrics_have_queries() -> None:
    with_queries = {rid for rid, _ in QUERIES}
    assert {"slo-burn-errors", "slo-burn-latency", "baseline-regression", "canary-inconclusive",
            "prometheus-unavailable", "long-seq-oom"} <= with_queries


@pytest.mark.parametrize(("rid", "query"), QUERIES)
def test_runbook_query_runs_and_returns_its_series(scraped: PrometheusServer, rid: str, query: str) -> None:
    import httpx

    body = httpx.post(f"{scraped.url}/api/v1/query", data={"query": query}, timeout=5.0).json()
    assert body["status"] == "success", f"{rid}: {body.get('error')}"
    result = body["data"]["result"]
    if "model_request" in query:  # the serving metrics: one series per role, both there
        roles = {series["metric"].get("role") for series in result}
        assert {"stable", "canary"} <= roles, f"{rid}: {query!r} returned {result}"
        if 'outcome="error"' in query and "/" in query:
            ratio = {s["metric"]["role"]: float(s["value"][1]) for s in result}
            assert ratio["canary"] > 0.1 > ratio["stable"], f"{rid}: the burning canary does not show: {ratio}"
    else:  # `up == 0`: every target is up, so nothing is down
        assert result == [], f"{rid}: {result}"
