"""Sentence embeddings from an ONNX encoder: tokenize, run onnxruntime, mean-pool, L2-normalize.

Used by the validators and by the local serving target. ``OnnxEncoder.encode`` is safe to call
from many threads at once: the onnxruntime session is thread-safe for ``run``, and each truncation
length gets its own tokenizer, configured once under a lock and then only read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controlplane.errors import InputError

DEFAULT_MAX_LENGTH = 128  # when the tokenizer declares no truncation
DEFAULT_BATCH = 64


def load_tokenizer(path: Path | str, max_length: int | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` truncating at ``max_length`` (None: no truncation) and padding to the longest."""
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise InputError(f"tokenizer file {path} does not exist")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses for bad JSON
        raise InputError(f"{path} is not a valid tokenizer.json ({' '.join(str(exc).split())[:200]})") from None
    configure(tok, max_length)
    return tok


def configure(tok: Any, max_length: int | None) -> None:
    if max_length is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(max_length=int(max_length))
    pad = tok.padding or {}
    pad_id, pad_token = pad.get("pad_id", 0), pad.get("pad_token", "[PAD]")
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)  # no length: pad to the batch's longest


def tokenize(tok: Any, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) as int64 arrays ``[batch, sequence]``."""
    encs = tok.encode_batch(list(texts))
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    return ids, mask


def declared_truncation(tokenizer_json: Path) -> int | None:
    """The truncation length the tokenizer file declares, if any."""
    try:
        trunc = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("truncation")
    except (OSError, ValueError):
        return None
    return int(trunc["max_length"]) if isinstance(trunc, dict) and trunc.get("max_length") else None


def mean_pool(hidden: np.ndarray, mask: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Mask-weighted mean over the sequence axis, then (optionally) L2 normalization."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden.astype(np.float32) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if normalize:
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled


def embedding_output(session: Any) -> str:
    """The output the embeddings come from: ``last_hidden_state`` if the graph has it, else its first
    rank-3 output (token states, whatever the name), else its first rank-2 output (a pooled embedding)."""
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if "last_hidden_state" in names:
        return "last_hidden_state"
    for rank in (3, 2):
        ranked = [o.name for o in outputs if isinstance(o.shape, list) and len(o.shape) == rank]
        if ranked:
            return ranked[0]
    return names[0]


def pooled_output(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[batch, hidden]`` unit vectors from token states ``[batch, seq, hidden]`` (mean-pooled) or a
    pooled ``[batch, hidden]`` output (normalized); InputError for any other shape."""
    if out.ndim == 3:
        return mean_pool(out, mask)
    if out.ndim == 2:
        pooled = out.astype(np.float32)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    raise InputError(f"the encoder output has shape {list(out.shape)}: expected [batch, seq, hidden] or [batch, hidden]")


def resolve_onnx(model: Path | str) -> Path:
    path = Path(model)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise InputError(f"no ONNX model at {path}")
    return path


def make_session(onnx_path: Path, providers: Sequence[str] | None = None, threads: int | None = None) -> Any:
    """An onnxruntime session; InputError for unknown providers or a file onnxruntime cannot load."""
    import onnxruntime as ort

    providers = list(providers or ["CPUExecutionProvider"])
    unknown = [p for p in providers if p not in ort.get_available_providers()]
    if unknown:
        raise InputError(f"onnxruntime providers not available here: {', '.join(unknown)}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # errors reach the caller as exceptions
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise InputError(f"onnxruntime cannot load {onnx_path}: {' '.join(str(exc).split())[:200]}") from None


class OnnxEncoder:
    """Pooled, normalized sentence embeddings from ``model.onnx`` and ``tokenizer.json``."""

    def __init__(
        self,
        model: Path | str,
        tokenizer_path: Path | str | None = None,
        providers: Sequence[str] | None = None,
        *,
        max_length: int | None = None,
        threads: int | None = None,
        session: Any | None = None,
    ) -> None:
        self.onnx_path = resolve_onnx(model)
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else self.onnx_path.parent / "tokenizer.json"
        self._tokenizer_json = self.tokenizer_path.read_text(encoding="utf-8") if self.tokenizer_path.is_file() else ""
        load_tokenizer(self.tokenizer_path)  # fail early and clearly
        self.max_length = max_length or declared_truncation(self.tokenizer_path) or DEFAULT_MAX_LENGTH
        self.session = session or make_session(self.onnx_path, providers, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise InputError(f"{self.onnx_path} is not a text encoder: inputs {self.input_names} lack {sorted(missing)}")
        self.hidden_output = embedding_output(self.session)
        self._tokenizers: dict[int | None, Any] = {}
        self._lock = threading.Lock()

    def tokenizer(self, max_length: int | None) -> Any:
        """A tokenizer configured for ``max_length``; built once per length, then shared read-only."""
        tok = self._tokenizers.get(max_length)
        if tok is None:
            with self._lock:
                tok = self._tokenizers.get(max_length)
                if tok is None:
                    from tokenizers import Tokenizer

                    tok = Tokenizer.from_str(self._tokenizer_json)
                    configure(tok, max_length)
                    self._tokenizers[max_length] = tok
        return tok

    def feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return feeds

    def run(self, ids: np.ndarray, mask: np.ndarray, outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """Raw graph outputs for already tokenized input."""
        return self.session.run(list(outputs) if outputs else None, self.feeds(ids, mask))

    def embed(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Unit vectors for tokenized input: token states mean-pooled, or the graph's own pooled output."""
        out = self.run(ids, mask, [self.hidden_output])[0]
        return pooled_output(out, mask)

    def encode(self, texts: Sequence[str], max_length: int | None = None, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """``[len(texts), hidden]`` float32 unit vectors; texts are batched by length to limit padding."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        tok = self.tokenizer(max_length or self.max_length)
        order = np.argsort([len(t) for t in texts], kind="stable")
        chunks = []
        for start in range(0, len(texts), batch_size):
            ids, mask = tokenize(tok, [texts[i] for i in order[start : start + batch_size]])
            chunks.append(self.embed(ids, mask))
        pooled = np.concatenate(chunks)
        result = np.empty_like(pooled)
        result[order] = pooled
        return result
