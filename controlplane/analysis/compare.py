"""Canary vs stable over the same sub-intervals: a one-sided Mann-Whitney U test plus an effect size.

Kayenta's idea (confidence 0.98, tolerance 0.25): a metric regresses only when the difference is
statistically significant AND large enough to matter, so a canary worse than stable is caught even
while the absolute SLO still holds, and noise between identical versions is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PASS = "pass"
REGRESSION = "regression"
INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class Comparison:
    metric: str
    status: str  # pass | regression | insufficient
    reason: str
    canary_points: int
    stable_points: int
    canary_mean: float | None = None
    stable_mean: float | None = None
    effect: float | None = None  # relative increase of the canary's mean over the (floored) stable mean
    p_value: float | None = None
    alpha: float | None = None
    tolerance: float | None = None

    def to_evidence(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "status": self.status,
            "reason": self.reason,
            "canary_points": self.canary_points,
            "stable_points": self.stable_points,
            "canary_mean": _finite_or_none(self.canary_mean),
            "stable_mean": _finite_or_none(self.stable_mean),
            "effect": _finite_or_none(self.effect),
            "p_value": _finite_or_none(self.p_value),
            "alpha": self.alpha,
            "tolerance": self.tolerance,
            "test": "mann-whitney-u (one-sided: canary greater)",
        }


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def finite(values: Sequence[float]) -> list[float]:
    """Values a test can use: finite and not negative (NaN marks an interval without traffic)."""
    return [float(v) for v in values if v is not None and math.isfinite(v) and v >= 0.0]


def compare_samples(
    metric: str,
    canary: Sequence[float],
    stable: Sequence[float],
    *,
    confidence: float,
    tolerance: float,
    min_points: int,
    floor: float,
) -> Comparison:
    """Is ``canary`` worse (greater) than ``stable``? ``floor`` bounds the denominator of the effect size."""
    import numpy as np  # lazily: `ctl promote --target kubernetes` imports the judge without judging
    from scipy.stats import mannwhitneyu

    c, s = finite(canary), finite(stable)
    alpha = 1.0 - confidence
    base = {"canary_points": len(c), "stable_points": len(s), "alpha": alpha, "tolerance": tolerance}
    if len(c) < min_points or len(s) < min_points:
        reason = f"{metric}: {len(c)} canary and {len(s)} stable sub-intervals with data, need {min_points} each"
        return Comparison(metric, INSUFFICIENT, reason, **base)
    c_mean, s_mean = float(np.mean(c)), float(np.mean(s))
    effect = (c_mean - s_mean) / max(s_mean, floor)
    if len(set(c) | set(s)) == 1:
        reason = f"{metric}: canary and stable identical ({c_mean:.4g})"
        return Comparison(metric, PASS, reason, canary_mean=c_mean, stable_mean=s_mean, effect=0.0, p_value=1.0, **base)
    p_value = float(mannwhitneyu(c, s, alternative="greater").pvalue)
    measured = f"canary mean {c_mean:.4g} vs stable {s_mean:.4g} (effect {effect:+.0%}, p={p_value:.2g})"
    if p_value < alpha and effect > tolerance:
        status, reason = REGRESSION, f"{metric}: canary worse than stable: {measured}"
    else:
        status, reason = PASS, f"{metric}: no regression beyond tolerance {tolerance:.0%}: {measured}"
    return Comparison(
        metric, status, reason, canary_mean=c_mean, stable_mean=s_mean, effect=effect, p_value=p_value, **base
    )
