"""The bentoml preset on a REAL server: BentoML 1.4.40 in its own venv (tests/.cache/venvs, see
tests/serving_fixtures.py), ``bentoml serve`` of a tiny service (tests/serving/bentoml_service.py) on
loopback, driven with real HTTP requests (a failing canary raises on every third request, a 500) and
scraped by a real Prometheus whose static_configs target labels stand for the relabelled pod labels.

Three "pods": stable v2, a healthy canary v3 and a failing canary v4, each also probed on ``/livez`` and
``/readyz`` the way a kubelet does. BentoML counts those probes in ``bentoml_service_request_total`` beside
the API calls; the preset judges the API endpoints only, so the probes dilute neither errors nor latency."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.analysis.judge import SLO_BURN_ERRORS
from controlplane.analysis.slo import parse_slo_yaml
from controlplane.engine.types import Verdict
from tests.integration.test_presets_real_servers import (
    CANARY_POLICY,
    FAIL_EVERY,
    FAILING,
    HEALTHY,
    MODEL,
    RPS,
    STABLE,
    _ctl,
    _fill,
    _judge,
    _role,
)
from tests.prometheus_fixture import free_port
from tests.serving_fixtures import (
    SERVING_DIR,
    Endpoint,
    LabelledPrometheus,
    RequestDriver,
    ServedProcess,
    pod_labels,
    server_venv,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

OFFLINE = {"BENTOML_DO_NOT_TRACK": "True"}  # no usage analytics: the server stays on loopback
PROBE_RPS = 20.0  # more probes than API calls: were they counted, the failing canary's error share would halve


def _probe(bases: list[str], stop: threading.Event) -> None:
    """kubelet's liveness and readiness probes, GETs at PROBE_RPS per pod."""
    with httpx.Client(timeout=5.0) as client:
        while not stop.is_set():
            for base in bases:
                for path in ("/livez", "/readyz"):
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(base + path)
            stop.wait(2.0 / PROBE_RPS)


@pytest.fixture(scope="module")
def bentoml_world(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelledPrometheus]:
    venv = server_venv("bentoml", "1.4.40", "bentoml")
    root = tmp_path_factory.mktemp("bentoml")
    (root / "bentoml_service.py").write_text((SERVING_DIR / "bentoml_service.py").read_text())
    servers, endpoints, targets, bases = [], [], {}, []
    stop = threading.Event()
    try:
        for version, fail_every in FAIL_EVERY.items():
            http = free_port()
            base = f"http://127.0.0.1:{http}"
            server = ServedProcess(
                [venv.script("bentoml"), "serve", "bentoml_service:Sentiment", "--host", "127.0.0.1",
                 "--port", str(http)],
                cwd=root,
                ready_url=f"{base}/readyz",
                log=root / f"v{version}.log",
                env={**OFFLINE, "FAIL_EVERY": str(fail_every), "BENTOML_HOME": str(root / f"home-v{version}")},
            )
            servers.append(server.start())
            bases.append(base)
            endpoints.append(Endpoint(f"{base}/predict", json.dumps({"text": "a fine day"}).encode(), RPS))
            targets[f"127.0.0.1:{http}"] = pod_labels(MODEL, version, _role(version))
        driver = RequestDriver(endpoints).start()
        probes = threading.Thread(target=_probe, args=(bases, stop), daemon=True)
        probes.start()
        prometheus = LabelledPrometheus(targets, binary=prometheus_bin).start()
        try:
            _fill(prometheus)
            yield prometheus
        finally:
            stop.set()
            probes.join(10)
            driver.stop()
            prometheus.cleanup()
        failing = endpoints[list(FAIL_EVERY).index(FAILING)]
        assert failing.statuses[500] > 0 and failing.statuses[200] > 0, failing.statuses
    finally:
        for server in servers:
            server.stop()


BENTOML_SLO = f"""
model: {MODEL}
metrics: {{preset: bentoml}}
objectives:
  availability: {{target: 99.9}}
  latency: {{target: 95, threshold: 250ms}}
{CANARY_POLICY}"""


class TestBentoML:
    def test_healthy_canary_passes(self, bentoml_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(BENTOML_SLO, "bentoml.yaml")
        result = _judge(bentoml_world.url, slo, HEALTHY)
        assert result.verdict == Verdict.PASS, result.reason
        ev = result.evidence
        assert ev["metrics"] == {"preset": "bentoml", "identify": "pod-labels"}
        assert ev["canary"]["requests"] >= 50 and ev["stable"]["requests"] >= 50
        assert ev["canary"]["errors"] == 0.0
        queries = ev["queries"].values()
        assert any("bentoml_service_request_total" in q for q in queries)
        assert any("bentoml_service_request_duration_seconds_bucket" in q for q in queries)

    def test_failing_canary_fails_on_errors(self, bentoml_world: LabelledPrometheus) -> None:
        slo = parse_slo_yaml(BENTOML_SLO, "bentoml.yaml")
        result = _judge(bentoml_world.url, slo, FAILING)
        assert (result.verdict, result.failure_mode) == (Verdict.FAIL, SLO_BURN_ERRORS), result.reason
        canary = result.evidence["canary"]
        assert canary["errors"] / canary["requests"] == pytest.approx(1 / 3, abs=0.08)  # the probes not counted

    def test_live_validate_finds_every_query(self, bentoml_world: LabelledPrometheus, tmp_path: Path) -> None:
        path = tmp_path / "bentoml.yaml"
        path.write_text(BENTOML_SLO)
        ok = _ctl("slo", "validate", str(path), "--prometheus-url", bentoml_world.url, "--canary", str(HEALTHY),
                  "--stable", str(STABLE), "-o", "json")
        assert ok.returncode == 0, ok.stderr
        live = json.loads(ok.stdout)["live"]
        assert {q["status"] for q in live["queries"] if q["required"]} == {"ok"}
        assert {q["role"] for q in live["queries"]} == {"canary", "stable"}
        missing = _ctl("slo", "validate", str(path), "--prometheus-url", bentoml_world.url, "--canary", "9")
        assert missing.returncode == 1, missing.stderr
        assert "EMPTY (required): canary total" in missing.stdout
        assert missing.stderr.startswith("error: required queries without data: canary total")
