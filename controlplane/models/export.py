"""Hugging Face (transformers 5) encoder → ONNX, verified against torch before it is handed out.

Graph contract (what every consumer of ``model.onnx`` in this project relies on):

* inputs ``input_ids`` and ``attention_mask``, int64, shape ``[batch, sequence]`` (both axes dynamic);
* output ``last_hidden_state``, float32 ``[batch, sequence, hidden]``;
* with ``output_attentions=True``, also ``attentions.<layer>``: the softmax attention probabilities,
  ``[batch, heads, sequence, sequence]``, one output per layer.

``token_type_ids`` is *not* a graph input: the wrapper passes zeros, which is exactly what the
tokenizer produces for the single-text inputs an embedding model serves. Sentence-pair models
(cross-encoders) are out of scope; an ONNX graph from elsewhere that declares ``token_type_ids`` still
works with :class:`~controlplane.models.encoder.OnnxEncoder`, which feeds zeros to it.

The legacy TorchScript exporter (``dynamo=False``) is used with eager attention: it is fast (≈1.5 s
for MiniLM) and keeps the Softmax nodes that the head-collapse check reads.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.errors import InputError
from controlplane.models.hf import check_model_dir, offline_env

OPSET = 17
VERIFY_ATOL = 1e-3  # measured max |torch - onnxruntime| on MiniLM: ~2e-6; 1e-3 leaves room for other CPUs
VERIFY_TEXTS = (
    "A man is playing a guitar on the street.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "ok",
    "Les élèves étudient l'histoire de l'art à Paris, 東京 and القاهرة 🎉.",
)


def load_torch_model(model_dir: Path) -> Any:
    """The HF encoder in eval mode with eager attention (so attention probabilities exist)."""
    offline_env()
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"cannot load model dir {model_dir}: {' '.join(str(exc).split())[:300]}") from None
    return model.eval()


def takes_token_types(model: Any) -> bool:
    """BERT and RoBERTa take ``token_type_ids``; DistilBERT and MPNet have no segment embeddings."""
    import inspect

    return "token_type_ids" in inspect.signature(model.forward).parameters


def _wrapper(model: Any, output_attentions: bool) -> Any:
    import torch

    token_types = takes_token_types(model)

    class _Encoder(torch.nn.Module):
        """forward(input_ids, attention_mask) calling the HF model by keyword (transformers 5 needs it)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            extra = {"token_type_ids": torch.zeros_like(input_ids)} if token_types else {}
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_attentions=output_attentions,
                return_dict=True,
                **extra,
            )
            if output_attentions:
                return (out.last_hidden_state, *out.attentions)
            return out.last_hidden_state

    return _Encoder().eval()


def export_onnx(model_dir: Path | str, out: Path | str, *, output_attentions: bool = False, verify: bool = True) -> Path:
    """Export an HF encoder dir to ONNX at ``out`` (written atomically), checked and verified against torch."""
    import torch

    model_dir, out = Path(model_dir), Path(out)
    arch = check_model_dir(model_dir)
    model = load_torch_model(model_dir)
    names = ["last_hidden_state"] + ([f"attentions.{i}" for i in range(arch.layers)] if output_attentions else [])
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask")}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    axes.update({n: {0: "batch", 2: "sequence", 3: "sequence"} for n in names[1:]})
    seq = min(8, arch.max_positions)
    ids = torch.randint(1000, 2000, (2, seq), dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _wrapper(model, output_attentions), (ids, mask), str(tmp),
                input_names=["input_ids", "attention_mask"], output_names=names,
                dynamic_axes=axes, opset_version=OPSET, dynamo=False,
            )
        import onnx

        onnx.checker.check_model(str(tmp))
        if verify:
            verify_export(model.eval(), tmp, model_dir / "tokenizer.json", arch.max_positions, output_attentions)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def verify_export(model: Any, onnx_path: Path, tokenizer_json: Path, max_positions: int, attentions: bool) -> float:
    """Max |torch - onnxruntime| over valid positions on a few texts; InputError above VERIFY_ATOL."""
    import onnxruntime as ort
    import torch

    from controlplane.models.encoder import load_tokenizer, tokenize

    tok = load_tokenizer(tokenizer_json, max_length=min(64, max_positions))
    ids, mask = tokenize(tok, list(VERIFY_TEXTS))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})
    extra = {"token_type_ids": torch.zeros_like(torch.from_numpy(ids))} if takes_token_types(model) else {}
    with torch.inference_mode():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    output_attentions=attentions, **extra)
    valid = mask[..., None].astype(bool)
    diff = float(np.max(np.abs(got[0] - ref.last_hidden_state.numpy()) * valid))
    if attentions:
        for layer, att in enumerate(ref.attentions):
            diff = max(diff, float(np.max(np.abs(got[1 + layer] - att.numpy()) * mask[:, None, :, None])))
    if not np.isfinite(diff) or diff > VERIFY_ATOL:
        raise InputError(f"ONNX export of {tokenizer_json.parent} disagrees with torch: max abs diff {diff:.3g} > {VERIFY_ATOL}")
    return diff
