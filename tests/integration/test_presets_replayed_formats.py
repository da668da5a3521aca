"""The triton, vllm, torchserve and bentoml presets on REPLAYED exposition formats (not the real servers,
BentoML's also runs in test_presets_bentoml.py; tests/replayed_formats.py says what is replayed and from
which source), scraped by a real Prometheus. One "pod" per version: stable v2, canaries v3 (healthy), v4 (30 % errors), v5
(800 ms instead of 50 ms). Triton pods are told apart by Triton's own ``version`` label; the others by
static_configs target labels standing for the relabelled pod labels.

Empty results, NaN (a threshold that is no bucket bound) and a server whose always-present error counter
is missing are never a pass."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controlplane.adapters.prometheus import PrometheusProvider
from controlplane.analysis.judge import (
    BASELINE_REGRESSION,
    CANARY_INCONCLUSIVE,
    SLO_BURN_ERRORS,
    SLO_BURN_LATENCY,
    analyze,
)
from controlplane.analysis.slo import parse_slo_yaml
from controlplane.engine.types import AnalysisVerdict, Verdict
from tests.prometheus_fixture import PrometheusServer
from tests.replayed_formats import (
    BentoMLReplay,
    Replay,
    ReplayDriver,
    TorchServeReplay,
    Traffic,
    TritonReplay,
    VllmReplay,
)
from tests.serving_fixtures import LabelledPrometheus, TextExporter, docs_scrape_config, pod_labels

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

MODEL = "summarizer"
STEP = 12.0
STABLE, HEALTHY, ERRORS, SLOW, NO_FAILURE_COUNTER = 2, 3, 4, 5, 6
PROFILES = {STABLE: (0.0, 0.05), HEALTHY: (0.0, 0.05), ERRORS: (0.3, 0.05), SLOW: (0.0, 0.8)}
POLICY = """
canary:
  min_requests: 100
  min_window: 3s
  compare: {interval: 3s, min_points: 4}
