"""One reconcile of a store-backed rollout: observe → decide → apply → persist once.

The store is the source of truth for local rollouts; for Kubernetes rollouts the
custom resource is (see controller.py), and the store only keeps the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.app.executor import Edges, apply_actions
from controlplane.engine import Decision, Observations, RolloutSpec, RolloutStatus, decide
from controlplane.engine.types import AnalysisVerdict, Phase
from controlplane.errors import ConflictError


class Analyzer(Protocol):
    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None: ...


@dataclass
class Outcome:
    decision: Decision
    wrote: bool


def observe(spec: RolloutSpec, status: RolloutStatus, edges: Edges, analyzer: Analyzer, now: float) -> Observations:
    validation, evidence = edges.gate.state() if status.phase is Phase.VALIDATING else (None, {})
    analysis = analyzer.analyze(spec, status, now) if status.phase is Phase.PROGRESSING else None
    router_weight = edges.router.get_weight(edges.target) if status.phase is Phase.PROGRESSING else None
    alias = None
    if status.phase is Phase.PROGRESSING:
        holder = edges.registry.get_alias(spec.model, spec.alias)
        alias = holder.version if holder else None
    return Observations(
        validation=validation,
        validation_evidence=evidence,
        analysis=analysis,
        router_weight=router_weight,
        current_alias_version=alias,
    )


def reconcile_once(rollout_id: int, edges: Edges, analyzer: Analyzer, now: float) -> Outcome:
    record = edges.store.get_rollout(rollout_id)
    spec, status = RolloutSpec.from_dict(record.spec), RolloutStatus.from_dict(record.status)
    decision = decide(spec, status, observe(spec, status, edges, analyzer, now), now)
    events = apply_actions(rollout_id, decision.actions, edges, now)
    if decision.status == status and not events:
        return Outcome(decision, wrote=False)
    try:
        edges.store.save_rollout(rollout_id, record.revision, record.spec, decision.status.to_dict(), events, now)
    except ConflictError:
        # A user intent (pause, abort, ...) changed the spec meanwhile. The actions applied
        # are idempotent; the next reconcile decides again from the fresh record.
        return Outcome(Decision(decision.actions, status, 0.0), wrote=False)
    return Outcome(decision, wrote=True)
