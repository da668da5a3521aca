"""One reconcile of a ModelRollout: the rollout loop (controlplane/rollout/loop.py) over the
resource (kube_state.ResourceState), plus what only the cluster has: a new version asked for is
checked against the cluster before anything is touched, and the previous version's traffic undone.

Every action is idempotent, and the status only moves forward through a successful (conditional)
status write. No retries here: the client retries transient failures, the controller requeues the
rest. Incidents (rollback, failed validation, inconclusive pause) are opened in the store and
notified like the local target's when the controller has one (--audit-db), and always kept in
``status.history``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri, version_of_uri
from controlplane.adapters.routers.kserve import GROUP as KS_GROUP
from controlplane.adapters.routers.kserve import PLURAL as KS_PLURAL
from controlplane.adapters.routers.kserve import VERSION as KS_VERSION
from controlplane.adapters.routers.kserve import storage_uri
from controlplane.app import kube_rollout as cr_
from controlplane.app.kube_edges import NoGate
from controlplane.app.kube_state import Audit, Events, ResourceState, RolloutContext
from controlplane.engine import Observations, RolloutSpec, RolloutStatus, decide
from controlplane.engine.types import Phase
from controlplane.errors import InputError, NotFoundError
from controlplane.ports import ModelRegistry
from controlplane.rollout.apply import IncidentSink, Ports, ValidationGate, apply_actions
from controlplane.rollout.loop import NOT_LEADER_RETRY_S, reconcile
from controlplane.rollout.observe import Analyzer

log = logging.getLogger("controlplane.controller")
GateFactory = Callable[[RolloutSpec], ValidationGate]


class IncidentAudit(Audit, Protocol):
    def incidents(self, cr: Mapping[str, Any]) -> IncidentSink: ...


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
        audit: IncidentAudit | None = None,
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
        if stored.get("version") != cr_.spec_of(cr).get("version"):
            return self._start(cr, stored, now)
        status = cr_.engine_status(cr)
        if status.phase.terminal and not (status.finalizing or stored.get("finalizing")):
            # nothing left to decide (a refused spec may not even parse): only the status kept current
            ended = ResourceState(self.client, cr, None, stored.get("stableVersion"), self.events, self.audit,
                                  self.can_write)
            ended.save(status, [], cr["metadata"].get("resourceVersion"), now)
            return self._result(ended, None)
        ctx = RolloutContext.of(self.client, cr, stored.get("stableVersion"))
        state = self._state(ctx)
        outcome = reconcile(state, self._ports(ctx), self.analyzer, now, self.can_write)
        return self._result(state, outcome.requeue_after)

    # ---- the steps ----------------------------------------------------------------------

    def _start(self, cr: dict[str, Any], stored: dict[str, Any], now: float) -> Result:
        """A new version asked for: check everything before touching anything."""
        previous = cr_.engine_status(cr)
        if stored.get("version") is not None and not previous.phase.terminal and self.can_write():
            old = RolloutContext.of(self.client, cr, stored.get("stableVersion"), version=stored["version"])
            old.router.reset(old.target)
            old.workloads.retire_canary(old.target)
        problems = cr_.resource_problems(cr)
        ctx: RolloutContext | None = None
        if not problems:
            problems, ctx = self._check_cluster(cr)
        if problems or ctx is None:
            message = "refused: " + "; ".join(problems)
            failed = RolloutStatus().evolve(phase=Phase.FAILED, message=message, finished_at=now)
            state = ResourceState(self.client, cr, None, None, self.events, self.audit, self.can_write,
                                  fresh=True, warning=frozenset({"Refused"}))
            state.save(failed, [("Refused", message, {})], cr["metadata"].get("resourceVersion"), now)
            return self._result(state, None)
        state = self._state(ctx, fresh=True)
        snap = state.load()
        ports = self._ports(ctx)
        decision = decide(ctx.spec, snap.status, Observations(), now)
        if not self.can_write():
            return Result(NOT_LEADER_RETRY_S)
        state.save(decision.status, apply_actions(decision.actions, ports, state, now), snap.token, now)
        return self._result(state, decision.requeue_after)

    def _check_cluster(self, cr: Mapping[str, Any]) -> tuple[list[str], RolloutContext | None]:
        """The problems of the rollout against the cluster; its context when there are none."""
        s = cr_.spec_of(cr)
        ns = str((cr.get("metadata") or {}).get("namespace"))
        kind = cr_.router_type(cr)
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
            return [f"{what} {ns}/{ref} not found"], None
        stable = s.get("stableVersion") or version_of_uri(uri)
        ctx = RolloutContext.of(self.client, cr, stable)
        problems: list[str] = []
        try:
            ctx.router.get_weight(ctx.target)
        except InputError as exc:  # missing or unusable route; API trouble propagates and is retried
            problems.append(f"router {kind}: {exc}")
        if stable is None:
            problems.append("cannot tell which version stable serves: set spec.stableVersion, or the "
                            "rollouts.attn-controlplane.dev/model-uri annotation on its pod template")
        if stable == ctx.spec.version:
            problems.append(f"{ctx.spec.model}:v{ctx.spec.version} is already the stable version")
        if not ctx.spec.skip_validation and self.gate_factory is None:
            problems.append("validation requested but this controller has no validation engine "
                            "(run it with --validation argo, or set skipValidation: true)")
        return problems, None if problems else ctx

    def _state(self, ctx: RolloutContext, fresh: bool = False) -> ResourceState:
        return ResourceState(self.client, ctx.cr, ctx.spec, ctx.spec.stable_version, self.events, self.audit,
                             self.can_write, fresh=fresh)

    def _ports(self, ctx: RolloutContext) -> Ports:
        gate = self.gate_factory(ctx.spec) if self.gate_factory and not ctx.spec.skip_validation else NoGate()
        incidents = self.audit.incidents(ctx.cr) if self.audit is not None else None
        return Ports(ctx.target, ctx.router, ctx.workloads, gate, registry=self.registry, incidents=incidents)

    @staticmethod
    def _result(state: ResourceState, requeue: float | None) -> Result:
        if state.deferred:
            return Result(NOT_LEADER_RETRY_S)
        written = state.written
        if written is None:
            return Result(requeue)
        return Result(requeue, wrote=True, resource_version=(written.get("metadata") or {}).get("resourceVersion"),
                      written=written)