"""
SLOS = {
    "triton": "objectives:\n  availability: {target: 99.9}\n",
    "vllm": "objectives:\n  availability: {target: 99.9}\n  latency: {target: 95, threshold: 500ms}\n",
    "torchserve": "objectives:\n  availability: {target: 99.9}\n",
    "bentoml": "objectives:\n  availability: {target: 99.9}\n  latency: {target: 95, threshold: 250ms}\n",
}
REPLAYS: dict[str, Callable[[int], Replay]] = {
    "triton": lambda v: TritonReplay(MODEL, v),
    "vllm": lambda v: VllmReplay(MODEL),
    "torchserve": lambda v: TorchServeReplay(MODEL),
    "bentoml": lambda v: BentoMLReplay(MODEL),
}
#: the metric each preset must have read, in the evidence's queries
READS = {
    "triton": "nv_inference_request_failure",
    "vllm": 'http_requests_total{rollout_model="summarizer"',
    "torchserve": "Requests5XX",
    "bentoml": "bentoml_service_request_duration_seconds_bucket",
}
EXPECTED = {
    # preset: verdicts for the healthy, erroring and slow canaries
    "triton": {HEALTHY: None, ERRORS: SLO_BURN_ERRORS, SLOW: BASELINE_REGRESSION},  # mean latency only
    "vllm": {HEALTHY: None, ERRORS: SLO_BURN_ERRORS, SLOW: SLO_BURN_LATENCY},
    "torchserve": {HEALTHY: None, ERRORS: SLO_BURN_ERRORS, SLOW: BASELINE_REGRESSION},  # mean latency only
    "bentoml": {HEALTHY: None, ERRORS: SLO_BURN_ERRORS, SLOW: SLO_BURN_LATENCY},
}


def slo_text(preset: str, objectives: str | None = None) -> str:
    return f"model: {MODEL}\nmetrics: {{preset: {preset}}}\n{objectives or SLOS[preset]}{POLICY}"


@pytest.fixture(scope="module")
def prometheus(prometheus_bin: str) -> Iterator[LabelledPrometheus]:
    traffic, exporters, targets = [], [], {}
    for preset, make in REPLAYS.items():
        for version, (error_ratio, latency) in PROFILES.items():
            replay = make(version)
            traffic.append(Traffic(replay, rps=30, error_ratio=error_ratio, latency_median_s=latency))
            exporter = TextExporter(replay.render)
            exporters.append(exporter)
            role = "stable" if version == STABLE else "canary"
            targets[exporter.target] = {} if preset == "triton" else pod_labels(MODEL, version, role)
    broken = TritonReplay(MODEL, NO_FAILURE_COUNTER, failure_counter=False)
    traffic.append(Traffic(broken, rps=30))
    exporters.append(TextExporter(broken.render))
    targets[exporters[-1].target] = {}
    driver = ReplayDriver(traffic).start()
    server = LabelledPrometheus(targets, binary=prometheus_bin).start()
    try:
        server.wait_for_targets(timeout=30)
        time.sleep(STEP + 6)
        yield server
    finally:
        driver.stop()
        server.cleanup()
        for exporter in exporters:
            exporter.stop()


def _judge(server: LabelledPrometheus, text: str, canary: int) -> AnalysisVerdict:
    slo = parse_slo_yaml(text, "replayed.yaml")
    with PrometheusProvider(server.url, slo, step_duration_s=STEP) as provider:
        return analyze(slo, provider, MODEL, canary, STABLE, now=time.time() - 1.5, step_duration_s=STEP)


@pytest.mark.parametrize("preset", list(EXPECTED))
@pytest.mark.parametrize("canary", [HEALTHY, ERRORS, SLOW])
def test_replayed_format_verdicts(prometheus: LabelledPrometheus, preset: str, canary: int) -> None:
    result = _judge(prometheus, slo_text(preset), canary)
    mode = EXPECTED[preset][canary]
    expected = (Verdict.PASS, None) if mode is None else (Verdict.FAIL, mode)
    assert (result.verdict, result.failure_mode) == expected, result.reason
    ev = result.evidence
    assert ev["metrics"]["preset"] == preset
    assert any(READS[preset] in q for q in ev["queries"].values()), ev["queries"]
    assert ev["canary"]["requests"] > 100 and ev["stable"]["requests"] > 100
    if preset in ("triton", "torchserve"):  # cumulative sums only: the comparison's latency is the mean
        assert ev["thresholds"]["compare"]["latency_statistic"] == "mean"
        assert ev["not_judged"] and ev["not_judged"][0].startswith("latency SLO")
    if canary == ERRORS:
        assert ev["canary"]["errors"] / ev["canary"]["requests"] == pytest.approx(0.3, abs=0.08)
    if canary == SLOW and mode == BASELINE_REGRESSION:
        latency = next(c for c in ev["comparison"] if c["metric"] == "latency_ms")
        assert latency["status"] == "regression" and latency["canary_mean"] > 10 * latency["stable_mean"]


def test_triton_is_told_apart_by_its_own_version_label(prometheus: LabelledPrometheus) -> None:
    result = _judge(prometheus, slo_text("triton"), HEALTHY)
    queries = " ".join(result.evidence["queries"].values())
    assert 'model="summarizer",version=~"v?3"' in queries and "rollout_" not in queries


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_empty_results_are_never_a_pass(prometheus: LabelledPrometheus, preset: str) -> None:
    result = _judge(prometheus, slo_text(preset), canary=99)  # no pod serves v99: every query is empty
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE), result.reason


def test_a_missing_always_present_error_counter_is_never_a_pass(prometheus: LabelledPrometheus) -> None:
    """Triton creates nv_inference_request_failure with the model: its absence means a wrong name, a
    relabelling that dropped it or an odd build, not "no errors"."""
    result = _judge(prometheus, slo_text("triton"), NO_FAILURE_COUNTER)
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE), result.reason
    assert "not numbers" in result.reason


def test_a_threshold_that_is_no_bucket_bound_is_never_a_pass(prometheus: LabelledPrometheus) -> None:
    """vLLM's e2e buckets start at 0.3 s: a 200 ms threshold has no bucket, the good-events count is NaN."""
    objectives = "objectives:\n  latency: {target: 95, threshold: 200ms}\n"
    result = _judge(prometheus, slo_text("vllm", objectives), HEALTHY)
    assert (result.verdict, result.failure_mode) == (Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE), result.reason


