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
from controlplane.app.gate import local_gate
from controlplane.app.incident_sink import StoreIncidentSink
from controlplane.app.runner_lease import hold, try_hold
from controlplane.app.slo_analyzer import SloAnalyzer, latency_threshold, load_rollout_slo
from controlplane.app.store_state import StoreState, reconcile_once
from controlplane.engine import RolloutSpec, RolloutStatus, decide_intents
from controlplane.errors import ConflictError
from controlplane.local.corpus import default_corpus
from controlplane.local.fleet import Fleet
from controlplane.local.router import LocalRouter
from controlplane.local.samples import ServingMetrics
from controlplane.local.target import LocalTarget
from controlplane.local.workloads import LocalWorkloads
from controlplane.ports import ModelRegistry, RolloutRecord, RouteTarget
from controlplane.retry import with_retry
from controlplane.rollout.apply import Ports, apply_actions
from controlplane.rollout.loop import Outcome
from controlplane.rollout.observe import Analyzer

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
    ports = Ports(
        target=target,
        router=local.router,
        workloads=local.workloads,
        gate=local_gate(ctx, spec, options.device),
        registry=ctx.registry,
        incidents=StoreIncidentSink(ctx.store, rollout_id),
        retry=with_retry,
    )
    state = StoreState(ctx.store, rollout_id)
    analyzer: Analyzer = SloAnalyzer(local.provider, slo)
    _restore(local, record, target)
    local.start(target)
    try:
        while True:
            outcome = reconcile_once(state, ports, analyzer, ctx.now())
            record = ctx.store.get_rollout(rollout_id)
            if on_change is not None and outcome.wrote:
                on_change(record, outcome)
            if outcome.decision.requeue_after is None:
                return record
            sleep(min(outcome.decision.requeue_after, 1.0))
    finally:
        local.stop()


def _restore(local: LocalTarget, record: RolloutRecord, target: RouteTarget) -> None:
    """After a restart, re-establish what the status says is running (weight, canary)."""
    status = RolloutStatus.from_dict(record.status)
    if status.weight > 0 and not status.phase.terminal:
        local.workloads.ensure_canary(target)
        local.router.set_weight(target, status.weight)


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
    state = StoreState(ctx.store, rollout_id)
    for _ in range(attempts):
        snap = state.load()
        if snap.status.phase.terminal:
            return False
        now = ctx.now()
        decision = decide_intents(snap.spec, snap.status, now)
        if decision is None or not decision.status.phase.terminal:
            return False
        record = ctx.store.get_rollout(rollout_id)
        events = apply_actions(decision.actions, _bookkeeping_ports(ctx, record, snap.spec), state, now)
        try:
            state.save(decision.status, events, snap.token, now)
        except ConflictError:  # an intent was recorded meanwhile: decide again
            continue
        return True
    return False


def _bookkeeping_ports(ctx: Context, record: RolloutRecord, spec: RolloutSpec) -> Ports:
    registry = cast(ModelRegistry, _LazyRegistry(ctx))  # ending a rollout never reads the registry
    return Ports(
        target=route_target(record),
        router=LocalRouter(),
        workloads=LocalWorkloads(Fleet(spec.model, ServingMetrics(), ctx.clock), registry),
        gate=local_gate(ctx, spec),
        registry=registry,
        incidents=StoreIncidentSink(ctx.store, record.id),
        retry=with_retry,
    )


class _LazyRegistry:
    """``ctx.registry`` opened on first use only (opening it imports MLflow: seconds)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx.registry, name)
