"""An ONNX encoder exported elsewhere (optimum, ``torch.onnx`` legacy or dynamo, a team's own
quantization pipeline): is it usable, what does it take and return, what format and architecture.

``inspect_prebuilt`` runs the ONNX checker and creates an onnxruntime session, then runs the graph
once on four tokens, so a graph the encoder cannot drive is refused here, with one line, before
anything is registered. Nothing is rewritten: the caller stores exactly the files named in
``PrebuiltOnnx.files`` (``model.onnx`` and its external-data files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from controlplane.errors import InputError
from controlplane.models.hf import GRAPH_MODEL_TYPE, Architecture
from controlplane.models.onnx_format import NumericFormat

REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
_TRIAL_IDS = np.array([[0, 1, 2, 3]], dtype=np.int64)  # ids every vocabulary has


@dataclass(frozen=True)
class Signature:
    inputs: tuple[str, ...]
    output: str
    pooled: bool  # the output is a pooled [batch, hidden] embedding, not token states

    def to_tags(self) -> dict[str, str]:
        return {"onnx.inputs": ",".join(self.inputs), "onnx.output": self.output,
                "onnx.output_kind": "pooled" if self.pooled else "token-states"}


@dataclass(frozen=True)
class PrebuiltOnnx:
    path: Path
    files: dict[str, Path]  # artifact name → file: model.onnx and every external-data file
    signature: Signature
    format: NumericFormat
    graph_arch: Architecture  # what the graph alone says (model_type unknown)
    attention: str  # "softmax" or "fused: Attention (com.microsoft) x6"
    embedding_rows: int | None


def inspect_prebuilt(path: Path | str) -> PrebuiltOnnx:
    """Check and describe a prebuilt encoder; InputError (one line) for anything unusable."""
    import onnx

    from controlplane.models.encoder import embedding_output, make_session
    from controlplane.models.onnx_format import numeric_format
    from controlplane.models.onnx_graph import attention_softmaxes, embedding_tables, fused_attention, load_onnx

    path = Path(path)
    files = {"model.onnx": path, **external_files(path)}
    load_onnx(path)  # the ONNX checker, external data included
    proto = onnx.load(str(path), load_external_data=False)
    init_names = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in init_names]  # what it takes, before onnxruntime
    missing = [n for n in REQUIRED_INPUTS if n not in inputs]
    if missing:
        raise InputError(f"{path.name} is not a text encoder the server can drive: inputs {inputs} lack {', '.join(missing)}")
    unknown = [n for n in inputs if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
    if unknown:
        raise InputError(f"{path.name} takes inputs the encoder cannot feed: {', '.join(unknown)} "
                         f"(it feeds {', '.join(REQUIRED_INPUTS + OPTIONAL_INPUTS)})")
    session = make_session(path)
    output = embedding_output(session)
    feeds = {"input_ids": _TRIAL_IDS, "attention_mask": np.ones_like(_TRIAL_IDS)}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.zeros_like(_TRIAL_IDS)
    try:
        [out] = session.run([output], feeds)
    except Exception as exc:  # onnxruntime's own error types
        raise InputError(f"{path.name} fails on a 4-token input: {' '.join(str(exc).split())[:200]}") from None
    if out.ndim not in (2, 3) or out.dtype.kind != "f":
        raise InputError(f"{path.name}: output {output!r} is {out.dtype} {list(out.shape)}, not token states "
                         "[batch, seq, hidden] nor a pooled embedding [batch, hidden]")
    signature = Signature(tuple(n for n in REQUIRED_INPUTS + OPTIONAL_INPUTS if n in inputs), output, out.ndim == 2)
    fused = fused_attention(proto.graph)
    softmaxes = attention_softmaxes(proto.graph)
    word, positions = embedding_tables(proto)
    heads = _fused_heads(proto.graph) if fused else None
    if heads is None:
        heads = _probed_heads(path, proto.graph, softmaxes, feeds)
    layers = len(softmaxes) + sum(fused.values())
    if layers == 0:
        raise InputError(f"{path.name} is not an attention encoder: no attention Softmax and no fused attention op")
    attention = "softmax" if not fused else "fused: " + ", ".join(f"{op} x{n}" for op, n in sorted(fused.items()))
    arch = Architecture(GRAPH_MODEL_TYPE, layers, heads or 0, int(out.shape[-1]), positions or 0, word or 0)
    return PrebuiltOnnx(path, files, signature, numeric_format(proto), arch, attention, word)


def external_files(path: Path) -> dict[str, Path]:
    """The external-data files a graph names, by their location relative to it (InputError when missing
    or outside the graph's folder)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX file at all
        raise InputError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    found: dict[str, Path] = {}
    tensors = [*proto.graph.initializer, *(a.t for n in proto.graph.node for a in n.attribute if a.HasField("t"))]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        rel = PurePosixPath(location)
        if not location or rel.is_absolute() or ".." in rel.parts or rel.name == "model.onnx":
            raise InputError(f"{path.name}: external data location {location!r} is not a file beside the graph")
        file = path.parent / location
        if not file.is_file():
            raise InputError(f"{path.name} keeps its weights in {location}, which is not beside it ({file} is missing)")
        found[str(rel)] = file
    return found


def _fused_heads(graph: Any) -> int | None:
    from controlplane.models.onnx_graph import FUSED_ATTENTION_OPS

    for node in graph.node:
        if node.op_type in FUSED_ATTENTION_OPS:
            for attr in node.attribute:
                if attr.name in ("num_heads", "q_num_heads") and attr.i > 0:
                    return int(attr.i)
    return None


def _probed_heads(path: Path, graph: Any, softmaxes: list[Any], feeds: dict[str, np.ndarray]) -> int | None:
    """Heads: axis 1 of the first attention Softmax's output (or of the query a 4-D fused Attention
    takes, ``[batch, heads, seq, head_dim]``) on the trial input."""
    from controlplane.models.onnx_graph import FUSED_ATTENTION_OPS

    fused = (n.input[0] for n in graph.node if n.op_type in FUSED_ATTENTION_OPS)
    name = softmaxes[0].output[0] if softmaxes else next(fused, "")
    if not name:
        return None
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    model.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        probe = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        [value] = probe.run([name], feeds)
    except Exception:  # onnxruntime's own error types: the heads stay unknown
        return None
    return int(value.shape[1]) if value.ndim == 4 else None
