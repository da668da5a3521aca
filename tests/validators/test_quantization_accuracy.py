"""quantization-accuracy on real all-MiniLM-L6-v2 variants (tests/validators/partb_models.py)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from controlplane.errors import InputError
from tests.validators import partb_models
from validators import quantization_accuracy as qa
from validators.result import ModelUnderTest, Status
from validators.settings import QuantizationSettings, Settings

pytestmark = pytest.mark.slow

LABELLED = {
    "weather": ["Heavy rain is expected tomorrow.", "It will be sunny and warm all weekend.",
                "A storm is moving in from the west.", "Snow fell overnight across the region.",
                "The forecast calls for strong winds.", "Temperatures will drop below freezing tonight."],
    "food": ["This pasta recipe needs fresh basil.", "The bakery sells warm croissants every morning.",
             "Add salt and pepper to the soup.", "We ordered pizza with extra cheese.",
             "The chef grilled the salmon perfectly.", "Chocolate cake is my favourite dessert."],
    "code": ["The function returns a list of integers.", "Fix the null pointer exception in the parser.",
             "Run the unit tests before merging the branch.", "The compiler reports a type error on line 12.",
             "Refactor the class to remove duplicated code.", "The API returns JSON with a status field."],
}


def _check(candidate: ModelUnderTest, reference: ModelUnderTest | None, tmp_path: Path, **overrides: object):
    settings = Settings(quantization_accuracy=QuantizationSettings(**overrides))  # type: ignore[arg-type]
    return qa.check(candidate, reference, settings, workdir=tmp_path)


def test_per_channel_int8_passes(tmp_path: Path) -> None:
    result = _check(partb_models.quantized("int8-per-channel"), partb_models.healthy(), tmp_path)
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["cosine_mean"] >= 0.985
    assert result.metrics["cosine_p1"] >= 0.95
    assert result.metrics["nonfinite_values"] == 0
    assert json.loads(result.artifacts[0].read_text())["per_text"][0]["cosine"] == result.metrics["cosine_min"]


def test_per_tensor_int8_fails(tmp_path: Path) -> None:
    result = _check(partb_models.quantized("int8-per-tensor"), partb_models.healthy(), tmp_path)
    assert result.status is Status.FAILED
    assert result.metrics["cosine_mean"] < 0.98
    assert any("mean cosine" in f for f in result.findings)


def test_fp16_passes(tmp_path: Path) -> None:
    result = _check(partb_models.quantized("fp16"), partb_models.healthy(), tmp_path)
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["cosine_min"] > 0.999


def test_healthy_fp32_passes_with_or_without_a_baseline(tmp_path: Path) -> None:
    healthy = partb_models.healthy()
    for reference in (healthy, None):
        result = _check(healthy, reference, tmp_path)
        assert result.status is Status.PASSED
        assert "not quantized" in result.findings[0]


def test_reference_that_is_not_the_source_is_an_error(tmp_path: Path) -> None:
    int8, healthy = partb_models.quantized("int8-per-channel"), partb_models.healthy()
    other = replace(healthy, ref="minilm:v9", tags={**healthy.tags, "weights.sha256": "b" * 64})
    result = _check(replace(int8, tags={**int8.tags, "weights.sha256": "a" * 64}), other, tmp_path)
    assert result.status is Status.ERROR
    assert "not the fp32 source" in result.findings[0]


def test_labelled_file_reports_task_metrics(tmp_path: Path) -> None:
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": k}) + "\n" for k, ts in LABELLED.items() for t in ts))
    result = _check(partb_models.quantized("int8-per-channel"), partb_models.healthy(), tmp_path,
                    labelled_file=str(path))
    assert result.status is Status.PASSED, result.findings
    assert result.metrics["top1_agreement"] >= 0.95
    assert result.metrics["task_metric_reference"] >= 0.8
    assert abs(result.metrics["task_metric_delta"]) <= 0.02


def test_quantized_without_source_is_an_error_not_a_pass(tmp_path: Path) -> None:
    result = _check(partb_models.quantized("int8-per-channel"), None, tmp_path)
    assert result.status is Status.ERROR
    assert "minilm:v1" in result.findings[0]  # names the lineage.source


def test_bad_inputs_are_input_errors(tmp_path: Path) -> None:
    healthy, int8 = partb_models.healthy(), partb_models.quantized("int8-per-channel")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(InputError, match="empty"):
        _check(int8, healthy, tmp_path, corpus_file=str(empty))
    with pytest.raises(InputError, match="does not exist"):
        _check(int8, healthy, tmp_path, corpus_file=str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="not an fp32 source"):
        _check(partb_models.quantized("fp16"), int8, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    config = json.loads((healthy.model_dir / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    shutil.copy2(healthy.model_dir / "tokenizer.json", other / "tokenizer.json")
    with pytest.raises(InputError, match="not the same architecture"):
        _check(int8, ModelUnderTest("other:v1", other, healthy.onnx_path), tmp_path)
    with pytest.raises(InputError, match="device"):
        qa.check(int8, healthy, Settings(), device="tpu", workdir=tmp_path)


def test_register_quantizes_per_channel_without_the_preprocessing_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from controlplane.models import quantize_int8

    caplog.set_level(logging.DEBUG)
    out = quantize_int8(partb_models.healthy().onnx_path, tmp_path / "model.onnx")
    scales = [t for t in onnx.load(str(out)).graph.initializer if t.name.endswith("_scale") and "MatMul" in t.name]
    assert scales and all(len(t.dims) == 1 and t.dims[0] > 1 for t in scales)  # one scale per output channel
    assert "pre-processing" not in caplog.text
    assert "pre-processing" not in capfd.readouterr().err
