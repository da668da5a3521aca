"""All validation thresholds in one documented object (docs/validators.md justifies each
default with a measurement on all-MiniLM-L6-v2).

Each check owns one section; ``Settings`` composes them. Override from a YAML/JSON file
with ``Settings.from_mapping``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from controlplane.errors import InputError


# --- tokenizer-parity -------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerParitySettings:
    max_mismatches_reported: int = 5  # first mismatching texts shown side by side
    # Fraction of corpus texts allowed to tokenize differently. 0: any difference fails (a healthy
    # model against its own tokenizer gives exactly 0; the lowercase-toggled one gives 0.74).
    max_mismatch_rate: float = 0.0
    # A difference in normalizer, pre-tokenizer, post-processor, vocabulary, special-token ids or
    # WordPiece/BPE settings fails even when the corpus happens not to show it.
    fail_on_config_difference: bool = True
    # Set by the runner from --reference-tokenizer / --corpus (paths as strings; None: not given).
    reference_tokenizer: str | None = None
    corpus_file: str | None = None


# --- quantization-accuracy --------------------------------------------------------------
@dataclass(frozen=True)
class QuantizationSettings:
    """Quantized candidate vs its fp32 source, pooled (mean, L2-normalized) embeddings.

    Measured on all-MiniLM-L6-v2, built-in corpus (120 texts, max_length 256): per-channel int8
    mean 0.992 / p1 0.969 / min 0.945; onnxruntime's default per-tensor int8 mean 0.953 / p1 0.842 /
    min 0.773; fp16 1.000. Each cosine floor sits between the two schemes.
    """

    min_mean_cosine: float = 0.98  # fail below: per-tensor 0.953, per-channel 0.992
    warn_mean_cosine: float = 0.985  # warn below (still passes the gate)
    min_p1_cosine: float = 0.95  # 1st percentile: per-tensor 0.842, per-channel 0.969
    min_cosine: float = 0.90  # worst text: per-tensor 0.773, per-channel 0.945
    max_abs_error: float = 0.25  # gross guard on unit vectors: per-tensor 0.097, per-channel 0.053
    max_task_metric_drop: float = 0.02  # labelled file: 1-NN accuracy may drop this much (absolute)
    min_top1_agreement: float = 0.95  # labelled file: same predicted label as the fp32 source
    max_length: int = 256  # tokens per text (the local serving target truncates at 256)
    corpus_file: str | None = None  # one text per line; replaces the built-in corpus
    labelled_file: str | None = None  # JSONL {"text", "label"} or TSV text<TAB>label


# --- head-collapse ----------------------------------------------------------------------
@dataclass(frozen=True)
class HeadCollapseSettings:
    # Calibrated on all-MiniLM-L6-v2 (fp32, int8 per-channel, int8 per-tensor) with the built-in
    # probe corpus; docs/validators.md has the measurements. Healthy maximum pairwise cosine
    # between two heads' attention maps: 0.975 (layer 4, 19 pairs above 0.9); collapsed: 1.000.
    identical_cosine: float = 0.99  # two heads at or above this are duplicates
    max_duplicate_group: int = 2  # fail when more heads than this in one layer are duplicates of each other
    max_layer_mean_similarity: float = 0.95  # healthy max 0.847; collapsed layer 1.000
    uniform_entropy: float = 0.97  # normalized entropy at or above: uniform head (healthy max 0.887)
    max_uniform_fraction: float = 0.5  # fail when at least this share of a layer's heads is uniform
    dead_head_ratio: float = 0.05  # head output norm below this x model median: dead (healthy min 0.51)
    max_dead_fraction: float = 0.5  # fail when at least this share of a layer's heads is dead
    # Regression against the baseline version (same architecture): the largest int8 shift measured
    # was +0.017 in a layer's mean similarity and 0.092 in one head's entropy.
    max_mean_similarity_increase: float = 0.10  # collapsed layer: +0.25
    max_entropy_shift: float = 0.15  # per head; warning only
    max_probe_tokens: int = 128
    # A graph whose attention is fused into one op (Attention, MultiHeadAttention, ...) hides the
    # probabilities: "warn" reports it as a warning (the gate accepts it), "fail" refuses it.
    not_inspectable: str = "warn"


# --- long-seq-memory --------------------------------------------------------------------
@dataclass(frozen=True)
class LongSeqMemorySettings:
    """Peak memory vs (sequence length, batch); see validators/long_seq_memory.py for where the
    declared serving config comes from when ``max_seq_len``/``max_batch`` are not set here."""

    budget_fraction: float = 0.8  # of device memory (CUDA total, or CPU RAM / cgroup limit)
    budget_bytes: int | None = None  # absolute budget; overrides budget_fraction
    headroom: float = 0.2  # declared config must fit with peak x (1 + headroom) <= budget
    max_seq_len: int | None = None  # declared serving config (else version tags, then tokenizer)
    max_batch: int | None = None
    max_probes: int = 6  # fit + confirmation + verification probes, all included
    probe_target_bytes: int = 128 << 20  # activation memory each fitting probe aims for (prior-guided)
    verify_max: bool | None = None  # measure at the predicted max; None: on CUDA, or CPU if the budget is small
    probe_timeout_s: float = 120.0


@dataclass(frozen=True)
class Settings:
    tokenizer_parity: TokenizerParitySettings = field(default_factory=TokenizerParitySettings)
    quantization_accuracy: QuantizationSettings = field(default_factory=QuantizationSettings)
    head_collapse: HeadCollapseSettings = field(default_factory=HeadCollapseSettings)
    long_seq_memory: LongSeqMemorySettings = field(default_factory=LongSeqMemorySettings)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Settings:
        """``{"quantization_accuracy": {"min_mean_cosine": 0.995}, ...}``; unknown keys are errors."""
        base = cls()
        sections = {f.name: f for f in fields(cls)}
        updates: dict[str, Any] = {}
        for section, values in data.items():
            if section not in sections:
                raise InputError(f"unknown settings section {section!r} (known: {', '.join(sections)})")
            current = getattr(base, section)
            known = {f.name for f in fields(current)}
            if not isinstance(values, dict) or not set(values) <= known:
                bad = sorted(set(values) - known) if isinstance(values, dict) else values
                raise InputError(f"bad settings for {section}: {bad} (known: {', '.join(sorted(known))})")
            updates[section] = replace(current, **values)
        return replace(base, **updates)
