"""Real all-MiniLM-L6-v2 variants for the quantization-accuracy and long-seq-memory tests and the
validators benchmark, built straight from the packaged model (no MLflow) and cached under
``.cache/validators-b/`` (gitignored) between runs.

Each artifact is built into a temporary name and renamed into place, so a killed run leaves no
half-written cache entry.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from validators.result import ModelUnderTest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("VALIDATORS_B_CACHE", ROOT / ".cache" / "validators-b"))
CUT_POSITIONS = 64  # the broken variant keeps 64 of 512 position embeddings


def _hf_files(src: Path, dst: Path) -> None:
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy2(src / name, dst / name)


def _fp32(name: str, model_dir: Path) -> Path:
    from controlplane.models import export_onnx

    out = CACHE / name / "model.onnx"
    if not out.is_file():
        export_onnx(model_dir, out)
    return out


def healthy() -> ModelUnderTest:
    """The packaged fp32 model with its ONNX export (HF weights included)."""
    from controlplane.models import minilm_dir

    src = minilm_dir()
    onnx_path = _fp32("fp32", src)
    return ModelUnderTest("minilm:v1", src, onnx_path, {"quantization": "none"})


def quantized(scheme: str) -> ModelUnderTest:
    """``int8-per-channel``, ``int8-per-tensor`` or ``fp16`` derived from :func:`healthy`."""
    from controlplane.models import convert_fp16, quantize_int8

    source = healthy()
    folder = CACHE / scheme
    out = folder / "model.onnx"
    if not out.is_file():
        if scheme == "fp16":
            convert_fp16(source.onnx_path, out)
        else:
            quantize_int8(source.onnx_path, out, per_channel=scheme == "int8-per-channel")
    _hf_files(source.model_dir, folder)  # a quantized version is registered without the HF weights
    version = {"int8-per-channel": 2, "int8-per-tensor": 3, "fp16": 4}[scheme]
    return ModelUnderTest(f"minilm:v{version}", folder, out, {"quantization": scheme, "lineage.source": source.ref})


def cut_positions() -> ModelUnderTest:
    """Position embeddings cut to :data:`CUT_POSITIONS`; the tokenizer still truncates at 128."""
    from controlplane.models import cut_positions as cut
    from controlplane.models import minilm_dir

    folder = CACHE / "cut-positions"
    if not (folder / "config.json").is_file():
        cut(minilm_dir(), folder, CUT_POSITIONS)
    onnx_path = _fp32("cut-positions-onnx", folder)
    return ModelUnderTest("minilm:v5", folder, onnx_path, {"quantization": "none"})