def test_live_validate_says_which_queries_are_empty(prometheus: LabelledPrometheus, tmp_path: Path) -> None:
    path = tmp_path / "triton.yaml"
    path.write_text(slo_text("triton"))
    ok = _ctl("slo", "validate", str(path), "--prometheus-url", prometheus.url, "--canary", str(HEALTHY),
              "--stable", str(STABLE), "-o", "json")
    assert ok.returncode == 0, ok.stderr
    assert "mean" in " ".join(json.loads(ok.stdout)["metrics"]["judged"])
    broken = _ctl("slo", "validate", str(path), "--prometheus-url", prometheus.url, "--canary",
                  str(NO_FAILURE_COUNTER), "--stable", str(STABLE))
    assert broken.returncode == 1, broken.stderr
    assert "EMPTY (required): canary errors" in broken.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(slo_text("triton", "objectives:\n  availability: {target: 99.9, errors_query: "
                                      "'sum(rate(x{${selector}}[${window}])'}\n"))
    rejected = _ctl("slo", "validate", str(bad), "--prometheus-url", prometheus.url, "--canary", "3")
    assert rejected.returncode == 2 and rejected.stderr.startswith("error: Prometheus rejected"), rejected.stderr


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          timeout=120)


class _DocsRelabelling(PrometheusServer):
    """A real Prometheus running docs/slo.md's relabel_configs on static targets that carry the
    ``__meta_kubernetes_pod_*`` labels kubernetes_sd would give those pods (Debian builds it without
    Kubernetes discovery)."""

    def __init__(self, pods: dict[str, dict[str, str]], kept: list[str], binary: str) -> None:
        super().__init__(kept, binary=binary)
        self.pods = pods

    def config_text(self) -> str:
        static = "    static_configs:\n" + "".join(
            f'      - targets: ["{t}"]\n        labels: {json.dumps(labels)}\n' for t, labels in self.pods.items()
        )
        snippet = docs_scrape_config().replace("    kubernetes_sd_configs:\n      - role: pod\n", static)
        return f"global:\n  scrape_interval: {self.scrape_interval}\n{snippet}"


def test_the_docs_relabelling_produces_the_labels_presets_select_on(prometheus_bin: str) -> None:
    meta = "__meta_kubernetes_pod_"
    uri = f"{meta}annotation_rollouts_attn_controlplane_dev_model_uri"
    role, port = f"{meta}label_rollouts_attn_controlplane_dev_role", f"{meta}container_port_name"
    exporters = [TextExporter(VllmReplay(MODEL).render) for _ in range(4)]
    canary, stable, other_port, unmanaged = (e.target for e in exporters)
    pods = {
        canary: {uri: f"models:/{MODEL}/3", role: "canary", port: "metrics", f"{meta}name": "sum-canary-0"},
        stable: {uri: f"models:/{MODEL}/2", port: "metrics", f"{meta}name": "sum-0"},
        other_port: {uri: f"models:/{MODEL}/2", port: "http"},
        unmanaged: {port: "metrics"},
    }
    server = _DocsRelabelling(pods, [canary, stable], prometheus_bin).start()
    try:
        server.wait_for_targets(timeout=30)
        got = {s["metric"]["instance"]: s["metric"] for s in server.query('up{rollout_model="summarizer"}')}
        assert set(got) == {canary, stable}
        labels = got[canary]
        assert (labels["rollout_version"], labels["rollout_role"], labels["pod"]) == ("3", "canary", "sum-canary-0")
        assert (got[stable]["rollout_version"], got[stable]["rollout_role"]) == ("2", "stable")
    finally:
        server.cleanup()
        for exporter in exporters:
            exporter.stop()
