"""Drive one store-backed rollout on the local target until it ends.

The loop is the only place that sleeps; everything it does per turn is reconcile_once.
State lives in the store (the --timeout deadline included), so a killed runner is replaced by
a new one that resumes where it stopped: any intent command (`ctl resume`, `ctl pause`, ...)
starts one when none is alive (see local_intents).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from controlplane.app.context import Context
from controlplane.app.executor import Edges, apply_actions
from controlplane.app.gate import local_gate
from controlplane.app.incident_sink import StoreIncidentSink
from controlplane.app.reconcile import Analyzer, Outcome, reconcile_once
from controlplane.app.runner_lease import hold, try_hold
from controlplane.app.slo_analyzer import SloAnalyzer, latency_threshold, load_rollout_slo
from controlplane.engine import RolloutSpec, RolloutStatus, decide_intents
from controlplane.errors import ConflictError
from controlplane.local.corpus import default_corpus
from controlplane.local.fleet import Fleet
from controlplane.local.router import LocalRouter
from controlplane.local.samples import ServingMetrics
from controlplane.local.target import LocalTarget
from controlplane.local.workloads import LocalWorkloads
from controlplane.ports import ModelRegistry, RolloutRecord, RouteTarget

# At the local target's ~40 req/s a 5 % canary sees ~2 req/s: 10 requests is one short step's worth.
LOCAL_MIN_CANARY_REQUESTS = 10.0


@dataclass
class LocalRunOptions:
    rate: float = 40.0
    workers: int = 2
    metrics_port: int | None = None
    corpus: list[str] | None = None
    device: str = "cpu"


def route_target(record: RolloutRecord) -> RouteTarget:
    spec = RolloutSpec.from_dict(record.spec)
    return RouteTarget(
        namespace="local",
        name=f"{spec.model}-{record.id}",
        model=spec.model,
        stable_version=spec.stable_version,
        canary_version=spec.version,
    )


def run_local(
    ctx: Context,
    rollout_id: int,
    options: LocalRunOptions | None = None,
    on_change: Callable[[RolloutRecord, Outcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutRecord:
    with hold(ctx.settings.home, rollout_id):
        return _drive(ctx, rollout_id, options or LocalRunOptions(), on_change, sleep)


def _drive(
    ctx: Context,
    rollout_id: int,
    options: LocalRunOptions,
    on_change: Callable[[RolloutRecord, Outcome], None] | None,
    sleep: Callable[[float], None],
) -> RolloutRecord:
    record = ctx.store.get_rollout(rollout_id)
    if _settle_held(ctx, rollout_id) or not record.active:  # nothing to serve: no model is loaded
        return ctx.store.get_rollout(rollout_id)
    spec = RolloutSpec.from_dict(record.spec)
    slo = load_rollout_slo(spec, default_min_requests=LOCAL_MIN_CANARY_REQUESTS)
    target = route_target(record)
    local = LocalTarget(
        model=spec.model,
        registry=ctx.registry,
        corpus=options.corpus or default_corpus(),
        rate=options.rate,
        workers=options.workers,
        latency_threshold_s=latency_threshold(slo),
        metrics_port=options.metrics_port,
        clock=ctx.clock,
    )
    edges = Edges(
        target=target,
        router=local.router,
        workloads=local.workloads,
        registry=ctx.registry,
        gate=local_gate(ctx, spec, options.device),
        incidents=StoreIncidentSink(ctx.store),
        store=ctx.store,
    )
    analyzer: Analyzer = SloAnalyzer(local.provider, slo)
    _restore(local, record, edges)
    local.start(target)
    try:
        while True:
            outcome = reconcile_once(rollout_id, edges, analyzer, ctx.now())
            record = ctx.store.get_rollout(rollout_id)
            if on_change is not None and outcome.wrote:
                on_change(record, outcome)
            if outcome.decision.requeue_after is None:
                return record
            sleep(min(outcome.decision.requeue_after, 1.0))
    finally:
        local.stop()


def _restore(local: LocalTarget, record: RolloutRecord, edges: Edges) -> None:
    """After a restart, re-establish what the status says is running (weight, canary)."""
    status = RolloutStatus.from_dict(record.status)
    if status.weight > 0 and not status.phase.terminal:
        local.workloads.ensure_canary(edges.target)
        local.router.set_weight(edges.target, status.weight)


def settle(ctx: Context, rollout_id: int) -> bool:
    """Carry out a pending rollback, abort or expired --timeout of a rollout no runner drives,
    here and now. The local target's servers live in its runner: with the runner gone no
    traffic reaches the canary, so ending the rollout is the engine's decision applied to a
    router and fleet of this process (traffic reset, canary retired, validation stopped) and
    persisted with its events. Holds the runner lease meanwhile, so no runner starts halfway.
    True when the rollout ended here; False when a runner holds the lease or the pending
    decision (a pause) needs one."""
    with try_hold(ctx.settings.home, rollout_id) as held:
        return held and _settle_held(ctx, rollout_id)


def _settle_held(ctx: Context, rollout_id: int, attempts: int = 5) -> bool:
    for _ in range(attempts):
        record = ctx.store.get_rollout(rollout_id)
        if not record.active:
            return False
        spec, status = RolloutSpec.from_dict(record.spec), RolloutStatus.from_dict(record.status)
        now = ctx.now()
        decision = decide_intents(spec, status, now)
        if decision is None or not decision.status.phase.terminal:
            return False
        events = apply_actions(rollout_id, decision.actions, _bookkeeping_edges(ctx, record, spec), now)
        try:
            ctx.store.save_rollout(rollout_id, record.revision, record.spec, decision.status.to_dict(), events, now)
        except ConflictError:  # an intent was recorded meanwhile: decide again
            continue
        return True
    return False


def _bookkeeping_edges(ctx: Context, record: RolloutRecord, spec: RolloutSpec) -> Edges:
    registry = cast(ModelRegistry, _LazyRegistry(ctx))  # ending a rollout never reads the registry
    return Edges(
        target=route_target(record),
        router=LocalRouter(),
        workloads=LocalWorkloads(Fleet(spec.model, ServingMetrics(), ctx.clock), registry),
        registry=registry,
        gate=local_gate(ctx, spec),
        incidents=StoreIncidentSink(ctx.store),
        store=ctx.store,
    )


class _LazyRegistry:
    """``ctx.registry`` opened on first use only (opening it imports MLflow: seconds)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx.registry, name)
