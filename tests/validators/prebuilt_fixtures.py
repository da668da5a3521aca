"""Prebuilt ONNX encoders as other teams ship them, built from the real all-MiniLM-L6-v2 (and from
small random-weight configs for other encoder families), cached under ``.cache/validators/v1/prebuilt-v2``.

Each fixture is a folder laid out as exporters write them: ``model.onnx`` (plus its external-data
file where the exporter writes one) beside ``tokenizer.json``, ``tokenizer_config.json`` and, for
most, ``config.json``. Styles:

* ``legacy``: ``torch.onnx.export(dynamo=False)``, the project's own exporter (eager attention);
* ``dynamo``: ``torch.onnx.export(dynamo=True)`` with eager attention (weights in ``model.onnx.data``);
* ``dynamo-sdpa``: the dynamo exporter on transformers' default SDPA attention at opset 23: the graph
  holds one fused ONNX ``Attention`` op per layer;
* ``ort-fused``: the legacy graph through onnxruntime's transformer optimizer (``com.microsoft``
  ``Attention``, what optimum's ``-O2`` and above write). optimum itself (``optimum-onnx``) is not
  installed in this environment, so there is no optimum-exported fixture;

and numeric formats of the legacy (and dynamo) graph, each made by onnxruntime's own quantizers or
by the project's code: dynamic int8 per-tensor and per-channel, static QDQ int8 calibrated on 16 texts,
weight-only int8 (``MatMulNBits`` bits=8, and ``DequantizeLinear`` of int8 initializers), fp16.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.validators.fixtures import _build, _locked, cache_root

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
ROOT_NAME = "prebuilt-v2"  # bump when a builder changes
CALIBRATION_TEXTS = 16
# name → (style it derives from, builder key)
FORMATS = {
    "legacy": "fp32",
    "legacy-int8-dynamic-per-tensor": "int8-per-tensor",
    "legacy-int8-dynamic-per-channel": "int8-per-channel",
    "legacy-int8-static-qdq": "int8-static-qdq",
    "legacy-int8-weight-only-nbits": "int8-weight-only",
    "legacy-int8-weight-only-dq": "int8-weight-only",
    "legacy-fp16": "fp16",
    "dynamo": "fp32",
    "dynamo-int8-dynamic-per-channel": "int8-per-channel",
    "dynamo-sdpa": "fp32",
    "ort-fused": "fp32",
}
# RoBERTa: 130 position embeddings, of which 128 are usable (ids start at padding_idx + 1 = 2)
FAMILIES = {
    "distilbert": {"model_type": "distilbert", "dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128,
                   "max_position_embeddings": 128},
    "roberta": {"model_type": "roberta", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 128, "max_position_embeddings": 130, "pad_token_id": 1, "type_vocab_size": 1},
    "mpnet": {"model_type": "mpnet", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "max_position_embeddings": 130, "pad_token_id": 1},
}


def root() -> Path:
    return cache_root() / ROOT_NAME


def _tokenizer_files(dst: Path, config: bool = True) -> None:
    from controlplane.models import minilm_dir

    src = minilm_dir()
    for name in TOKENIZER_FILES + (("config.json",) if config else ()):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _torch_export(dst: Path, attention: str, opset: int) -> None:
    """What a team running ``torch.onnx.export(dynamo=True)`` on the HF model gets."""
    import torch
    from transformers import AutoModel

    from controlplane.models import minilm_dir
    from controlplane.models.hf import offline_env

    offline_env()
    model = AutoModel.from_pretrained(str(minilm_dir()), attn_implementation=attention, local_files_only=True).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.randint(1000, 2000, (2, 8))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder().eval(), (ids, torch.ones_like(ids)), str(dst / "model.onnx"), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}), opset_version=opset,
                          external_data=True, verbose=False)  # fmt: skip


def _calibration(src: Path) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    from controlplane.models.encoder import load_tokenizer, tokenize
    from validators.quantization_accuracy import BUILTIN_CORPUS, read_corpus

    tok = load_tokenizer(src / "tokenizer.json", max_length=64)
    texts = read_corpus(BUILTIN_CORPUS)[:CALIBRATION_TEXTS]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([dict(zip(("input_ids", "attention_mask"), tokenize(tok, [t]), strict=True)) for t in texts])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    return Reader()


def _static_qdq(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(src / "model.onnx"), str(dst / "model.onnx"), _calibration(src), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul"], per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})  # fmt: skip


def _weight_only_nbits(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, bits=8)
    quant = MatMulNBitsQuantizer(onnx.load(str(src / "model.onnx")), algo_config=config)
    quant.process()
    quant.model.save_model_to_file(str(dst / "model.onnx"))


def _weight_only_dq(src: Path, dst: Path) -> None:
    """Every MatMul weight as int8 + one scale per output column, expanded by a DequantizeLinear."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src / "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        weight = node.input[1] if node.op_type == "MatMul" and len(node.input) > 1 else ""
        if weight in inits and len(inits[weight].dims) == 2:
            w = numpy_helper.to_array(inits[weight]).astype(np.float32)
            scale = np.maximum(np.abs(w).max(axis=0), 1e-8) / 127.0
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            model.graph.initializer.remove(inits.pop(weight))
            model.graph.initializer.extend([numpy_helper.from_array(q, f"{weight}_int8"),
                                            numpy_helper.from_array(scale.astype(np.float32), f"{weight}_scale"),
                                            numpy_helper.from_array(np.zeros_like(q[0]), f"{weight}_zero")])
            nodes.append(helper.make_node("DequantizeLinear", [f"{weight}_int8", f"{weight}_scale", f"{weight}_zero"],
                                          [weight], axis=1))  # fmt: skip
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst / "model.onnx"))


