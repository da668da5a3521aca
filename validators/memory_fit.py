"""The memory curve of an attention encoder: a prior from its architecture, a fit to measured probes,
predictions of the largest (seq_len, batch) within a budget, and the plot.

Model: ``peak(batch, seq) = c0 + c1·batch·seq + c2·batch·seq²``. ``c0`` is the process with the model
loaded, ``c1`` the per-token activations (hidden states, feed-forward), ``c2`` the attention scores
(heads x seq² per sequence in eager/unfused attention). Coefficients are fitted by non-negative least
squares, so the curve never bends down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from validators.memory_probe import Probe

FLOAT = 4  # bytes; activations are float32 in every graph this project exports (fp16 keeps fp32 I/O)
PRIOR_LINEAR = 12  # float32 values per token per hidden unit alive at the peak (qkv, ffn, residual)
PRIOR_QUADRATIC = 3  # attention-sized tensors alive at the peak (scores, mask add, softmax)


@dataclass(frozen=True)
class Curve:
    c0: float
    c1: float
    c2: float

    def peak(self, batch: float, seq: float) -> float:
        return self.c0 + batch * (self.c1 * seq + self.c2 * seq * seq)

    def per_sequence(self, seq: float) -> float:
        return self.c1 * seq + self.c2 * seq * seq

    def max_batch(self, seq: int, budget: float) -> int:
        """Largest batch whose predicted peak at ``seq`` stays within ``budget`` (0 if none)."""
        per = self.per_sequence(seq)
        if budget < self.c0 + per:
            return 0
        return int((budget - self.c0) // per) if per > 0 else 1 << 30

    def max_seq(self, batch: int, budget: float, limit: int) -> int:
        """Largest seq_len ≤ ``limit`` whose predicted peak at ``batch`` stays within ``budget`` (0 if none)."""
        room = (budget - self.c0) / max(batch, 1)
        if room <= 0:
            return 0
        if self.c2 > 0:
            seq = (-self.c1 + math.sqrt(self.c1 * self.c1 + 4 * self.c2 * room)) / (2 * self.c2)
        else:
            seq = room / self.c1 if self.c1 > 0 else float(limit)
        return int(min(limit, math.floor(seq)))


def prior(hidden: int, heads: int) -> Curve:
    """Architecture-only estimate, used to choose probe sizes (c0 unknown: 0)."""
    return Curve(0.0, float(FLOAT * PRIOR_LINEAR * hidden), float(FLOAT * PRIOR_QUADRATIC * heads))


def batch_for(curve: Curve, seq: int, target: float, cap: int) -> int:
    """Batch whose activation memory at ``seq`` is about ``target`` bytes, within [1, cap]."""
    per = curve.per_sequence(seq)
    return int(max(1, min(cap, round(target / per) if per > 0 else 1)))


def fit(probes: Sequence[Probe]) -> tuple[Curve, float]:
    """Non-negative least-squares fit; (curve, max relative residual over the probes' peaks).

    Each successful probe gives its peak at (batch, seq) and, when known, the model-loaded memory as
    an observation at batch 0 (that is what pins ``c0``).
    """
    ok = [p for p in probes if p.ok]
    if not ok:
        raise ValueError("no successful probe to fit")
    rows = [(float(p.batch), float(p.seq_len), p.peak_bytes) for p in ok]
    loaded = [p.loaded_bytes for p in ok if p.loaded_bytes == p.loaded_bytes]  # not NaN
    if loaded:
        rows.append((0.0, 0.0, float(np.median(loaded))))
    b, s, y = (np.array(col) for col in zip(*rows, strict=True))
    design = np.stack([np.ones_like(b), b * s, b * s * s], axis=1)
    scale = np.maximum(design.max(axis=0), 1.0)  # columns span 1 … 1e7: scale for a well-posed solve
    coef = _nnls(design / scale, y) / scale
    curve = Curve(*(float(c) for c in coef))
    peaks = [(p.batch, p.seq_len, p.peak_bytes) for p in ok]
    residual = max(abs(curve.peak(bi, si) - yi) / yi for bi, si, yi in peaks)
    return curve, float(residual)


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact non-negative least squares for a few columns: the best of every column subset's fit."""
    n = a.shape[1]
    best, best_err = np.zeros(n), float(np.sum(y * y))
    for mask in range(1, 1 << n):
        cols = [i for i in range(n) if mask >> i & 1]
        coef, *_ = np.linalg.lstsq(a[:, cols], y, rcond=None)
        if np.all(coef >= 0):
            full = np.zeros(n)
            full[cols] = coef
            err = float(np.sum((a @ full - y) ** 2))
            if err < best_err:
                best, best_err = full, err
    return best


def plot(path: Path, curve: Curve, probes: Sequence[Probe], *, budget: float, declared: tuple[int, int],
         max_positions: int, title: str) -> Path:
    """Peak memory against seq_len for the declared batch and batch 1, with the probes and the budget."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg for PNG

    seq_decl, batch_decl = declared
    gib = float(1 << 30)
    seqs = np.linspace(1, max_positions, 200)
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    for batch, style in ((batch_decl, "-"), (1, "--")):
        ax.plot(seqs, [curve.peak(batch, s) / gib for s in seqs], style, label=f"fit, batch {batch}")
    for p in probes:
        marker = "o" if p.ok else "x"
        value = p.peak_bytes if p.ok else budget
        ax.scatter([p.seq_len], [value / gib], marker=marker, zorder=3)
        ax.annotate(f"b{p.batch} {p.purpose or ''}".strip(), (p.seq_len, value / gib), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))
    ax.axhline(budget / gib, color="red", linewidth=1, label=f"budget {budget / gib:.2f} GiB")
    ax.axvline(max_positions, color="grey", linewidth=1, linestyle=":", label=f"{max_positions} positions")
    ax.scatter([seq_decl], [curve.peak(batch_decl, seq_decl) / gib], marker="*", s=120, color="black",
               zorder=4, label=f"declared {seq_decl}x{batch_decl}")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("peak memory (GiB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
