"""Model artifacts: HF dir checks, ONNX export, int8/fp16 quantization, hashing, the ONNX encoder.

Importing this package is cheap: torch, transformers and onnxruntime are imported inside the
functions that need them. Nothing here downloads from a model hub (``offline_env``).
"""

from __future__ import annotations

from controlplane.models.encoder import OnnxEncoder, load_tokenizer, mean_pool, tokenize
from controlplane.models.export import export_onnx
from controlplane.models.hashing import sha256_file, sha256_files, tokenizer_hash, vocab_hash
from controlplane.models.hf import Architecture, architecture_from_config, check_model_dir, check_tokenizer_fits, minilm_dir
from controlplane.models.onnx_graph import OnnxInfo, check_attention_onnx, check_onnx
from controlplane.models.quantize import convert_fp16, quantize_int8, scheme_tag
from controlplane.models.variants import change_normalizer, collapse_heads, cut_positions

__all__ = [
    "Architecture",
    "OnnxEncoder",
    "OnnxInfo",
    "architecture_from_config",
    "change_normalizer",
    "check_attention_onnx",
    "check_model_dir",
    "check_onnx",
    "check_tokenizer_fits",
    "collapse_heads",
    "convert_fp16",
    "cut_positions",
    "export_onnx",
    "load_tokenizer",
    "mean_pool",
    "minilm_dir",
    "quantize_int8",
    "scheme_tag",
    "sha256_file",
    "sha256_files",
    "tokenize",
    "tokenizer_hash",
    "vocab_hash",
]
