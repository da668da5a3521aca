"""Drive one store-backed rollout on the local target until it ends.

The loop is the only place that sleeps; everything it does per turn is reconcile_once.
State lives in the store, so a killed run resumes where it stopped (`ctl promote --resume`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.app.context import Context
from controlplane.app.executor import Edges
from controlplane.app.gate import local_gate
from controlplane.app.incident_sink import StoreIncidentSink
from controlplane.app.reconcile import Analyzer, Outcome, reconcile_once
from controlplane.app.rollouts import request
from controlplane.app.runner_lease import hold
from controlplane.app.slo_analyzer import SloAnalyzer, latency_threshold, load_rollout_slo
from controlplane.engine import RolloutSpec, RolloutStatus
from controlplane.errors import NotFoundError
from controlplane.local.corpus import default_corpus
from controlplane.local.target import LocalTarget
from controlplane.ports import RolloutRecord, RouteTarget

# At the local target's ~40 req/s a 5 % canary sees ~2 req/s: 10 requests is one short step's worth.
LOCAL_MIN_CANARY_REQUESTS = 10.0


@dataclass
class LocalRunOptions:
    rate: float = 40.0
    workers: int = 2
    metrics_port: int | None = None
    corpus: list[str] | None = None
    device: str = "cpu"
    timeout_s: float | None = None  # abort the rollout when it has not ended after this long


def timeout_reason(timeout_s: float) -> str:
    return f"not finished within the --timeout of {timeout_s:g}s"


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
    deadline = None if options.timeout_s is None else ctx.now() + options.timeout_s
    try:
        while True:
            if deadline is not None and ctx.now() >= deadline and options.timeout_s is not None:
                deadline = None  # once: the abort intent is recorded, the loop carries it out
                _abort(ctx, spec.model, timeout_reason(options.timeout_s))
            outcome = reconcile_once(rollout_id, edges, analyzer, ctx.now())
            record = ctx.store.get_rollout(rollout_id)
            if on_change is not None and outcome.wrote:
                on_change(record, outcome)
            if outcome.decision.requeue_after is None:
                return record
            sleep(min(outcome.decision.requeue_after, 1.0))
    finally:
        local.stop()


def _abort(ctx: Context, model: str, reason: str) -> None:
    with contextlib.suppress(NotFoundError):  # it ended meanwhile
        request(ctx, model, "abort", reason=reason)


def _restore(local: LocalTarget, record: RolloutRecord, edges: Edges) -> None:
    """After a restart, re-establish what the status says is running (weight, canary)."""
    status = RolloutStatus.from_dict(record.status)
    if status.weight > 0 and not status.phase.terminal:
        local.workloads.ensure_canary(edges.target)
        local.router.set_weight(edges.target, status.weight)
