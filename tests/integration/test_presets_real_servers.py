"""The mlserver and kserve presets on REAL servers: Seldon MLServer 1.7.1 and KServe's Python ModelServer
0.21.0, each in its own venv (tests/.cache/venvs, see tests/serving_fixtures.py), serving a tiny Python
model on loopback, driven with real HTTP requests (a failing canary raises on every third request) and
scraped by a real Prometheus whose static_configs target labels stand for the relabelled pod labels.

Three "pods" per server: stable v2, a healthy canary v3 and a failing canary v4. KServe's ModelServer
exports no error counter, so its errors come from a queue-proxy in front of it (Knative's
``revision_app_request_count``, counted from the real answers); without one the errors are not judged
and a file asking for availability is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.adapters.prometheus import PrometheusProvider
from controlplane.analysis.judge import SLO_BURN_ERRORS, analyze
from controlplane.analysis.slo import SLOSpec, parse_slo_yaml
from controlplane.engine.types import Verdict
from tests.prometheus_fixture import free_port
from tests.serving_fixtures import (
    SERVING_DIR,
    Endpoint,
    LabelledPrometheus,
    QueueProxy,
    RequestDriver,
    ServedProcess,
    pod_labels,
    server_venv,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

MODEL = "sentiment"
STEP = 12.0
RPS = 15.0
STABLE, HEALTHY, FAILING = 2, 3, 4
FAIL_EVERY = {STABLE: 0, HEALTHY: 0, FAILING: 3}
CANARY_POLICY = """
canary:
  min_requests: 50
  min_window: 3s
  compare: {interval: 3s, min_points: 4}
