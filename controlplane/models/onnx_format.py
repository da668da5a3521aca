"""The numeric format of an ONNX graph, read from its operators and initializers.

* ``int8-dynamic``: weights int8, activations quantized at run time (``MatMulInteger`` with
  ``DynamicQuantizeLinear``, or the fused ``DynamicQuantizeMatMul``/``MatMulIntegerToFloat``);
  per-channel when a weight's zero point (or scale) holds one value per output column;
* ``int8-static-qdq``: activations and weights through ``QuantizeLinear``/``DequantizeLinear`` pairs
  with calibrated scales (or QOperator ops such as ``QLinearMatMul``);
* ``int8-weight-only``: int8 weights expanded to float before the MatMul (``DequantizeLinear`` or a
  ``Cast`` of an int8 initializer then a scale, with no activation quantization), or ``MatMulNBits``
  with ``bits=8`` (``int4-weight-only`` for 4 bits);
* ``fp16``: most weight matrices are float16; otherwise ``fp32``.

``quantization`` is the registry tag every consumer reads (``none`` for fp32; the dynamic kinds keep
the names ``ctl register --quantize`` always used: ``int8-per-channel`` / ``int8-per-tensor``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

_FLOAT, _UINT8, _INT8, _FLOAT16 = 1, 2, 3, 10
_DYNAMIC_OPS = frozenset({"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                          "QAttention"})
_QOPERATOR_OPS = frozenset({"QLinearMatMul", "QLinearConv", "QLinearAdd", "QGemm", "QLinearSoftmax"})


@dataclass(frozen=True)
class NumericFormat:
    name: str  # fp32 | fp16 | int8-dynamic | int8-static-qdq | int8-weight-only | int4-weight-only
    quantization: str  # the registry's ``quantization`` tag
    evidence: str  # what in the graph says so, for people

    @property
    def precision(self) -> str:
        """fp32 | fp16 | int8 | int4."""
        return self.name.split("-", 1)[0]


def _numel(tensor: Any) -> int:
    n = 1
    for d in tensor.dims:
        n *= int(d)
    return n


def numeric_format(model: Any) -> NumericFormat:
    """The format of a loaded ``ModelProto`` (external data need not be loaded)."""
    nodes = list(model.graph.node)
    ops = Counter(n.op_type for n in nodes)
    inits = {t.name: t for t in model.graph.initializer}
    if ops.keys() & _DYNAMIC_OPS:
        zero_points = [inits[n.input[3]] for n in nodes
                       if n.op_type == "MatMulInteger" and len(n.input) > 3 and n.input[3] in inits]
        scales = [t for name, t in inits.items() if name.endswith("_scale") and t.data_type == _FLOAT]
        per_channel = any(_numel(t) > 1 for t in zero_points + scales)
        kind = "per-channel" if per_channel else "per-tensor"
        found = ", ".join(f"{ops[o]} {o}" for o in sorted(ops.keys() & _DYNAMIC_OPS))
        return NumericFormat("int8-dynamic", f"int8-{kind}", f"{found}; {kind} weight scales")
    if ops.keys() & _QOPERATOR_OPS or (ops["QuantizeLinear"] and ops["DequantizeLinear"]):
        found = ", ".join(f"{ops[o]} {o}" for o in sorted(ops.keys() & (_QOPERATOR_OPS | {"QuantizeLinear", "DequantizeLinear"})))
        return NumericFormat("int8-static-qdq", "int8-static-qdq", f"{found}: activations quantized with static scales")
    nbits = [n for n in nodes if n.op_type == "MatMulNBits"]
    if nbits:
        bits = {next((a.i for a in n.attribute if a.name == "bits"), 4) for n in nbits}
        width = max(bits)
        name = f"int{width}-weight-only"
        return NumericFormat(name, name, f"{len(nbits)} MatMulNBits (bits {sorted(bits)})")
    int_inits = {name for name, t in inits.items() if t.data_type in (_INT8, _UINT8) and len(t.dims) >= 2}
    dq = [n for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] in int_inits]
    casts = [n for n in nodes if n.op_type == "Cast" and n.input[0] in int_inits]
    if dq or casts:
        how = f"{len(dq)} DequantizeLinear" if dq else f"{len(casts)} Cast"
        return NumericFormat("int8-weight-only", "int8-weight-only", f"{how} of int8 weight initializers")
    matrices = [t.data_type for t in inits.values() if len(t.dims) >= 2 and t.data_type in (_FLOAT, _FLOAT16)]
    halves = sum(t == _FLOAT16 for t in matrices)
    if matrices and halves > len(matrices) / 2:
        return NumericFormat("fp16", "fp16", f"{halves} of {len(matrices)} weight matrices float16")
    return NumericFormat("fp32", "none", f"{len(matrices)} float32 weight matrices")
