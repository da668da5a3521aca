"""Register a Hugging Face-format model directory as a new version: export ONNX, optionally
quantize, tag with architecture and hashes, log to the registry. All-or-nothing."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from controlplane.app.context import Context
from controlplane.errors import InputError
from controlplane.extras import require
from controlplane.ports import ModelVersion, NewVersion
from controlplane.refs import check_name, parse_versioned_ref

QUANTIZE_CHOICES = ("none", "int8")
EXTRA_FILES = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


@dataclass(frozen=True)
class Registered:
    version: ModelVersion
    lineage: str | None


def register_model(
    ctx: Context, name: str, model_dir: Path, quantize: str = "none", source: str | None = None
) -> Registered:
    require("validate", "ctl register (ONNX export)")
    from controlplane import models
    from controlplane.models.hf import weights_file

    check_name(name)
    if quantize not in QUANTIZE_CHOICES:
        raise InputError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    model_dir = Path(model_dir)
    arch = models.check_model_dir(model_dir)
    weights = weights_file(model_dir)
    weights_sha = models.sha256_file(weights) if weights else "none"
    lineage = _lineage(ctx, name, weights_sha, source) if quantize != "none" else None
    work = Path(tempfile.mkdtemp(prefix="ctl-register-"))
    try:
        fp32 = models.export_onnx(model_dir, work / "model.fp32.onnx")
        onnx_path = work / "model.onnx"
        if quantize == "int8":
            models.quantize_int8(fp32, onnx_path, per_channel=True)
        else:
            fp32.rename(onnx_path)
        files: dict[str, Path] = {
            "model.onnx": onnx_path,
            "tokenizer.json": model_dir / "tokenizer.json",
            "config.json": model_dir / "config.json",
        }
        files.update({n: model_dir / n for n in EXTRA_FILES if (model_dir / n).is_file()})
        if weights is not None and quantize == "none":
            files[weights.name] = weights  # the HF weights, for checks that read attention in torch
        tags = {
            **arch.to_tags(),
            "tokenizer.sha256": models.tokenizer_hash(model_dir / "tokenizer.json"),
            "onnx.sha256": models.sha256_file(onnx_path),
            "weights.sha256": weights_sha,
            "quantization": "int8-per-channel" if quantize == "int8" else "none",
        }
        if lineage:
            tags["lineage.source"] = lineage
        version = ctx.registry.register(
            NewVersion(name=name, files=files, tags=tags, params={"model_dir": model_dir.name, "quantize": quantize})
        )
        return Registered(version, lineage)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _lineage(ctx: Context, name: str, weights_sha: str, source: str | None) -> str:
    """The fp32 version a quantized variant derives from: ``--source`` or the one with the same weights."""
    if source is not None:
        ref = parse_versioned_ref(source)
        assert ref.version is not None
        ctx.registry.get_version(ref.name, ref.version)
        return str(ref)
    if name in ctx.registry.list_models():
        for mv in sorted(ctx.registry.list_versions(name), key=lambda v: -v.version):
            if mv.tags.get("weights.sha256") == weights_sha and mv.tags.get("quantization", "none") == "none":
                return mv.ref
    raise InputError(
        f"no fp32 version of {name!r} registered from these weights; register it first or pass --source NAME:vN"
    )
