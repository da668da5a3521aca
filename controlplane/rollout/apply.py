"""The only interpreter of the engine's actions, for every target. No decisions here: each
action maps to calls on small ports (router, workloads, registry, validation gate, incident
sink) and to records for the rollout's state.

Events (RecordEvent) are not applied: they are returned, so that the state saves them with the
new status in one write. Incidents are opened (and notified) through the same sink on every
target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from controlplane.engine.types import (
    Action,
    FinalizePromotion,
    OpenIncident,
    PromoteStable,
    RecordAnalysis,
    RecordEvent,
    ResetTraffic,
    SetAlias,
    SetWeight,
    StartValidation,
    TerminateValidation,
    ValidationState,
)
from controlplane.ports import ModelRegistry, RouteTarget, TrafficRouter, Workloads
from controlplane.rollout.state import Event, RolloutState


class ValidationGate(Protocol):
    def start(self, model: str, version: int) -> None: ...
    def state(self) -> tuple[ValidationState | None, dict[str, Any]]: ...
    def terminate(self) -> None: ...


class IncidentSink(Protocol):
    def open(self, incident: OpenIncident, model: str, version: int, now: float) -> None: ...


def call(fn: Callable[[], object]) -> None:
    """Call once: the Kubernetes client retries transient failures itself."""
    fn()


@dataclass
class Ports:
    """Everything the actions of one rollout act on."""

    target: RouteTarget
    router: TrafficRouter
    workloads: Workloads
    gate: ValidationGate
    registry: ModelRegistry | None = None  # None: the alias is left to the caller (an AliasNotMoved event)
    incidents: IncidentSink | None = None  # None: incidents are kept in the rollout's own records only
    retry: Callable[[Callable[[], object]], object] = field(default=call)


def apply_actions(actions: Sequence[Action], p: Ports, state: RolloutState, now: float) -> list[Event]:
    """Apply ``actions`` in order; the events to save with the new status."""
    events: list[Event] = []
    for action in actions:
        if isinstance(action, RecordEvent):
            events.append((action.kind, action.message, dict(action.evidence)))
        elif isinstance(action, RecordAnalysis):
            events += state.journal(action, now)
        elif isinstance(action, OpenIncident):
            if p.incidents is not None:
                p.incidents.open(action, p.target.model, p.target.canary_version, now)
            events += state.journal(action, now)
        elif isinstance(action, SetAlias):
            if p.registry is not None:
                p.retry(partial(p.registry.set_alias, action.model, action.alias, action.version))
            else:
                events.append(("AliasNotMoved", f"no registry configured: alias '{action.alias}' is left "
                               f"to the caller (v{action.version})", {}))
        else:
            _apply(action, p)
    return events


def _apply(action: Action, p: Ports) -> None:
    target = p.target
    if isinstance(action, SetWeight):
        if action.weight > 0:
            p.retry(lambda: p.workloads.ensure_canary(target))
        p.retry(lambda: p.router.set_weight(target, action.weight))
    elif isinstance(action, ResetTraffic):
        p.retry(lambda: p.router.reset(target))
        p.retry(lambda: p.workloads.retire_canary(target))
    elif isinstance(action, PromoteStable):
        p.retry(lambda: p.workloads.promote_stable(target))
    elif isinstance(action, FinalizePromotion):
        p.retry(lambda: p.router.reset(target))
        promoted = replace(target, stable_version=target.canary_version)  # what "stable" means from now on
        p.retry(lambda: p.workloads.retire_canary(promoted))
    elif isinstance(action, StartValidation):
        p.gate.start(action.model, action.version)
    elif isinstance(action, TerminateValidation):
        p.gate.terminate()
    else:  # pragma: no cover - exhaustiveness guard
        raise TypeError(f"unknown action {action!r}")

