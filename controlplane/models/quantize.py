"""Post-training quantization of an exported encoder with onnxruntime.

Dynamic int8 (weights int8, activations quantized at run time) needs no calibration data.
Per-channel is the default because per-tensor visibly degrades all-MiniLM-L6-v2: pooled cosine to
fp32 on the model's README lines, per-tensor mean 0.946 / p1 0.875, per-channel 0.991 / 0.981
(docs/validators.md has this project's own measurements).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controlplane.models.onnx_graph import check_onnx

_NOISE = ("Please consider to run pre-processing", "Please consider pre-processing")


class _DropPreprocessHint(logging.Filter):
    """onnxruntime logs a pre-processing hint on the root logger for every quantization; the
    exported graph needs none (symbolic shape inference would only fuse away the Softmax nodes the
    head checks read), so the hint is noise for our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    hint = _DropPreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(hint)


@contextmanager
def _atomic(dst: Path) -> Iterator[Path]:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        check_onnx(tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_int8(src_onnx: Path | str, dst_onnx: Path | str, per_channel: bool = True) -> Path:
    """Dynamic int8 quantization of the MatMul/Gemm weights (symmetric int8 weights, one scale per
    output channel unless ``per_channel=False``); returns ``dst_onnx``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src_onnx), Path(dst_onnx)
    check_onnx(src)
    with _atomic(dst) as tmp, _quiet_quantizer():
        quantize_dynamic(
            src, tmp, per_channel=per_channel, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            extra_options={"MatMulConstBOnly": True},
        )
    return dst


def convert_fp16(src_onnx: Path | str, dst_onnx: Path | str) -> Path:
    """Weights and activations in float16, graph inputs and outputs kept float32 (so callers see no change)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src, dst = Path(src_onnx), Path(dst_onnx)
    check_onnx(src)
    with _atomic(dst) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=True)
        onnx.save(model, str(tmp))
    return dst


def scheme_tag(per_channel: bool | None) -> str:
    """The ``quantization`` tag value for a scheme (``None``: fp16)."""
    if per_channel is None:
        return "fp16"
    return "int8-per-channel" if per_channel else "int8-per-tensor"
