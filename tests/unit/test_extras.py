"""The extras guard: the hint names the extra (and its CUDA twin); two onnxruntimes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane import extras
from controlplane.errors import NotAvailableError


def test_hint_names_the_extra_and_its_cuda_twin() -> None:
    assert extras.install_hint("controller") == "pip install 'attn-controlplane[controller]'"
    assert extras.install_hint("serve") == (
        "pip install 'attn-controlplane[serve]' (on a CUDA machine: pip install 'attn-controlplane[serve-gpu]')")


def test_every_group_is_an_extra_of_the_project() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = set(pyproject["project"]["optional-dependencies"])
    assert set(extras.GROUPS) <= declared and set(extras.GPU_TWIN.values()) <= declared


def test_both_onnxruntimes_installed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist_info = tmp_path / "onnxruntime_gpu-1.31.1.dist-info"  # what `pip install onnxruntime-gpu` adds
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.31.1\n")
    extras.require("serve", "ctl serve")  # this environment: the CPU onnxruntime only
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(NotAvailableError, match="onnxruntime and onnxruntime-gpu are both installed"):
        extras.require("serve", "ctl serve")
