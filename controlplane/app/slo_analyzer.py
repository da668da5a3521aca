"""The SLO analysis of a rollout step: the pure judge fed by a metric provider."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from controlplane.analysis.judge import analyze
from controlplane.analysis.slo import SLOSpec, default_slo, load_slo, parse_slo
from controlplane.engine import AnalysisVerdict, RolloutSpec, RolloutStatus
from controlplane.errors import InputError
from controlplane.ports import MetricProvider

DEFAULT_LATENCY_THRESHOLD_S = 0.2


def load_slo_file(path: Path) -> dict[str, Any]:
    """Validate an SLO file; return the document to keep in the rollout's spec."""
    import yaml

    load_slo(path)  # one-line InputError naming the field when invalid
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_rollout_slo(spec: RolloutSpec, *, default_min_requests: float | None = None) -> SLOSpec:
    """The rollout's SLO: its own document, else the default one. A target with little traffic (the
    local target serves ~40 req/s, so a 5 % canary sees ~2 req/s) lowers the default evidence floor."""
    if spec.slo is not None:
        slo = parse_slo(spec.slo, "rollout SLO")
    else:
        slo = default_slo(spec.model)
        if default_min_requests is not None:
            canary = replace(
                slo.canary,
                min_requests=default_min_requests,
                compare=replace(slo.canary.compare, min_requests=default_min_requests * 5, min_points=4),
            )
            slo = replace(slo, canary=canary)
    if slo.model != spec.model:
        raise InputError(f"the SLO is for model {slo.model!r}, not {spec.model!r}")
    return slo


def latency_threshold(slo: SLOSpec) -> float:
    if slo.latency is not None and slo.latency.threshold_s is not None:
        return slo.latency.threshold_s
    return DEFAULT_LATENCY_THRESHOLD_S


class SloAnalyzer:
    """A reconcile.Analyzer: judges the canary (and canary vs stable) over windows ending now."""

    def __init__(self, provider: MetricProvider, slo: SLOSpec) -> None:
        self.provider = provider
        self.slo = slo

    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None:
        return analyze(
            self.slo,
            self.provider,
            spec.model,
            spec.version,
            spec.stable_version,
            now=now,
            step_duration_s=step_window(spec, status, now),
        )


def step_window(spec: RolloutSpec, status: RolloutStatus, now: float) -> float:
    """The analysis window: the step's duration, growing with the step when it is extended for lack of
    data (so an extension really gathers more evidence instead of re-reading the same span)."""
    if status.step_started_at is None:
        return spec.step_duration_s
    return max(spec.step_duration_s, now - status.step_started_at)
