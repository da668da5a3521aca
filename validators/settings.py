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
    max_mismatches_reported: int = 5


# --- quantization-accuracy --------------------------------------------------------------
@dataclass(frozen=True)
class QuantizationSettings:
    min_mean_cosine: float = 0.99


# --- head-collapse ----------------------------------------------------------------------
@dataclass(frozen=True)
class HeadCollapseSettings:
    pass


# --- long-seq-memory --------------------------------------------------------------------
@dataclass(frozen=True)
class LongSeqMemorySettings:
    budget_fraction: float = 0.8


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
