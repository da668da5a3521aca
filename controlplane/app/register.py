"""Register a model as a new version, all-or-nothing: a Hugging Face-format directory (export ONNX,
optionally quantize) or a prebuilt ONNX (stored byte for byte, external data included), tagged with
architecture, numeric format, hashes and lineage."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controlplane.app.context import Context
from controlplane.errors import InputError
from controlplane.extras import require
from controlplane.ports import ModelVersion, NewVersion
from controlplane.refs import check_name, parse_versioned_ref

if TYPE_CHECKING:
    from controlplane.models.hf import Architecture

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


def register_prebuilt(
    ctx: Context, name: str, onnx: Path, *, tokenizer: Path | None = None, config: Path | None = None,
    source: str | None = None,
) -> Registered:
    """Register an ONNX encoder exported elsewhere (a ``.onnx`` file, or a folder holding ``model.onnx``
    beside its tokenizer files) exactly as given; InputError (exit 2, nothing registered) for a graph
    the encoder cannot drive, a tokenizer that does not fit it, or a ``--source`` of another architecture."""
    require("validate", "ctl register --onnx")
    from controlplane import models
    from controlplane.models.hf import architecture_from_config, read_json
    from controlplane.models.prebuilt import inspect_prebuilt

    check_name(name)
    onnx_file, folder = _onnx_location(Path(onnx))
    tok_file = _tokenizer_location(tokenizer, folder, onnx_file)
    models.load_tokenizer(tok_file)
    config_file = Path(config) if config is not None else (folder / "config.json" if (folder / "config.json").is_file() else None)
    config_arch = architecture_from_config(read_json(config_file, "config"), f"config {config_file}") if config_file else None
    info = inspect_prebuilt(onnx_file)
    arch = _prebuilt_architecture(info.graph_arch, config_arch, onnx_file)
    models.check_tokenizer_fits(tok_file, info.embedding_rows or arch.vocab_size, onnx_file.name)
    lineage = _prebuilt_lineage(ctx, source, arch, info.format.quantization) if source else None
    files: dict[str, Path] = dict(info.files)
    extra = {"tokenizer.json": tok_file, **({"config.json": config_file} if config_file else {}),
             **{n: tok_file.parent / n for n in EXTRA_FILES if (tok_file.parent / n).is_file()}}
    clash = sorted(set(files) & set(extra))
    if clash:
        raise InputError(f"{onnx_file.name} keeps external data in {clash[0]}, a name the tokenizer or config files need")
    files.update(extra)
    tags = {
        **arch.to_tags(),
        "arch.source": "config" if config_arch else "graph",
        **info.signature.to_tags(),
        "onnx.sha256": models.sha256_file(onnx_file),
        "onnx.files.sha256": models.sha256_files(dict(info.files)),
        "onnx.external_data": ",".join(sorted(set(info.files) - {"model.onnx"})) or "none",
        "onnx.format": info.format.name,
        "onnx.attention": info.attention,
        "onnx.prebuilt": "true",
        "quantization": info.format.quantization,
        "tokenizer.sha256": models.tokenizer_hash(tok_file),
    }
    if lineage:
        tags["lineage.source"] = lineage
    params: dict[str, Any] = {"onnx": onnx_file.name, "format_evidence": info.format.evidence[:250]}
    version = ctx.registry.register(NewVersion(name=name, files=files, tags=tags, params=params))
    return Registered(version, lineage)


def _onnx_location(onnx: Path) -> tuple[Path, Path]:
    if onnx.is_dir():
        if not (onnx / "model.onnx").is_file():
            raise InputError(f"directory {onnx} has no model.onnx")
        return onnx / "model.onnx", onnx
    if not onnx.is_file():
        raise InputError(f"ONNX file {onnx} does not exist")
    return onnx, onnx.parent


def _tokenizer_location(tokenizer: Path | None, folder: Path, onnx_file: Path) -> Path:
    if tokenizer is None:
        if not (folder / "tokenizer.json").is_file():
            raise InputError(f"no tokenizer.json beside {onnx_file}: pass --tokenizer PATH")
        return folder / "tokenizer.json"
    tok = Path(tokenizer)
    tok = tok / "tokenizer.json" if tok.is_dir() else tok
    if not tok.is_file():
        raise InputError(f"tokenizer file {tok} does not exist")
    return tok


def _prebuilt_architecture(graph: Architecture, config: Architecture | None, onnx_file: Path) -> Architecture:
    """The config's architecture, checked against what the graph shows; else the graph's own."""
    if config is None:
        unknown = [k for k, v in (("heads", graph.heads), ("max positions", graph.max_positions),
                                  ("vocabulary", graph.vocab_size)) if not v]
        if unknown:
            raise InputError(f"cannot read the {' and '.join(unknown)} from {onnx_file.name}: pass --config config.json")
        return graph
    for what, mine, theirs in (("layers", config.layers, graph.layers), ("hidden size", config.hidden, graph.hidden),
                               ("heads", config.heads, graph.heads)):
        if theirs and mine != theirs:
            raise InputError(f"the config says {mine} {what} but {onnx_file.name} has {theirs}: not this graph's config")
    return config


def _prebuilt_lineage(ctx: Context, source: str, arch: Architecture, quantization: str) -> str:
    """``--source NAME:vN``: the version must exist, be the same architecture, and (for a quantized
    graph) be fp32, so quantization-accuracy can compare the two."""
    from controlplane.models.hf import architecture_from_tags

    ref = parse_versioned_ref(source)
    assert ref.version is not None
    mv = ctx.registry.get_version(ref.name, ref.version)
    theirs = architecture_from_tags(mv.tags, f"--source {ref}")
    if not arch.same_shape(theirs):
        raise InputError(f"--source {ref} is a different architecture ({theirs.describe()}) from this graph ({arch.describe()})")
    if quantization != "none" and mv.tags.get("quantization", "none") != "none":
        raise InputError(f"--source {ref} is {mv.tags['quantization']}, not the fp32 version this graph derives from")
    return str(ref)
