"""Texts to embeddings exactly as the in-process encoder computes them (``controlplane.models.encoder``):
its tokenizer (truncating at the encoder's length), its session and feeds, its mean pooling and L2
normalization. Tokenizing happens per request (so the batcher knows each text's length); batches are
padded to their longest text, as ``OnnxEncoder.encode`` pads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controlplane.models.encoder import OnnxEncoder, pooled_output

_OOM_MARKERS = ("failed to allocate", "bad_alloc", "out of memory", "outofmemory", "cudaerrormemoryallocation")


class TokenizationError(Exception):
    """The tokenizer could not encode a text (e.g. a lone surrogate)."""


class TextTooLong(Exception):
    """A text is longer than the model's length and truncation is off."""


class InferenceFailed(Exception):
    """onnxruntime failed; ``kind`` is out_of_memory, bad_input or internal."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Tokenized:
    seqs: list[list[int]]  # token ids per text, without padding
    truncated: int  # how many texts were cut to the model's length


class Embedder:
    """Wraps one ``OnnxEncoder``; ``run`` is called from a single worker thread."""

    def __init__(self, encoder: OnnxEncoder, truncate: bool = True) -> None:
        self.encoder = encoder
        self.truncate = truncate
        self.max_length = int(encoder.max_length)
        self._tok = encoder.tokenizer(self.max_length)
        self.pad_id = int((self._tok.padding or {}).get("pad_id", 0))
        self.dim = 0  # known after warm_up

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        tokenized = self._encode(texts)
        if tokenized.truncated and not self.truncate:
            raise TextTooLong(
                f"{tokenized.truncated} text(s) longer than the model's {self.max_length} tokens (truncation is off)"
            )
        return tokenized

    def _encode(self, texts: Sequence[str]) -> Tokenized:
        try:
            encodings = self._tok.encode_batch(list(texts))
        except Exception as exc:  # tokenizers raises TypeError/Exception for text it cannot take
            raise TokenizationError(f"the tokenizer cannot encode this input ({' '.join(str(exc).split())[:120]})") from None
        truncated = sum(1 for e in encodings if e.overflowing)
        return Tokenized([e.ids[: sum(e.attention_mask)] for e in encodings], truncated)

    def run(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        """``[len(seqs), dim]`` float32 unit vectors for one padded batch."""
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        try:
            hidden = self.encoder.run(ids, mask, [self.encoder.hidden_output])[0]
        except MemoryError:
            raise InferenceFailed("out_of_memory", "out of memory running the model") from None
        except Exception as exc:
            raise classify(exc) from None
        return pooled_output(hidden, mask)  # token states mean-pooled, or a prebuilt graph's pooled output

    def warm_up(self) -> None:
        """One inference of a short and a full-length text; raises when the output is not healthy."""
        seqs = self._encode(["warm-up", "warm " * (self.max_length * 2)]).seqs
        vectors = self.run(seqs)
        if not np.isfinite(vectors).all() or vectors.shape[0] != 2:
            raise InferenceFailed("internal", "warm-up produced non-finite embeddings")
        self.dim = int(vectors.shape[1])


def classify(exc: BaseException) -> InferenceFailed:
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if any(m in lowered for m in _OOM_MARKERS):
        return InferenceFailed("out_of_memory", "out of memory running the model")
    if type(exc).__name__ in {"InvalidArgument", "INVALID_ARGUMENT"}:
        return InferenceFailed("bad_input", f"the model refused this input: {text[:160]}")
    return InferenceFailed("internal", f"inference failed: {type(exc).__name__}")


def output_health(vectors: np.ndarray) -> dict[str, int]:
    """How many rows are non-finite, and how many have (near) zero norm after normalization."""
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0.0), axis=1)
    return {"non_finite": int((~finite).sum()), "zero_norm": int((finite & (norms < 0.5)).sum())}


def describe_providers(session: Any) -> str:
    return ",".join(session.get_providers())
