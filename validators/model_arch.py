"""A model under test's architecture: from its ``config.json`` when it has one, else from the
``arch.*`` tags ``ctl register --onnx`` derived from the graph (a prebuilt ONNX registered without a config)."""

from __future__ import annotations

from typing import Any

from controlplane.models.hf import Architecture, architecture_from_config, architecture_from_tags, read_json
from controlplane.models.hf import usable_positions as _usable
from validators.result import ModelUnderTest


def config(model: ModelUnderTest) -> dict[str, Any]:
    """``config.json`` of the version, or ``{}`` when it was registered without one."""
    path = model.model_dir / "config.json"
    return read_json(path, "config") if path.is_file() else {}


def architecture(model: ModelUnderTest) -> Architecture:
    cfg = config(model)
    if cfg:
        return architecture_from_config(cfg, f"{model.ref} config.json")
    return architecture_from_tags(model.tags, model.ref)


def usable_positions(model: ModelUnderTest) -> int:
    """Positions an input may use (RoBERTa-style models: ``max_position_embeddings - 2``)."""
    return _usable(architecture(model), config(model))
