"""One reconcile of a ModelRollout: observe → decide (the pure engine) → apply → write status once.

The resource is the source of truth: the engine's status lives in ``status.state``, the
transitions in ``status.history`` (bounded), both written in ONE status patch that carries the
resourceVersion read at the start, so a concurrent change of the rollout (a pause, a new
version) fails the write with 409 and the next reconcile decides again from fresh data. Every
action is idempotent (set weight N, scale to zero), so re-applying after a crash or a conflict
is safe; the status only moves forward through a successful write, so no step is skipped or
counted twice. Kubernetes Events are emitted after the write (they mirror the history).
No retries here: the client retries transient failures, the controller requeues the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import make_workloads, served_uri, version_of_uri
from controlplane.adapters.routers import make_router
from controlplane.adapters.routers.kserve import GROUP as KS_GROUP
from controlplane.adapters.routers.kserve import PLURAL as KS_PLURAL
from controlplane.adapters.routers.kserve import VERSION as KS_VERSION
from controlplane.adapters.routers.kserve import storage_uri
from controlplane.app import kube_rollout as cr_
from controlplane.app.executor import ValidationGate
from controlplane.app.kube_edges import NoGate
from controlplane.app.reconcile import Analyzer
from controlplane.engine import Observations, RolloutSpec, RolloutStatus, decide
from controlplane.engine.types import (
    Action,
    FinalizePromotion,
    OpenIncident,
    Phase,
    RecordAnalysis,
    RecordEvent,
    ResetTraffic,
    SetAlias,
    SetWeight,
    StartValidation,
    TerminateValidation,
)
from controlplane.errors import InputError, NotFoundError, TemporaryError
from controlplane.ports import ModelRegistry, RouteTarget

log = logging.getLogger("controlplane.controller")
HISTORY_LIMIT = 100
FINALIZE_POLL_S = 1.0  # a promoted rollout waiting for stable to be available
NOT_LEADER_RETRY_S = 1.0  # leadership in doubt (a renewal late): look again soon, write nothing now
QUIET_KINDS = frozenset({"Analysis", "AliasNotMoved", "PromotionFinalized"})  # kept in status.history, not mirrored as Events
GateFactory = Callable[[RolloutSpec], ValidationGate]


class Events(Protocol):
    def emit(self, cr: Mapping[str, Any], kind: str, message: str, warning: bool) -> None: ...


class Audit(Protocol):
    def sync(self, cr: Mapping[str, Any]) -> None: ...


@dataclass
class Result:
    requeue_after: float | None
    wrote: bool = False
    resource_version: str | None = None
    written: dict[str, Any] | None = None  # the rollout as the status write returned it


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        analyzer: Analyzer,
        events: Events,
        *,
        gate_factory: GateFactory | None = None,
        registry: ModelRegistry | None = None,
        can_write: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        audit: Audit | None = None,
    ) -> None:
        self.client, self.analyzer, self.events, self.audit = client, analyzer, events, audit
        self.gate_factory, self.registry, self.can_write, self.clock = gate_factory, registry, can_write, clock

    def reconcile(self, namespace: str, name: str, cached: dict[str, Any] | None = None) -> Result:
        """``cached``: the rollout as the watch last delivered it (saves a GET). A stale copy is
        harmless: the status write is conditional on its resourceVersion, so it fails with 409
        and the caller reconciles again from a fresh GET."""
        try:
            cr = cached or self.client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name)
        except NotFoundError:
            return Result(None)
        if (cr.get("metadata") or {}).get("deletionTimestamp"):
            return Result(None)
        now = self.clock()
        stored = dict(cr.get("status") or {})
        spec_version = cr_.spec_of(cr).get("version")
        if stored.get("version") != spec_version:
            return self._start(cr, stored, now)
        status = cr_.engine_status(cr)
        stable = stored.get("stableVersion")
        if status.phase.terminal:
            if not stored.get("finalizing"):
                return self._write(cr, status, stable, [], now, None)
            done = self._finish_promotion(cr, stable)
            entry = [_entry(now, "PromotionFinalized", "stable serves the new version; traffic back on stable; "
                            "canary scaled to zero", status)] if done else []
            return self._write(cr, status, stable, entry, now, None if done else FINALIZE_POLL_S, finalizing=not done)
        spec = cr_.engine_spec(cr, stable)
        target = cr_.route_target(cr, spec)
        router = make_router(spec.router, self.client)
        gate = self._gate(spec)
        obs = self._observe(spec, status, target, router, gate, now)
        decision = decide(spec, status, obs, now)
        if not self.can_write():
            return Result(NOT_LEADER_RETRY_S)
        history, finalizing = self._apply(decision.actions, spec, target, router, gate, decision.status, now)
        requeue = FINALIZE_POLL_S if finalizing else decision.requeue_after
        return self._write(cr, decision.status, stable, history, now, requeue, finalizing=finalizing)

    # ---- the steps ----------------------------------------------------------------------

    def _start(self, cr: dict[str, Any], stored: dict[str, Any], now: float) -> Result:
        """A new version asked for: check everything before touching anything."""
        previous = cr_.engine_status(cr)
        if stored.get("version") is not None and not previous.phase.terminal and self.can_write():
            old = cr_.engine_spec(cr, stored.get("stableVersion"))
            old = RolloutSpec.from_dict({**old.to_dict(), "version": stored["version"]})
            target = cr_.route_target(cr, old)
            make_router(old.router, self.client).reset(target)
            make_workloads(old.router, self.client).retire_canary(target)
        problems = cr_.resource_problems(cr)
        stable: int | None = None
        if not problems:
            problems, stable = self._check_cluster(cr)
        fresh = RolloutStatus()
        if problems:
            message = "refused: " + "; ".join(problems)
            failed = fresh.evolve(phase=Phase.FAILED, message=message, finished_at=now)
            entry = _entry(now, "Refused", message, failed)
            return self._write(cr, failed, None, [entry], now, None, warning={"Refused"}, fresh=True)
        spec = cr_.engine_spec(cr, stable)
        target = cr_.route_target(cr, spec)
        router, gate = make_router(spec.router, self.client), self._gate(spec)
        decision = decide(spec, fresh, Observations(), now)
        if not self.can_write():
            return Result(NOT_LEADER_RETRY_S)
        history, _ = self._apply(decision.actions, spec, target, router, gate, decision.status, now)
        return self._write(cr, decision.status, stable, history, now, decision.requeue_after, fresh=True)

    def _check_cluster(self, cr: Mapping[str, Any]) -> tuple[list[str], int | None]:
        s = cr_.spec_of(cr)
        ns = str((cr.get("metadata") or {}).get("namespace"))
        kind = cr_.router_type(cr)
        problems: list[str] = []
        uri: str | None = None
        try:
            if kind == "kserve":
                isvc_name = str((s.get("router") or {}).get("inferenceService"))
                uri = storage_uri(self.client.get_custom(KS_GROUP, KS_VERSION, KS_PLURAL, ns, isvc_name))
            else:
                uri = served_uri(self.client.get_deployment(ns, str(s.get("deployment"))))
        except NotFoundError:
            what = "InferenceService" if kind == "kserve" else "stable Deployment"
            ref = (s.get("router") or {}).get("inferenceService") if kind == "kserve" else s.get("deployment")
            problems.append(f"{what} {ns}/{ref} not found")
        stable = s.get("stableVersion") or version_of_uri(uri)
        if not problems:
            spec = cr_.engine_spec(cr, stable)
            try:
                make_router(kind, self.client).get_weight(cr_.route_target(cr, spec))
            except InputError as exc:  # missing or unusable route; API trouble propagates and is retried
                problems.append(f"router {kind}: {exc}")
            if stable is None:
                problems.append("cannot tell which version stable serves: set spec.stableVersion, or the "
                                "rollouts.attn-controlplane.dev/model-uri annotation on its pod template")
            if stable == spec.version:
                problems.append(f"{spec.model}:v{spec.version} is already the stable version")
            if not spec.skip_validation and self.gate_factory is None:
                problems.append("validation requested but this controller has no validation engine "
                                "(run it with --validation argo, or set skipValidation: true)")
        return problems, stable

    def _gate(self, spec: RolloutSpec) -> ValidationGate:
        return self.gate_factory(spec) if self.gate_factory and not spec.skip_validation else NoGate()

    def _observe(
        self, spec: RolloutSpec, status: RolloutStatus, target: RouteTarget, router: Any, gate: ValidationGate,
        now: float,
    ) -> Observations:
        if status.phase is Phase.VALIDATING:
            validation, evidence = gate.state()
            return Observations(validation=validation, validation_evidence=evidence)
        if status.phase is not Phase.PROGRESSING:
            return Observations()
        alias = self.registry.get_alias(spec.model, spec.alias) if self.registry else None
        return Observations(
            analysis=self.analyzer.analyze(spec, status, now),
            router_weight=router.get_weight(target),
            current_alias_version=alias.version if alias else spec.stable_version,
        )

    def _apply(
        self, actions: tuple[Action, ...], spec: RolloutSpec, target: RouteTarget, router: Any,
        gate: ValidationGate, new: RolloutStatus, now: float,
    ) -> tuple[list[dict[str, Any]], bool]:
        """The history entries to record, and whether a promotion still waits for stable."""
        workloads = make_workloads(spec.router, self.client)
        history: list[dict[str, Any]] = []
        finalizing = False
        for action in actions:
            if isinstance(action, SetWeight):
                if action.weight > 0:
                    workloads.ensure_canary(target)
                router.set_weight(target, action.weight)
            elif isinstance(action, ResetTraffic):
                router.reset(target)
                workloads.retire_canary(target)
            elif isinstance(action, FinalizePromotion):
                # stable on the new version and available, then traffic back to it, then the canary down
                if hasattr(workloads, "promote_stable"):
                    finalizing = not self._finalize(target, router, workloads)
                else:
                    workloads.promote(target)
                    router.reset(target)
            elif isinstance(action, SetAlias):
                if self.registry is not None:
                    self.registry.set_alias(action.model, action.alias, action.version)
                else:
                    history.append(_entry(now, "AliasNotMoved", f"no registry configured: alias '{action.alias}' "
                                          f"is left to the caller (v{action.version})", new))
            elif isinstance(action, StartValidation):
                gate.start(action.model, action.version)
            elif isinstance(action, TerminateValidation):
                gate.terminate()
            elif isinstance(action, RecordEvent):
                history.append(_entry(now, action.kind, action.message, new, action.evidence))
            elif isinstance(action, RecordAnalysis):
                message = f"step {action.step_index + 1} at {action.weight}%: {action.verdict} ({action.reason})"
                history.append(_entry(now, "Analysis", message, new, action.evidence))
            elif isinstance(action, OpenIncident):
                history.append(_entry(now, "Incident", f"{action.failure_mode}: {action.summary}", new,
                                      {"severity": action.severity, **action.evidence}))
        return history, finalizing

    def _finalize(self, target: RouteTarget, router: Any, workloads: Any) -> bool:
        """Stable on the new version and available → traffic back to stable → canary to zero.
        False while stable is not available yet: the rollout is already Promoted (the decision is
        made and written), and the controller finishes this on the next reconciles."""
        try:
            workloads.promote_stable(target)
        except TemporaryError as exc:
            log.info("%s/%s: %s", target.namespace, target.name, exc)
            return False
        router.reset(target)
        workloads.retire_canary(target)
        return True

    def _finish_promotion(self, cr: Mapping[str, Any], stable: int | None) -> bool:
        if not self.can_write():
            return False
        spec = cr_.engine_spec(cr, stable)
        target = cr_.route_target(cr, spec)
        return self._finalize(target, make_router(spec.router, self.client), make_workloads(spec.router, self.client))

    def _write(
        self, cr: Mapping[str, Any], status: RolloutStatus, stable: int | None, history: list[dict[str, Any]],
        now: float, requeue: float | None, warning: frozenset[str] | set[str] = frozenset(), fresh: bool = False,
        finalizing: bool = False,
    ) -> Result:
        stored = dict(cr.get("status") or {})
        body = cr_.status_body(cr, status, stable)
        body["version"] = cr_.spec_of(cr).get("version")
        body["finalizing"] = "promotion" if finalizing else None
        old_history = [] if fresh else list(stored.get("history") or [])
        seq = int(old_history[-1].get("seq", len(old_history) - 1)) + 1 if old_history else 0
        for offset, entry in enumerate(history):
            entry["seq"] = seq + offset  # gap-free numbering: the audit mirror checks it
        body["history"] = (old_history + history)[-HISTORY_LIMIT:]
        if _prune(body) == _prune(stored):
            if self.audit is not None:
                self.audit.sync(cr)
            return Result(requeue)
        if not self.can_write():
            return Result(NOT_LEADER_RETRY_S)
        patch = {"metadata": {"resourceVersion": cr["metadata"]["resourceVersion"]}, "status": body}
        meta = cr["metadata"]
        written = self.client.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, meta["namespace"], meta["name"], patch,
                                           subresource="status")
        if self.audit is not None:
            self.audit.sync(written)
        for entry in history:
            kind = entry["kind"]
            if kind in QUIET_KINDS:
                continue
            warn = kind in warning or kind in {"RolledBack", "Aborted", "Incident", "ValidationFailed", "WeightDrift"}
            self.events.emit(written, kind, entry["message"], warn)
        return Result(requeue, wrote=True, resource_version=(written.get("metadata") or {}).get("resourceVersion"),
                      written=written)


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