def _ort_fused(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    optimize_model(str(src / "model.onnx"), model_type="bert", num_heads=12, hidden_size=384).save_model_to_file(
        str(dst / "model.onnx"))


def _derived(src: Callable[[], Path], make: Callable[[Path, Path], None], config: bool = True) -> Callable[[Path], None]:
    def build(d: Path) -> None:
        origin = src()
        _tokenizer_files(d, config)
        make(origin, d)

    return build


def build_prebuilt() -> dict[str, Path]:
    """Every fixture folder (built when missing; safe across processes)."""
    from controlplane import models

    base = root()
    out: dict[str, Path] = {}
    with _locked(base):

        def legacy(d: Path) -> None:
            _tokenizer_files(d)
            models.export_onnx(models.minilm_dir(), d / "model.onnx")

        out["legacy"] = _build(base, "legacy", legacy)
        out["dynamo"] = _build(base, "dynamo", lambda d: (_tokenizer_files(d, config=False), _torch_export(d, "eager", 18)))
        out["dynamo-sdpa"] = _build(base, "dynamo-sdpa", lambda d: (_tokenizer_files(d), _torch_export(d, "sdpa", 23)))
        def dynamic(per_channel: bool) -> Callable[[Path, Path], None]:
            return lambda s, d: models.quantize_int8(s / "model.onnx", d / "model.onnx", per_channel=per_channel)

        makers: dict[str, tuple[str, Callable[[Path, Path], None], bool]] = {
            "legacy-int8-dynamic-per-tensor": ("legacy", dynamic(False), True),
            "legacy-int8-dynamic-per-channel": ("legacy", dynamic(True), True),
            "legacy-int8-static-qdq": ("legacy", _static_qdq, True),
            "legacy-int8-weight-only-nbits": ("legacy", _weight_only_nbits, True),
            "legacy-int8-weight-only-dq": ("legacy", _weight_only_dq, True),
            "legacy-fp16": ("legacy", lambda s, d: models.convert_fp16(s / "model.onnx", d / "model.onnx"), True),
            "dynamo-int8-dynamic-per-channel": ("dynamo", dynamic(True), False),
            "ort-fused": ("legacy", _ort_fused, True),
        }  # fmt: skip
        for name, (origin, make, config) in makers.items():
            out[name] = _build(base, name, _derived(lambda o=origin: out[o], make, config))
    return out


def build_family(family: str) -> Path:
    """A random-weight encoder of ``family`` from a small config, exported by the project's exporter,
    with MiniLM's tokenizer (its 30522 ids fit the default vocabulary of every family here)."""

    def make(d: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoModel

        torch.manual_seed(0)
        spec = dict(FAMILIES[family])
        config = AutoConfig.for_model(spec.pop("model_type"), vocab_size=30522, **spec)
        AutoModel.from_config(config).save_pretrained(str(d))
        _tokenizer_files(d, config=False)
        usable = spec["max_position_embeddings"] - (2 if family in ("roberta", "mpnet") else 0)
        tok_config = json.loads((d / "tokenizer_config.json").read_text())
        tok_config["model_max_length"] = min(usable, 128)  # the tokenizer declares what the model accepts
        (d / "tokenizer_config.json").write_text(json.dumps(tok_config))
        from controlplane import models

        models.export_onnx(d, d / "model.onnx")
        for weights in d.glob("*.safetensors"):  # a prebuilt ships the graph, not the torch weights
            weights.unlink()

    base = root()
    with _locked(base):
        return _build(base, family, make)


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    for key, path in build_prebuilt().items():
        print(f"{key:34s} {path}")
    for fam in FAMILIES:
        print(f"{fam:34s} {build_family(fam)}")
    print(f"built in {time.perf_counter() - t0:.1f} s")
