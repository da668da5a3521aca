"""Apply the engine's actions at the edges. No decisions here: each action maps to calls.

Events (RecordEvent) are not applied: they are returned so that the caller persists
them in the same transaction as the new status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.engine.types import (
    Action,
    FinalizePromotion,
    OpenIncident,
    RecordAnalysis,
    RecordEvent,
    ResetTraffic,
    SetAlias,
    SetWeight,
    StartValidation,
    TerminateValidation,
    ValidationState,
)
from controlplane.ports import ModelRegistry, RouteTarget, Store, TrafficRouter, Workloads
from controlplane.retry import with_retry

Event = tuple[str, str, dict[str, Any]]


class ValidationGate(Protocol):
    def start(self, model: str, version: int) -> None: ...
    def state(self) -> tuple[ValidationState | None, dict[str, Any]]: ...
    def terminate(self) -> None: ...


class IncidentSink(Protocol):
    def open(self, rollout_id: int | None, model: str, version: int, incident: OpenIncident, now: float) -> None: ...


@dataclass
class Edges:
    """Everything the actions of one rollout act on."""

    target: RouteTarget
    router: TrafficRouter
    workloads: Workloads
    registry: ModelRegistry
    gate: ValidationGate
    incidents: IncidentSink
    store: Store


def apply_actions(rollout_id: int, actions: Sequence[Action], edges: Edges, now: float) -> list[Event]:
    events: list[Event] = []
    for action in actions:
        if isinstance(action, RecordEvent):
            events.append((action.kind, action.message, dict(action.evidence)))
        else:
            _apply(rollout_id, action, edges, now)
    return events


def _apply(rollout_id: int, action: Action, e: Edges, now: float) -> None:
    target = e.target
    if isinstance(action, SetWeight):
        if action.weight > 0:
            with_retry(lambda: e.workloads.ensure_canary(target))
        with_retry(lambda: e.router.set_weight(target, action.weight))
    elif isinstance(action, ResetTraffic):
        with_retry(lambda: e.router.reset(target))
        with_retry(lambda: e.workloads.retire_canary(target))
    elif isinstance(action, FinalizePromotion):
        with_retry(lambda: e.workloads.promote(target))
        with_retry(lambda: e.router.reset(target))
    elif isinstance(action, SetAlias):
        with_retry(lambda: e.registry.set_alias(action.model, action.alias, action.version))
    elif isinstance(action, StartValidation):
        e.gate.start(action.model, action.version)
    elif isinstance(action, TerminateValidation):
        e.gate.terminate()
    elif isinstance(action, OpenIncident):
        e.incidents.open(rollout_id, target.model, target.canary_version, action, now)
    elif isinstance(action, RecordAnalysis):
        e.store.add_analysis(
            rollout_id, action.step_index, action.weight, action.verdict, action.reason, dict(action.evidence), now
        )
    else:  # pragma: no cover - exhaustiveness guard
        raise TypeError(f"unknown action {action!r}")
