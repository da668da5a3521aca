"""Content hashes for artifacts and tokenizers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from controlplane.errors import InputError
from controlplane.models.hf import read_json

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"file {path} does not exist") from None
    return digest.hexdigest()


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_json(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


def tokenizer_hash(tokenizer_json: Path | str) -> str:
    """Hash of the canonical JSON of a tokenizer.json (its configuration and vocabulary).

    Key order and whitespace do not matter; any change to the normalizer, pre-tokenizer, special
    tokens, vocabulary, truncation or padding does. The format ``version`` field is left out.
    """
    data = read_json(Path(tokenizer_json), "tokenizer")
    data.pop("version", None)
    return sha256_json(data)


def vocab_hash(tokenizer: dict[str, Any]) -> str:
    """Hash of the vocabulary alone (WordPiece/BPE ``vocab``, Unigram pieces, BPE merges)."""
    model = tokenizer.get("model") or {}
    return sha256_json({"vocab": model.get("vocab"), "merges": model.get("merges")})


def sha256_files(files: dict[str, Path]) -> str:
    """One hash over several artifacts: SHA-256 of the sorted ``name sha256`` lines (a graph and its
    external-data files, so a changed weights file changes the hash even when the graph did not)."""
    lines = "".join(f"{name} {sha256_file(path)}\n" for name, path in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
