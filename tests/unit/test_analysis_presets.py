"""Metric presets: the default is byte-for-byte the queries SLO files had before presets, each preset's
queries select what its server exports the way the preset says, and a file asking for what a preset
cannot judge (a percentile from cumulative sums, errors from a server without an error counter) is a
one-line error (exit 2 through the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.analysis.judge import judge, required_windows
from controlplane.analysis.presets import PRESETS, build_queries
from controlplane.analysis.queries import count_queries, selector, series_queries
from controlplane.analysis.slo import SLOSpec, default_slo, parse_slo_yaml
from controlplane.engine.types import Verdict
from controlplane.errors import InputError
from controlplane.ports import MetricObservation, VersionSample
from tests.serving_fixtures import docs_scrape_config

BOTH_OBJECTIVES = "objectives:\n  availability: {target: 99.9}\n  latency: {target: 95, threshold: 250ms}\n"
AVAILABILITY = "objectives:\n  availability: {target: 99.9}\n"


def slo(metrics: str = "", objectives: str = BOTH_OBJECTIVES, extra: str = "") -> SLOSpec:
    text = f"model: m\n{'metrics: ' + metrics if metrics else ''}\n{objectives}{extra}"
    return parse_slo_yaml(text, "slo.yaml")


def rendered(spec: SLOSpec, version: int = 3, role: str = "canary") -> dict[str, str]:
    sel = selector(spec.metrics, spec.model, version, role)
    return {**count_queries(spec, sel, 30).items(), **series_queries(spec, sel, 3).items()}


def test_the_default_preset_keeps_the_queries_files_had() -> None:
    expected = {
        "total": 'sum(increase(model_requests_total{model="m",version=~"v?3",role="canary"}[30s]))',
        "errors": 'sum(increase(model_requests_total{model="m",version=~"v?3",role="canary",outcome="error"}[30s]))',
        "latency_good": (
            'sum(increase(model_request_duration_seconds_bucket{model="m",version=~"v?3",role="canary",le="0.2"}[30s]))'
        ),
        "error_ratio": (
            '((sum(increase(model_requests_total{model="m",version=~"v?3",role="canary",outcome="error"}[3s]))) '
            'or vector(0)) / (sum(increase(model_requests_total{model="m",version=~"v?3",role="canary"}[3s])))'
        ),
        "latency_ms": (
            "1000 * histogram_quantile(0.95, sum by (le) (increase("
            'model_request_duration_seconds_bucket{model="m",version=~"v?3",role="canary"}[3s])))'
        ),
    }
    assert rendered(default_slo("m")) == expected
    named = slo("{preset: controlplane}", BOTH_OBJECTIVES.replace("250ms", "200ms"))
    assert rendered(named) == expected and rendered(slo("", BOTH_OBJECTIVES.replace("250ms", "200ms"))) == expected


def test_the_default_presets_old_overrides_still_work() -> None:
    spec = slo("{requests: reqs_total, duration: lat_seconds, error_outcome: failed, labels: {model: name, outcome: status}}")
    q = rendered(spec)
    assert q["errors"] == 'sum(increase(reqs_total{name="m",version=~"v?3",role="canary",status="failed"}[30s]))'
    assert q["latency_good"].startswith("sum(increase(lat_seconds_bucket{")


@pytest.mark.parametrize(
    ("preset", "objectives", "reads"),
    [
        ("kserve", "objectives:\n  latency: {target: 95, threshold: 250ms}\n", ["request_predict_seconds_count{model_name"]),
        ("triton", AVAILABILITY, ["nv_inference_request_failure{model", "nv_inference_request_duration_us"]),
        ("vllm", BOTH_OBJECTIVES.replace("250ms", "500ms"), ['http_requests_total{rollout_model="m"', 'status="5xx"']),
        ("mlserver", BOTH_OBJECTIVES, ["model_infer_request_failure_total", 'path=~"/v2/models/.+/infer"']),
        ("torchserve", AVAILABILITY, ["ts_inference_requests_total{model_name", "Requests5XX{rollout_model"]),
        ("bentoml", BOTH_OBJECTIVES, ['http_response_code=~"5.."', "bentoml_service_request_duration_seconds_bucket"]),
    ],
)
def test_each_preset_reads_its_servers_metrics(preset: str, objectives: str, reads: list[str]) -> None:
    spec = slo(f"{{preset: {preset}}}", objectives)
    text = " ".join(rendered(spec).values())
    for name in reads:
        assert name in text
    stable = " ".join(rendered(spec, 2, "stable").values())
    assert 'role="canary"' not in stable and text != stable  # canary and stable select different series


def test_identify_modes_select_by_pod_labels_version_label_or_both() -> None:
    pods = selector(slo("{preset: triton, identify: pod-labels}", AVAILABILITY).metrics, "m", 3, "canary")
    assert pods.model == 'model="m",rollout_version=~"v?3",rollout_role="canary"'
    own = selector(slo("{preset: triton}", AVAILABILITY).metrics, "m", 3, "canary")
    assert (own.model, own.pod) == ('model="m",version=~"v?3"', None)
    both = selector(slo("{preset: triton, identify: both}", AVAILABILITY).metrics, "m", 3, "canary")
    assert both.model == 'model="m",version=~"v?3",rollout_role="canary"'
    renamed = slo("{preset: vllm, labels: {pod_model: app, pod_version: rev, role: track}}", AVAILABILITY)
    assert selector(renamed.metrics, "m", 3, "canary").pod == 'app="m",rev=~"v?3",track="canary"'


def test_several_counters_add_up_and_are_empty_only_when_all_are() -> None:
    total = build_queries(slo("{preset: triton}", AVAILABILITY).metrics).total
    assert total.count("nv_inference_request_success") == 2 and " + " in total and " or " in total


@pytest.mark.parametrize(
    ("metrics", "objectives", "extra", "message"),
    [
        ("{preset: nginx}", AVAILABILITY, "", "unknown preset 'nginx' (known: controlplane, kserve"),
        ("{preset: kserve}", AVAILABILITY, "", "preset kserve cannot judge errors: the ModelServer exports no error counter"),
        ("{preset: triton}", BOTH_OBJECTIVES, "", "preset triton has no latency histogram for a threshold SLO"),
        ("{preset: torchserve}", "objectives:\n  latency: {target: 95, threshold: 1s}\n", "", "no latency histogram"),
        ("{preset: triton}", AVAILABILITY, "canary: {compare: {latency: p95}}\n", "p95 needs a histogram; preset triton"),
        ("{preset: kserve, identify: version-label}", AVAILABILITY, "", "exports no version label: use identify: pod-labels"),
        ("{preset: vllm, identify: version-label}", AVAILABILITY, "", "exports no version label"),
        ("{preset: kserve, identify: both}", AVAILABILITY, "", "exports no version label"),
        ("{preset: torchserve, identify: version-label}", AVAILABILITY, "", "Requests5XX carry no model or version label"),
        ("{preset: triton, requests: x_total}", AVAILABILITY, "", "requests, labels.outcome and error_outcome are for"),
        ("{preset: kserve, errors: envoy}", AVAILABILITY, "", "'envoy' is not an error source of kserve (known: knative, istio)"),
        ("{preset: triton, identify: sideways}", AVAILABILITY, "", "must be one of pod-labels, version-label, both"),
        (
            "{preset: triton}",
            "objectives:\n  availability: {target: 99.9, errors_query: 'sum(increase(e{${pod_selector}}[${window}]))'}\n",
            "",
            "${pod_selector} needs relabelled pod labels",
        ),
    ],
)
def test_what_a_preset_cannot_judge_is_a_one_line_error(metrics: str, objectives: str, extra: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        slo(metrics, objectives, extra)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("slo.yaml: ")


def test_kserve_errors_from_the_pods_http_status_counter() -> None:
    q = rendered(slo("{preset: kserve, errors: knative}"))
    assert q["errors"] == (
        'sum(increase(revision_app_request_count{rollout_model="m",rollout_version=~"v?3",rollout_role="canary",'
        'response_code_class="5xx"}[30s]))'
    )
    assert q["latency_total"].startswith("sum(increase(request_predict_seconds_count{model_name=")
    istio = rendered(slo("{preset: kserve, errors: istio}"))["errors"]
    assert 'istio_requests_total{' in istio and 'reporter="destination",response_code=~"5.."' in istio


def test_empty_error_counts_read_as_zero_only_for_lazily_created_counters() -> None:
    assert default_slo("m").empty_errors_are_zero()
    assert not slo("{preset: triton}", AVAILABILITY).empty_errors_are_zero()
    assert not slo("{preset: mlserver}", AVAILABILITY).empty_errors_are_zero()
    custom = "objectives:\n  availability: {target: 99.9, errors_query: 'sum(increase(e{${selector}}[${window}]))'}\n"
    assert slo("{preset: triton}", custom).empty_errors_are_zero()  # the user's own counter: no such promise


def _pass_observation(spec: SLOSpec) -> tuple[MetricObservation, list[MetricObservation]]:
    windows = required_windows(spec, 1_700_000_000.0, 30.0)
    sample = VersionSample(requests=1200, errors=0, latency_good=1200, latencies_ms=(20.0,) * 10, error_ratios=(0.0,) * 10)
    primary = MetricObservation(windows[0], sample, sample)
    return primary, [MetricObservation(w, sample, None) for w in windows[1:]]


def test_a_pass_says_what_was_not_judged() -> None:
    spec = slo("{preset: kserve}", "objectives:\n  latency: {target: 95, threshold: 250ms}\n")
    primary, others = _pass_observation(spec)
    result = judge(spec, primary, others=others, step_duration_s=30.0)
    assert result.verdict == Verdict.PASS
    assert "NOT judged: errors" in result.reason
    assert result.evidence["not_judged"][0].startswith("errors: the ModelServer exports no error counter")
    assert result.evidence["metrics"] == {"preset": "kserve", "identify": "pod-labels"}


def test_every_preset_is_in_the_docs_table() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "slo.md").read_text()
    for name in PRESETS:
        assert f"| `{name}` |" in docs


def _ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          timeout=60)


def test_ctl_slo_validate_explains_and_refuses(tmp_path: Path) -> None:
    good = tmp_path / "triton.yaml"
    good.write_text(f"model: m\nmetrics: {{preset: triton}}\n{AVAILABILITY}")
    proc = _ctl("slo", "validate", str(good))
    assert proc.returncode == 0, proc.stderr
    assert "metrics: preset triton (NVIDIA Triton Inference Server), identify version-label" in proc.stdout
    assert "judged: comparison: latency mean" in proc.stdout
    assert "NOT judged: latency SLO and percentiles: cumulative nv_inference_request_duration_us" in proc.stdout
    bad = tmp_path / "summary.yaml"
    bad.write_text(f"model: m\nmetrics: {{preset: torchserve}}\n{AVAILABILITY}canary: {{compare: {{latency: p99}}}}\n")
    refused = _ctl("slo", "validate", str(bad))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "p99 needs a histogram" in refused.stderr
    usage = _ctl("slo", "validate", str(good), "--prometheus-url", "http://127.0.0.1:9")
    assert usage.returncode == 2 and "needs --canary" in usage.stderr
    down = _ctl("slo", "validate", str(good), "--prometheus-url", "http://127.0.0.1:9", "--canary", "3")
    assert down.returncode == 2 and down.stderr.startswith("error: Prometheus http://127.0.0.1:9: unreachable")


def test_validate_warns_of_a_threshold_without_a_bucket(tmp_path: Path) -> None:
    path = tmp_path / "vllm.yaml"
    path.write_text("model: m\nmetrics: {preset: vllm}\nobjectives:\n  latency: {target: 95, threshold: 200ms}\n")
    proc = _ctl("slo", "validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: 0.2s is not one of the server's default bucket bounds (0.3, 0.5" in proc.stdout


def test_the_docs_relabelling_snippet_is_a_valid_prometheus_config(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery: the rules are checked on static targets
    (tests/integration/test_presets_replayed_formats.py runs them on a real Prometheus)."""
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (apt-get install prometheus)")
    snippet = docs_scrape_config()
    sd = "    kubernetes_sd_configs:\n      - role: pod\n"
    assert sd in snippet
    config = tmp_path / "prometheus.yml"
    config.write_text(snippet.replace(sd, '    static_configs:\n      - targets: ["127.0.0.1:9"]\n'))
    proc = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_presets_rules_pass_promtool(preset: str, tmp_path: Path) -> None:
    import shutil

    from controlplane.analysis.rules import render_rules

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (apt-get install prometheus)")
    metrics = f"{{preset: {preset}{', errors: istio' if preset == 'kserve' else ''}}}"
    has_histogram = PRESETS[preset].histogram is not None
    spec = slo(metrics, BOTH_OBJECTIVES.replace("250ms", "500ms") if has_histogram else AVAILABILITY)
    path = tmp_path / "rules.yaml"
    path.write_text(render_rules(spec, {o.failure_mode: "runbooks/x.md" for o in spec.objectives}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
