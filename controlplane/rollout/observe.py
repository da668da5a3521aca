"""The one observer: what the engine needs to see for the rollout's phase, read at the edges."""

from __future__ import annotations

from typing import Protocol

from controlplane.engine import Observations, RolloutSpec, RolloutStatus
from controlplane.engine.types import AnalysisVerdict, Phase
from controlplane.rollout.apply import Ports


class Analyzer(Protocol):
    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None: ...


def observe(spec: RolloutSpec, status: RolloutStatus, p: Ports, analyzer: Analyzer, now: float) -> Observations:
    """Validating: the gate's state. Progressing: the step's analysis, the weight the router is
    really configured with, and who holds the alias (without a registry: taken to be stable).
    Promoted and finalizing: whether stable serves the new version and is available."""
    if status.phase is Phase.PROMOTED and status.finalizing:
        return Observations(stable_ready=p.workloads.stable_ready(p.target))
    if status.phase is Phase.VALIDATING:
        validation, evidence = p.gate.state()
        return Observations(validation=validation, validation_evidence=evidence)
    if status.phase is not Phase.PROGRESSING:
        return Observations()
    if p.registry is None:
        alias: int | None = spec.stable_version
    else:
        holder = p.registry.get_alias(spec.model, spec.alias)
        alias = holder.version if holder else None
    return Observations(
        analysis=analyzer.analyze(spec, status, now),
        router_weight=p.router.get_weight(p.target),
        current_alias_version=alias,
    )
