"""long-seq-memory on real all-MiniLM-L6-v2 variants: real child-process probes on CPU, torch on CUDA."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from controlplane.errors import InputError
from tests.validators import partb_models
from validators import long_seq_memory as lsm
from validators.memory_fit import Curve, fit
from validators.memory_probe import Probe
from validators.result import CheckResult, ModelUnderTest, Status
from validators.settings import LongSeqMemorySettings, Settings

MIB = 1 << 20


def _check(candidate: ModelUnderTest, tmp_path: Path, device: str = "cpu", **overrides: object) -> CheckResult:
    settings = Settings(long_seq_memory=LongSeqMemorySettings(**overrides))  # type: ignore[arg-type]
    return lsm.check(candidate, None, settings, device=device, workdir=tmp_path)


@pytest.mark.slow
def test_healthy_passes_with_few_probes(tmp_path: Path) -> None:
    result = _check(partb_models.healthy(), tmp_path)
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["probes"] == 3  # two fitting probes (model-loaded memory comes free), the declared config
    assert result.metrics["declared_seq_len"] == 128  # tokenizer.json truncation
    assert result.metrics["declared_batch"] == 64
    measured, predicted = result.metrics["declared_peak_bytes"], result.metrics["declared_predicted_bytes"]
    assert abs(predicted - measured) / measured < 0.5
    png = next(p for p in result.artifacts if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cut_position_embeddings_fail_before_any_probe(tmp_path: Path) -> None:
    """How long this takes (no probe at all) is in benchmarks/fail_fast.py, beside a full check."""
    result = _check(partb_models.cut_positions(), tmp_path)
    assert result.status is Status.FAILED
    assert "exceeds the model's 64 position embeddings" in result.findings[0]
    assert "probes" not in result.metrics and not result.details.get("probes")  # no probe process ran


def test_declared_length_from_settings_and_tags(tmp_path: Path) -> None:
    healthy = partb_models.healthy()
    result = _check(healthy, tmp_path, max_seq_len=1024)
    assert result.status is Status.FAILED and "from settings" in result.findings[0]
    tagged = replace(healthy, tags={**healthy.tags, "serving.max_seq_len": "600", "serving.max_batch": "8"})
    result = _check(tagged, tmp_path)
    assert result.status is Status.FAILED and "tag serving.max_seq_len" in result.findings[0]
    assert result.metrics["declared_batch"] == 8


def test_budget_below_the_model_itself_fails(tmp_path: Path) -> None:
    result = _check(partb_models.healthy(), tmp_path, budget_bytes=120 * MIB)
    assert result.status is Status.FAILED
    assert result.metrics["probes"] == 1  # the probe was killed above the budget; nothing else ran
    assert result.details["probes"][0]["outcome"] == "over-budget"


@pytest.mark.slow
def test_small_budget_fails_and_predicted_maximum_is_verified(tmp_path: Path) -> None:
    result = _check(partb_models.healthy(), tmp_path, budget_bytes=400 * MIB)
    assert result.status is Status.FAILED, result.findings
    assert "over the" in result.findings[0]
    assert result.metrics["probes"] <= 6
    predicted, measured = result.metrics["predicted_max_batch"], result.metrics["measured_max_batch"]
    assert measured > 0 and abs(predicted - measured) / measured < 0.25


def test_bad_settings_and_devices_are_input_errors(tmp_path: Path) -> None:
    healthy = partb_models.healthy()
    for bad in ({"budget_fraction": 1.5}, {"headroom": -1.0}, {"max_batch": 0}, {"max_probes": 2}):
        with pytest.raises(InputError):
            _check(healthy, tmp_path, **bad)
    with pytest.raises(InputError, match="unknown device"):
        _check(healthy, tmp_path, device="tpu")
    with pytest.raises(InputError, match="not an integer"):
        _check(replace(healthy, tags={"serving.max_batch": "lots"}), tmp_path)


def test_cuda_without_a_gpu_is_an_input_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(InputError, match="no CUDA device"):
        _check(partb_models.healthy(), tmp_path, device="cuda")


def test_fit_recovers_a_known_curve() -> None:
    truth = Curve(200 * MIB, 40_000.0, 150.0)
    points = [(1, 8), (4, 512), (32, 128), (64, 128)]
    probes = [Probe(b, s, truth.peak(b, s), 0.0, "ok") for b, s in points]
    curve, residual = fit(probes)
    assert residual < 1e-6
    assert curve.max_batch(128, 2 << 30) == truth.max_batch(128, 2 << 30)
    assert curve.max_seq(8, 1 << 30, 512) == truth.max_seq(8, 1 << 30, 512)


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_probes_pass_on_healthy_and_catch_oom(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    result = _check(partb_models.healthy(), tmp_path, device="cuda")
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["probes"] <= 6
    assert "measured_max_batch" in result.metrics  # verification is on by default on CUDA
    huge = _check(partb_models.healthy(), tmp_path, device="cuda", max_seq_len=512, max_batch=1 << 20)
    assert huge.status is Status.FAILED  # predicted over budget or OOM caught, never a crash


def test_corrupt_onnx_is_an_input_error_not_a_crash(tmp_path: Path) -> None:
    healthy = partb_models.healthy()
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"this is not an ONNX graph")
    with pytest.raises(InputError, match="not a valid ONNX model"):
        _check(replace(healthy, onnx_path=broken), tmp_path / "work")
