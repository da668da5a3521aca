"""A ModelRollout as the rollout loop sees it: one context per reconcile, and ResourceState (a
rollout.state.RolloutState over the resource).

``RolloutContext`` (as Argo Rollouts' rolloutContext): the resource parsed into a RolloutSpec,
its route target, router and workloads, built once per reconcile.

``ResourceState``: the resource is the source of truth. The engine's status lives in
``status.state``, the transitions in ``status.history`` (bounded), both written in ONE status
patch that carries the resourceVersion read at the start, so a concurrent change of the rollout
(a pause, a new version) fails the write with 409 and the next reconcile decides again from
fresh data. Kubernetes Events are emitted after the write (they mirror the history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import make_workloads
from controlplane.adapters.routers import make_router
from controlplane.app import kube_rollout as cr_
from controlplane.engine import RolloutSpec, RolloutStatus
from controlplane.engine.types import OpenIncident, RecordAnalysis
from controlplane.ports import RouteTarget, TrafficRouter, Workloads
from controlplane.rollout.state import Event, Snapshot

HISTORY_LIMIT = 100
QUIET_KINDS = frozenset({"Analysis", "AliasNotMoved", "PromotionFinalized"})  # kept in status.history, not mirrored as Events
WARNING_KINDS = frozenset({"RolledBack", "Aborted", "Incident", "ValidationFailed", "WeightDrift"})


class Events(Protocol):
    def emit(self, cr: Mapping[str, Any], kind: str, message: str, warning: bool) -> None: ...


class Audit(Protocol):
    def sync(self, cr: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class RolloutContext:
    cr: Mapping[str, Any]
    spec: RolloutSpec
    target: RouteTarget
    router: TrafficRouter
    workloads: Workloads

    @classmethod
    def of(cls, client: KubeClient, cr: Mapping[str, Any], stable: int | None,
           version: int | None = None) -> RolloutContext:
        """``version``: the context of an earlier version of the rollout (to undo its traffic)."""
        spec = cr_.engine_spec(cr, stable)
        if version is not None:
            spec = replace(spec, version=version)
        return cls(cr, spec, cr_.route_target(cr, spec), make_router(spec.router, client),
                   make_workloads(spec.router, client))


class ResourceState:
    """The rollout ``cr`` as read at the start of one reconcile; ``spec``: its
    RolloutSpec (None for a rollout refused before it was parsed). ``fresh``: a new version
    starts (the history starts over). ``written``: the resource as the status write returned it;
    ``deferred``: a write was due but this replica may not write now."""

    def __init__(
        self, client: KubeClient, cr: Mapping[str, Any], spec: RolloutSpec | None, stable: int | None,
        events: Events, audit: Audit | None, can_write: Callable[[], bool], *, fresh: bool = False,
        warning: frozenset[str] = frozenset(),
    ) -> None:
        self.client, self.cr, self.spec, self.stable, self.events, self.audit = client, cr, spec, stable, events, audit
        self.can_write, self.fresh, self.warning = can_write, fresh, warning
        self.written: dict[str, Any] | None = None
        self.deferred = False

    def load(self) -> Snapshot:
        assert self.spec is not None
        status = RolloutStatus() if self.fresh else cr_.engine_status(self.cr)
        if (self.cr.get("status") or {}).get("finalizing") and not self.fresh:  # written by an older controller
            status = status.evolve(finalizing=True)
        return Snapshot(self.spec, status, self.cr["metadata"].get("resourceVersion"))

    def journal(self, action: RecordAnalysis | OpenIncident, now: float) -> list[Event]:
        if isinstance(action, RecordAnalysis):
            message = f"step {action.step_index + 1} at {action.weight}%: {action.verdict} ({action.reason})"
            return [("Analysis", message, dict(action.evidence))]
        return [("Incident", f"{action.failure_mode}: {action.summary}",
                 {"severity": action.severity, **action.evidence})]

    def save(self, status: RolloutStatus, events: list[Event], token: Any, now: float) -> bool:
        cr = self.cr
        stored = dict(cr.get("status") or {})
        history = [_entry(now, kind, message, status, evidence) for kind, message, evidence in events]
        body = cr_.status_body(cr, status, self.stable)
        body["version"] = cr_.spec_of(cr).get("version")
        body["finalizing"] = "promotion" if status.finalizing else None  # readable without status.state
        old_history = [] if self.fresh else list(stored.get("history") or [])
        seq = int(old_history[-1].get("seq", len(old_history) - 1)) + 1 if old_history else 0
        for offset, entry in enumerate(history):
            entry["seq"] = seq + offset  # gap-free numbering: the audit mirror checks it
        body["history"] = (old_history + history)[-HISTORY_LIMIT:]
        if _prune(body) == _prune(stored):
            if self.audit is not None:
                self.audit.sync(cr)
            return False
        if not self.can_write():
            self.deferred = True
            return False
        patch = {"metadata": {"resourceVersion": token}, "status": body}
        meta = cr["metadata"]
        written = self.client.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, meta["namespace"], meta["name"], patch,
                                           subresource="status")
        self.written = written
        if self.audit is not None:
            self.audit.sync(written)
        for entry in history:
            kind = entry["kind"]
            if kind not in QUIET_KINDS:
                self.events.emit(written, kind, entry["message"], kind in self.warning or kind in WARNING_KINDS)
        return True


def _entry(
    now: float, kind: str, message: str, status: RolloutStatus, evidence: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": round(now, 3), "kind": kind, "message": message[:500], "phase": status.phase.value,
        "stepIndex": status.step_index, "weight": status.weight,
    }
    if evidence:  # scalars, and flat maps of scalars (a validation's check -> status); nothing deeper
        entry["evidence"] = {k: v for k, v in evidence.items() if _scalar(v) or (
            isinstance(v, Mapping) and len(v) <= 16 and all(_scalar(x) for x in v.values()))}
    return entry


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _prune(value: Any) -> Any:
    """Drop None values (a merge patch deletes those keys), so a body compares with what is stored."""
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
