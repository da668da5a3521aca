"""Reading ONNX graphs: validity, what they compute, and exposing attention probabilities.

``attention_graph`` turns any exported encoder (fp32, int8 or fp16) into one that also returns
each layer's Softmax output (the attention probabilities) and the per-head context (the MatMul of
those probabilities with the values), so the head checks run on the registered artifact itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.errors import InputError

_INT8_OPS = frozenset({"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "DynamicQuantizeMatMul",
                       "QuantizeLinear", "DequantizeLinear", "ConvInteger", "MatMulIntegerToFloat"})
_ONNX_FLOAT, _ONNX_FLOAT16 = 1, 10


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: dict[str, int] = field(default_factory=dict)
    precision: str = "fp32"  # fp32 | int8 | fp16
    softmax_count: int = 0

    @property
    def quantized(self) -> bool:
        return self.precision != "fp32"


def load_onnx(path: Path | str) -> Any:
    """The ModelProto; InputError for a missing, corrupt or non-ONNX file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...: all mean "not a usable ONNX file"
        raise InputError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    if not model.graph.node:
        raise InputError(f"{path} is not a valid ONNX model (empty graph)")
    return model


def describe(model: Any, path: Path) -> OnnxInfo:
    ops = Counter(node.op_type for node in model.graph.node)
    inits = [t.data_type for t in model.graph.initializer if len(t.dims) >= 2]
    if any(op in _INT8_OPS for op in ops):
        precision = "int8"
    elif inits and sum(t == _ONNX_FLOAT16 for t in inits) > len(inits) / 2:
        precision = "fp16"
    else:
        precision = "fp32"
    init_names = {t.name for t in model.graph.initializer}
    return OnnxInfo(
        path=path,
        inputs=tuple(i.name for i in model.graph.input if i.name not in init_names),
        outputs=tuple(o.name for o in model.graph.output),
        ops=dict(ops),
        precision=precision,
        softmax_count=ops.get("Softmax", 0),
    )


def check_onnx(path: Path | str) -> OnnxInfo:
    """Validate an ONNX file (InputError when corrupt or not ONNX) and summarize it."""
    return describe(load_onnx(path), Path(path))


def check_attention_onnx(path: Path | str, layers: int | None = None) -> OnnxInfo:
    """Like :func:`check_onnx`, and also require a text encoder with attention (Softmax per layer)."""
    info = check_onnx(path)
    if not {"input_ids", "attention_mask"} <= set(info.inputs):
        raise InputError(f"{path} is not a text encoder graph: inputs are {list(info.inputs)}")
    if info.softmax_count == 0 or (layers is not None and info.softmax_count < layers):
        raise InputError(f"{path} is not an attention model: {info.softmax_count} Softmax nodes for {layers} layers")
    return info


def attention_graph(path: Path | str, layers: int) -> tuple[bytes, list[str], list[str]]:
    """Serialized model that also outputs attention probabilities and per-head contexts.

    Returns (model bytes, probability output names, context output names); context names are empty
    when the graph does not multiply the probabilities straight into the values.
    """
    import onnx

    model = load_onnx(path)
    graph = model.graph
    softmaxes = [n for n in graph.node if n.op_type == "Softmax"]
    if len(softmaxes) != layers:
        raise InputError(f"{path}: expected one attention Softmax per layer ({layers}), found {len(softmaxes)}")
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    existing = {o.name for o in graph.output}
    probs, contexts = [], []
    for node in softmaxes:
        probs.append(node.output[0])
        nxt = [c for c in consumers.get(node.output[0], []) if c.op_type == "MatMul" and c.input[0] == node.output[0]]
        contexts.append(nxt[0].output[0] if len(nxt) == 1 else "")
    if not all(contexts):
        contexts = []
    dtype = _ONNX_FLOAT16 if describe(model, Path(path)).precision == "fp16" else _ONNX_FLOAT
    for name in probs + contexts:
        if name not in existing:
            graph.output.append(onnx.helper.make_tensor_value_info(name, dtype, None))
    return model.SerializeToString(), probs, contexts


def embedding_rows(path: Path | str) -> int | None:
    """Rows of the word-embedding table (the largest 2-D initializer feeding a Gather on input_ids)."""
    model = load_onnx(path)
    inits = {t.name: t for t in model.graph.initializer}
    rows = [inits[n.input[0]].dims[0] for n in model.graph.node
            if n.op_type == "Gather" and n.input[0] in inits and n.input[1] == "input_ids" and len(inits[n.input[0]].dims) == 2]
    return int(rows[0]) if rows else None
