"""Real broken or derived variants of an HF encoder dir, written as new HF dirs.

Used by the demo and the test fixtures; each variant is the failure a validator is named after:

* ``collapse_heads``: one layer's heads share one query/key projection → identical attention maps;
* ``cut_positions``: position embeddings cut to ``n`` rows (config says ``n``) → inputs longer than
  ``n`` tokens fail at inference, while the tokenizer still declares its old maximum;
* ``change_normalizer``: the tokenizer's normalizer differs (lowercasing toggled by default).

Weights are edited with safetensors + numpy (no torch). Every builder writes into a temporary
sibling and renames it into place, so a failure leaves no half-written ``dst``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.errors import InputError
from controlplane.models.hf import check_model_dir, read_json, weights_file


@contextmanager
def _new_dir(src: Path, dst: Path) -> Iterator[Path]:
    """A copy of ``src`` to edit; renamed to ``dst`` (replacing it) when the block succeeds."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        yield tmp
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _edit_weights(model_dir: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    from safetensors.numpy import load_file, save_file

    path = weights_file(model_dir)
    assert path is not None  # check_model_dir ran first
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _find(tensors: dict[str, Any], pattern: str, what: str) -> str:
    rx = re.compile(rf"(^|\.){pattern}$")
    names = [k for k in tensors if rx.search(k)]
    if len(names) != 1:
        raise InputError(f"cannot locate {what} in the weights (BERT-style names expected, found {len(names)})")
    return names[0]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def collapse_heads(src: Path | str, dst: Path | str, layer: int) -> Path:
    """Every head of ``layer`` gets head 0's query and key projection: identical attention maps."""
    src, dst = Path(src), Path(dst)
    arch = check_model_dir(src)
    if not 0 <= layer < arch.layers:
        raise InputError(f"layer {layer} out of range: the model has {arch.layers} layers")
    d = arch.head_dim

    def edit(tensors: dict[str, np.ndarray]) -> None:
        for proj in ("query", "key"):
            for kind in ("weight", "bias"):
                name = _find(tensors, rf"layer\.{layer}\.attention\.self\.{proj}\.{kind}", f"layer {layer} {proj}.{kind}")
                t = tensors[name].copy()
                t[:] = np.concatenate([t[:d]] * arch.heads, axis=0)  # rows are grouped by head
                tensors[name] = t

    with _new_dir(src, dst) as tmp:
        _edit_weights(tmp, edit)
    return dst


def cut_positions(src: Path | str, dst: Path | str, n: int) -> Path:
    """Keep ``n`` position embeddings (config ``max_position_embeddings = n``); tokenizer unchanged."""
    src, dst = Path(src), Path(dst)
    arch = check_model_dir(src)
    if not 2 <= n < arch.max_positions:
        raise InputError(f"cut_positions needs 2 <= n < {arch.max_positions}, got {n}")

    def edit(tensors: dict[str, np.ndarray]) -> None:
        name = _find(tensors, r"embeddings\.position_embeddings\.weight", "position embeddings")
        tensors[name] = np.ascontiguousarray(tensors[name][:n])
        for key in [k for k in tensors if k.endswith("embeddings.position_ids")]:
            tensors[key] = np.ascontiguousarray(tensors[key][..., :n])

    with _new_dir(src, dst) as tmp:
        _edit_weights(tmp, edit)
        config = read_json(tmp / "config.json", "config")
        config["max_position_embeddings"] = n
        _write_json(tmp / "config.json", config)
    return dst


def change_normalizer(src: Path | str, dst: Path | str, *, lowercase: bool | None = None,
                      strip_accents: bool | None = None) -> Path:
    """Same weights, tokenizer.json with a different normalizer (default: lowercasing toggled)."""
    src, dst = Path(src), Path(dst)
    check_model_dir(src)
    with _new_dir(src, dst) as tmp:
        tok = read_json(tmp / "tokenizer.json", "tokenizer")
        norm = tok.get("normalizer")
        if not isinstance(norm, dict) or norm.get("type") != "BertNormalizer":
            raise InputError(f"change_normalizer supports BertNormalizer tokenizers, found {norm and norm.get('type')}")
        before = dict(norm)
        norm["lowercase"] = (not norm.get("lowercase", True)) if lowercase is None else lowercase
        if strip_accents is not None:
            norm["strip_accents"] = strip_accents
        if norm == before:
            raise InputError("change_normalizer: the requested normalizer equals the current one")
        _write_json(tmp / "tokenizer.json", tok)
        config_path = tmp / "tokenizer_config.json"
        if config_path.is_file():
            config = read_json(config_path, "tokenizer config")
            config["do_lower_case"] = norm["lowercase"]
            _write_json(config_path, config)
    return dst
