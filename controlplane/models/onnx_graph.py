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

_ONNX_FLOAT, _ONNX_FLOAT16 = 1, 10
# One op for a whole attention block: the probabilities never leave it, so head-collapse cannot read them.
FUSED_ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention", "PackedAttention", "PackedMultiHeadAttention",
                                 "QAttention", "GroupQueryAttention", "SparseAttention", "PagedAttention",
                                 "DecoderMaskedMultiHeadAttention", "DecoderMaskedSelfAttention"})
_PASS_THROUGH = frozenset({"Cast", "Dropout", "Identity"})
_TO_MATMUL = _PASS_THROUGH | {"QuantizeLinear", "DequantizeLinear"}  # static QDQ graphs quantize the probabilities


class NotInspectable(InputError):
    """The graph computes attention inside fused ops, so its probabilities cannot be observed."""

    def __init__(self, path: Path | str, fused: dict[str, int]) -> None:
        self.fused = dict(fused)
        ops = ", ".join(f"{n} {op}" for op, n in sorted(fused.items()))
        super().__init__(f"{Path(path).name}: attention is fused into {ops} nodes: the attention probabilities "
                         "are not observable in this graph")


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ops: dict[str, int] = field(default_factory=dict)
    precision: str = "fp32"  # fp32 | int8 | int4 | fp16
    softmax_count: int = 0
    fused_attention: dict[str, int] = field(default_factory=dict)  # "Attention (com.microsoft)": 6

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
    from controlplane.models.onnx_format import numeric_format

    ops = Counter(node.op_type for node in model.graph.node)
    init_names = {t.name for t in model.graph.initializer}
    return OnnxInfo(
        path=path,
        inputs=tuple(i.name for i in model.graph.input if i.name not in init_names),
        outputs=tuple(o.name for o in model.graph.output),
        ops=dict(ops),
        precision=numeric_format(model).precision,
        softmax_count=len(attention_softmaxes(model.graph)),
        fused_attention=fused_attention(model.graph),
    )


def fused_attention(graph: Any) -> dict[str, int]:
    """Fused attention ops of a graph by name and domain, e.g. ``{"Attention (com.microsoft)": 6}``."""
    found = Counter(f"{n.op_type} ({n.domain or 'ai.onnx'})" for n in graph.node if n.op_type in FUSED_ATTENTION_OPS)
    return dict(found)


def _consumers(graph: Any) -> dict[str, list[Any]]:
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def attention_softmaxes(graph: Any) -> list[Any]:
    """Softmax nodes whose output is multiplied into the values (directly or through a Cast, Dropout or Q/DQ pair):
    the attention probabilities, whichever exporter wrote the graph."""
    consumers = _consumers(graph)

    def feeds_matmul(name: str, depth: int = 0) -> bool:
        return any(c.op_type == "MatMul"
                   or (c.op_type in _TO_MATMUL and depth < 3 and feeds_matmul(c.output[0], depth + 1))
                   for c in consumers.get(name, []))

    return [n for n in graph.node if n.op_type == "Softmax" and feeds_matmul(n.output[0])]


def check_onnx(path: Path | str) -> OnnxInfo:
    """Validate an ONNX file (InputError when corrupt or not ONNX) and summarize it."""
    return describe(load_onnx(path), Path(path))


def check_attention_onnx(path: Path | str, layers: int | None = None) -> OnnxInfo:
    """Like :func:`check_onnx`, and also require a text encoder with attention (Softmax per layer)."""
    info = check_onnx(path)
    if not {"input_ids", "attention_mask"} <= set(info.inputs):
        raise InputError(f"{path} is not a text encoder graph: inputs are {list(info.inputs)}")
    fused = sum(info.fused_attention.values())
    if info.softmax_count + fused == 0 or (layers is not None and info.softmax_count + fused < layers):
        also = f" and {fused} fused attention ops" if fused else ""
        raise InputError(f"{path} is not an attention model: {info.softmax_count} Softmax nodes{also} for {layers} layers")
    return info


def attention_graph(path: Path | str, layers: int) -> tuple[bytes, list[str], list[str]]:
    """Serialized model that also outputs attention probabilities and per-head contexts.

    Returns (model bytes, probability output names, context output names); context names are empty
    when the graph does not multiply the probabilities straight into the values.
    """
    import onnx

    model = load_onnx(path)
    graph = model.graph
    softmaxes = attention_softmaxes(graph)
    if len(softmaxes) != layers:
        fused = fused_attention(graph)
        if fused:
            raise NotInspectable(path, fused)
        raise InputError(f"{path}: expected one attention Softmax per layer ({layers}), found {len(softmaxes)}")
    consumers = _consumers(graph)
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
    """Rows of the word-embedding table (the 2-D initializer a Gather on input_ids reads)."""
    return embedding_tables(load_onnx(path))[0]


def embedding_tables(model: Any) -> tuple[int | None, int | None]:
    """(word-embedding rows, position-embedding rows) of a loaded graph, ``None`` where not found.

    Word table: the 2-D initializer a Gather on ``input_ids`` reads (through a DequantizeLinear or Cast
    for quantized or fp16 tables), or input 2 of a fused ``EmbedLayerNormalization``. Position table:
    the largest other gathered 2-D table of the same width (input 3 of ``EmbedLayerNormalization``)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    def table(name: str, depth: int = 0) -> Any | None:
        if name in inits:
            return inits[name] if len(inits[name].dims) == 2 else None
        node = producers.get(name)
        if node is not None and depth < 3 and node.op_type in _PASS_THROUGH | {"DequantizeLinear"}:
            return table(node.input[0], depth + 1)
        return None

    def from_ids(name: str, depth: int = 0) -> bool:
        if name == "input_ids":
            return True
        node = producers.get(name)
        return node is not None and depth < 3 and node.op_type in _PASS_THROUGH and from_ids(node.input[0], depth + 1)

    word = position = None
    others = []
    for node in graph.node:
        if node.op_type == "EmbedLayerNormalization" and len(node.input) > 3:
            w, p = table(node.input[2]), table(node.input[3])
            word, position = (w if word is None else word), (p if position is None else position)
        elif node.op_type == "Gather" and (t := table(node.input[0])) is not None:
            if word is None and from_ids(node.input[1]):
                word = t
            else:
                others.append(t)
    if position is None and word is not None:
        same = [t for t in others if t.name != word.name and t.dims[1] == word.dims[1]]
        position = max(same, key=lambda t: t.dims[0], default=None)
    return (int(word.dims[0]) if word is not None else None, int(position.dims[0]) if position is not None else None)