"""


def _role(version: int) -> str:
    return "stable" if version == STABLE else "canary"


def _judge(url: str, slo: SLOSpec, canary: int):  # type: ignore[no-untyped-def]
    with PrometheusProvider(url, slo, step_duration_s=STEP) as provider:
        return analyze(slo, provider, MODEL, canary, STABLE, now=time.time() - 1.5, step_duration_s=STEP)


def _fill(prometheus: LabelledPrometheus) -> None:
    prometheus.wait_for_targets(timeout=60)
    time.sleep(STEP + 6)


# ---- Seldon MLServer ---------------------------------------------------------------------


@pytest.fixture(scope="class")
def mlserver_world(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelledPrometheus]:
    venv = server_venv("mlserver", "1.7.1", "mlserver")
    root = tmp_path_factory.mktemp("mlserver")
    servers, endpoints, targets = [], [], {}
    try:
        for version, fail_every in FAIL_EVERY.items():
            home = root / f"v{version}"
            (home / MODEL).mkdir(parents=True)
            (home / MODEL / "mlserver_model.py").write_text((SERVING_DIR / "mlserver_model.py").read_text())
            (home / MODEL / "model-settings.json").write_text(
                json.dumps(
                    {
                        "name": MODEL,
                        "implementation": "mlserver_model.FlakyModel",
                        "parameters": {"extra": {"fail_every": fail_every}},
                    }
                )
            )
            http, metrics = free_port(), free_port()
            settings = {"host": "127.0.0.1", "http_port": http, "grpc_port": free_port(), "metrics_port": metrics,
                        "parallel_workers": 0}
            (home / "settings.json").write_text(json.dumps(settings))
            server = ServedProcess(
                [venv.script("mlserver"), "start", "."],
                cwd=home,
                ready_url=f"http://127.0.0.1:{http}/v2/models/{MODEL}/ready",
                log=home / "server.log",
            )
            servers.append(server.start())
            body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}
            endpoints.append(Endpoint(f"http://127.0.0.1:{http}/v2/models/{MODEL}/infer", json.dumps(body).encode(), RPS))
            targets[f"127.0.0.1:{metrics}"] = pod_labels(MODEL, version, _role(version))
        driver = RequestDriver(endpoints).start()
        prometheus = LabelledPrometheus(targets, binary=prometheus_bin).start()
        try:
            _fill(prometheus)
            yield prometheus
        finally:
            driver.stop()
            prometheus.cleanup()
        failing = endpoints[list(FAIL_EVERY).index(FAILING)]
        assert failing.statuses[500] > 0 and failing.statuses[200] > 0, failing.statuses
    finally:
        for server in servers:
            server.stop()


MLSERVER_SLO = f"""
model: {MODEL}
metrics: {{preset: mlserver}}
objectives:
  availability: {{target: 99.9}}
  latency: {{target: 95, threshold: 250ms}}
{CANARY_POLICY}"""


class TestMLServer:
    def test_healthy_canary_passes(self, mlserver_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(MLSERVER_SLO, "mlserver.yaml")
        result = _judge(mlserver_world.url, slo, HEALTHY)
        assert result.verdict == Verdict.PASS, result.reason
        ev = result.evidence
        assert ev["metrics"] == {"preset": "mlserver", "identify": "pod-labels"}
        assert ev["canary"]["requests"] >= 50 and ev["stable"]["requests"] >= 50
        assert ev["canary"]["errors"] == 0.0  # the failure counter exists (created with the first request) at 0
        assert any("model_infer_request_failure_total" in q for q in ev["queries"].values())

    def test_failing_canary_fails_on_errors(self, mlserver_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(MLSERVER_SLO, "mlserver.yaml")
        result = _judge(mlserver_world.url, slo, FAILING)
        assert (result.verdict, result.failure_mode) == (Verdict.FAIL, SLO_BURN_ERRORS), result.reason
        canary = result.evidence["canary"]
        assert canary["errors"] / canary["requests"] == pytest.approx(1 / 3, abs=0.08)

    def test_live_validate_finds_every_query(self, mlserver_world: LabelledPrometheus, tmp_path: Path) -> None:
        path = tmp_path / "mlserver.yaml"
        path.write_text(MLSERVER_SLO)
        ok = _ctl("slo", "validate", str(path), "--prometheus-url", mlserver_world.url, "--canary", str(HEALTHY),
                  "--stable", str(STABLE), "-o", "json")
        assert ok.returncode == 0, ok.stderr
        live = json.loads(ok.stdout)["live"]
        assert {q["status"] for q in live["queries"] if q["required"]} == {"ok"}
        assert {q["role"] for q in live["queries"]} == {"canary", "stable"}
        missing = _ctl("slo", "validate", str(path), "--prometheus-url", mlserver_world.url, "--canary", "9")
        assert missing.returncode == 1, missing.stderr
        assert "EMPTY (required): canary total" in missing.stdout
        assert missing.stderr.startswith("error: required queries without data: canary total")


# ---- KServe Python ModelServer ---------------------------------------------------------------


@pytest.fixture(scope="class")
def kserve_world(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelledPrometheus]:
    venv = server_venv("kserve", "0.21.0", "kserve")
    root = tmp_path_factory.mktemp("kserve")
    servers, proxies, endpoints, targets = [], [], [], {}
    try:
        for version, fail_every in FAIL_EVERY.items():
            http = free_port()
            server = ServedProcess(
                [venv.python, SERVING_DIR / "kserve_server.py", "--name", MODEL, "--http_port", str(http),
                 "--fail_every", str(fail_every), "--configure_logging", "false"],
                cwd=root,
                ready_url=f"http://127.0.0.1:{http}/v1/models/{MODEL}",
                log=root / f"v{version}.log",
            )
            servers.append(server.start())
            proxy = QueueProxy(f"http://127.0.0.1:{http}", f"{MODEL}-predictor-0000{version}")
            proxies.append(proxy)
            endpoints.append(Endpoint(f"{proxy.url}/v1/models/{MODEL}:predict", b'{"instances": [[1.0, 2.0]]}', RPS))
            labels = pod_labels(MODEL, version, _role(version))
            targets[f"127.0.0.1:{http}"] = labels  # the ModelServer's /metrics
            targets[proxy.metrics.target] = labels  # the queue-proxy's, same pod
        driver = RequestDriver(endpoints).start()
        prometheus = LabelledPrometheus(targets, binary=prometheus_bin).start()
        try:
            _fill(prometheus)
            yield prometheus
        finally:
            driver.stop()
            prometheus.cleanup()
    finally:
        for proxy in proxies:
            proxy.stop()
        for server in servers:
            server.stop()


KSERVE_SLO = f"""
model: {MODEL}
metrics: {{preset: kserve, errors: knative}}
objectives:
  availability: {{target: 99.9}}
  latency: {{target: 95, threshold: 250ms}}
{CANARY_POLICY}"""

KSERVE_LATENCY_ONLY = f"""
model: {MODEL}
metrics: {{preset: kserve}}
objectives:
  latency: {{target: 95, threshold: 250ms}}
{CANARY_POLICY}"""


class TestKServe:
    def test_healthy_canary_passes(self, kserve_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(KSERVE_SLO, "kserve.yaml")
        result = _judge(kserve_world.url, slo, HEALTHY)
        assert result.verdict == Verdict.PASS, result.reason
        queries = result.evidence["queries"].values()
        assert any("revision_app_request_count" in q for q in queries)
        assert any("request_predict_seconds_bucket" in q for q in queries)

    def test_failing_canary_fails_on_the_queue_proxy_errors(self, kserve_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(KSERVE_SLO, "kserve.yaml")
        result = _judge(kserve_world.url, slo, FAILING)
        assert (result.verdict, result.failure_mode) == (Verdict.FAIL, SLO_BURN_ERRORS), result.reason
        canary = result.evidence["canary"]
        assert canary["errors"] / canary["requests"] == pytest.approx(1 / 3, abs=0.08)

    def test_without_an_error_source_errors_are_said_not_judged(self, kserve_world: LabelledPrometheus) -> None:
        """The ModelServer times failed predicts like good ones: with its own metrics only, the failing canary
        looks fast and healthy, and the verdict says in so many words that errors were not judged."""
        slo = parse_slo_yaml(KSERVE_LATENCY_ONLY, "kserve.yaml")
        result = _judge(kserve_world.url, slo, FAILING)
        assert "NOT judged: errors" in result.reason
        assert result.evidence["not_judged"] and "no error counter" in result.evidence["not_judged"][0]

    def test_asking_for_availability_without_an_error_source_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "kserve.yaml"
        path.write_text(KSERVE_SLO.replace(", errors: knative", ""))
        proc = _ctl("slo", "validate", str(path))
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and "cannot judge errors" in proc.stderr


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          timeout=120)
