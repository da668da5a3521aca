"""From a model reference to a verified, warmed-up encoder.

``resolve_and_fetch`` (before the server listens; every failure is one line, exit 2): parse the
reference, find the version in the registry ``ctl`` uses, download its files (the shared model cache),
and check ``model.onnx`` against the version's ``onnx.sha256`` tag. ``load`` (after the server
listens, so the pod is live while it loads): the onnxruntime session (CUDA when present) and a warm-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from controlplane.errors import InputError
from controlplane.ports import ModelVersion
from controlplane.serve.inference import Embedder
from controlplane.serve.options import PROVIDERS_ENV

ONNX_SHA_TAG = "onnx.sha256"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[1-9][0-9]*)|@(?P<alias>[^/]+))$")


@dataclass(frozen=True)
class Fetched:
    version: ModelVersion
    folder: Path


def to_ref(text: str) -> str:
    """``models:/NAME/N`` → ``NAME:vN``, ``models:/NAME@alias`` → ``NAME@alias``; others unchanged."""
    text = text.strip()
    match = _MODELS_URI.match(text)
    if match:
        return f"{match['name']}:v{match['version']}" if match["version"] else f"{match['name']}@{match['alias']}"
    if text.startswith("models:"):
        raise InputError(f"invalid model URI {text!r}: expected models:/NAME/N or models:/NAME@alias")
    return text


def resolve_and_fetch(model_ref: str) -> Fetched:
    from controlplane.app.context import open_context
    from controlplane.app.models import resolve
    from controlplane.models.hashing import sha256_file

    ctx = open_context()
    mv = resolve(ctx, to_ref(model_ref))
    expected = mv.tags.get(ONNX_SHA_TAG, "").strip().lower()
    if not expected:
        raise InputError(f"{mv.ref} has no {ONNX_SHA_TAG} tag: register it with `ctl register` so its ONNX can be checked")
    folder = ctx.registry.fetch(mv.name, mv.version)
    onnx_path = folder / "model.onnx"
    if not onnx_path.is_file():
        raise InputError(f"{mv.ref} has no model.onnx among its files")
    actual = sha256_file(onnx_path)
    if actual != expected:
        raise InputError(
            f"refusing to serve {mv.ref}: model.onnx sha256 {actual[:12]}… does not match its {ONNX_SHA_TAG} tag {expected[:12]}…"
        )
    return Fetched(mv, folder)


def providers(env: dict[str, str] | None = None) -> list[str]:
    """``$SERVE_PROVIDERS`` (comma-separated), else CUDA when onnxruntime has it, then CPU."""
    import onnxruntime as ort

    env = dict(os.environ if env is None else env)
    wanted = [p.strip() for p in env.get(PROVIDERS_ENV, "").split(",") if p.strip()]
    if wanted:
        return wanted
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def load(fetched: Fetched, truncate: bool, threads: int | None) -> Embedder:
    """Session and warm-up; raises InputError or InferenceFailed when the model cannot serve."""
    from controlplane.models.encoder import OnnxEncoder

    encoder = OnnxEncoder(fetched.folder, providers=providers(), threads=threads)
    embedder = Embedder(encoder, truncate=truncate)
    embedder.warm_up()
    return embedder
