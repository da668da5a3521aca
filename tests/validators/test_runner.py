"""The runner's own rules, in process: check selection, and a check that raises is an error, never a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import InputError
from validators.result import ModelUnderTest, Status, ValidationReport
from validators.runner import CHECKS, parse_checks, resolve_device, run_one
from validators.settings import HeadCollapseSettings, Settings


def test_parse_checks_keeps_canonical_order() -> None:
    assert parse_checks(None) == list(CHECKS)
    assert parse_checks(["head-collapse,tokenizer-parity"]) == ["tokenizer-parity", "head-collapse"]
    assert parse_checks(["head-collapse", " tokenizer-parity "]) == ["tokenizer-parity", "head-collapse"]
    with pytest.raises(InputError, match="unknown check 'vibes'"):
        parse_checks(["vibes"])
    with pytest.raises(InputError, match="no checks selected"):
        parse_checks([" , "])


def test_unknown_device() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")


def test_input_error_inside_a_check_is_an_error_result(
    variants: dict[str, ModelUnderTest], broken_files: dict[str, Path], tmp_path: Path
) -> None:
    cand = ModelUnderTest("local:corrupt", variants["healthy"].model_dir, broken_files["corrupt"])
    result = run_one("head-collapse", cand, None, Settings(), "cpu", tmp_path / "hc")
    assert result.status is Status.ERROR
    assert result.details["error"] == "input"
    assert "not a valid ONNX model" in result.findings[0]
    assert not ValidationReport("local:corrupt", None, [result]).passed


def test_unexpected_exception_inside_a_check_is_an_error_result(variants: dict[str, ModelUnderTest], tmp_path: Path) -> None:
    bad = Settings(head_collapse=HeadCollapseSettings(max_probe_tokens="many"))  # type: ignore[arg-type]
    result = run_one("head-collapse", variants["healthy"], None, bad, "cpu", tmp_path / "hc")
    assert result.status is Status.ERROR
    assert result.details["error"] == "TypeError"
    assert result.details["seconds"] >= 0


def test_empty_report_is_not_a_pass() -> None:
    assert ValidationReport("m:v1", None, []).status is Status.ERROR
