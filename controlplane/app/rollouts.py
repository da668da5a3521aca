"""Rollout use cases on the store: start, read, and the user's intents."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controlplane.app.context import Context
from controlplane.engine import RolloutSpec, RolloutStatus
from controlplane.engine.checks import spec_problems
from controlplane.errors import ConflictError, InputError, NotFoundError
from controlplane.extras import require
from controlplane.ports import EventRecord, RolloutRecord
from controlplane.refs import check_name, parse_versioned_ref

LOCAL_ROUTERS = frozenset({"local"})
KUBE_ROUTERS = frozenset({"gateway-api", "istio", "kserve", "replica-ratio"})
INTENTS = ("pause", "resume", "abort", "rollback")


def start_rollout(ctx: Context, ref_text: str, **options: Any) -> RolloutRecord:
    """Check the request against the registry and create the rollout row (nothing else)."""
    if options.get("target", "local") == "local":
        require("all", "the local target (--target local)")
    ref = parse_versioned_ref(ref_text)
    assert ref.version is not None
    ctx.registry.get_version(ref.name, ref.version)  # NotFoundError with a clear message
    alias = options.get("alias", "production")
    holder = ctx.registry.get_alias(ref.name, alias)
    stable = holder.version if holder else None
    if stable == ref.version:
        raise InputError(f"{ref} already holds alias '{alias}': nothing to promote")
    spec = RolloutSpec(model=ref.name, version=ref.version, stable_version=stable, **options)
    routers = LOCAL_ROUTERS if spec.target == "local" else KUBE_ROUTERS
    problems = spec_problems(spec, routers)
    if problems:
        raise InputError("; ".join(problems))
    return ctx.store.create_rollout(spec.to_dict(), RolloutStatus().to_dict(), ctx.now())


def find_rollout(ctx: Context, model: str, active_only: bool = False) -> RolloutRecord:
    """The active rollout of ``model``, else (unless active_only) its most recent one."""
    check_name(model)
    active = ctx.store.active_rollout(model)
    if active is not None:
        return active
    if not active_only:
        history = ctx.store.list_rollouts(model)
        if history:
            return max(history, key=lambda r: r.id)
    raise NotFoundError(f"model {model!r} has no {'active ' if active_only else ''}rollout")


def request(ctx: Context, model: str, intent: str, attempts: int = 5, reason: str | None = None) -> RolloutRecord:
    """Record a user intent on the active rollout (``reason``: why, when not the user's own
    command); the reconcile loop acts on it."""
    if intent not in INTENTS:
        raise InputError(f"unknown intent {intent!r}")
    for _ in range(attempts):
        record = find_rollout(ctx, model, active_only=True)
        spec = RolloutSpec.from_dict(record.spec)
        spec = _apply_intent(spec, intent)
        evidence = {"intent": intent, **({"reason": reason} if reason else {})}
        event = (f"{intent.capitalize()}Requested", f"{intent} requested: {reason}" if reason else
                 f"{intent} requested by user", evidence)
        try:
            return ctx.store.save_rollout(record.id, record.revision, spec.to_dict(), record.status, [event], ctx.now())
        except ConflictError:
            continue
    raise ConflictError(f"could not record {intent} on {model}: the rollout kept changing; try again")


def _apply_intent(spec: RolloutSpec, intent: str) -> RolloutSpec:
    if intent == "pause":
        return replace(spec, paused=True)
    if intent == "resume":
        return replace(spec, paused=False, resume_requests=spec.resume_requests + 1)
    if intent == "abort":
        return replace(spec, abort=True)
    return replace(spec, rollback=True)


def history(ctx: Context, model: str) -> list[dict[str, Any]]:
    """Every rollout of ``model`` with its events and analysis evidence (oldest first)."""
    check_name(model)
    rollouts = sorted(ctx.store.list_rollouts(model), key=lambda r: r.id)
    if not rollouts and model not in ctx.registry.list_models():
        raise NotFoundError(f"unknown model {model!r}")
    return [describe(ctx, r, with_events=True) for r in rollouts]


def describe(ctx: Context, record: RolloutRecord, with_events: bool = False) -> dict[str, Any]:
    status = record.status
    data: dict[str, Any] = {
        "id": record.id,
        "model": record.model,
        "version": record.version,
        "ref": f"{record.model}:v{record.version}",
        "stable_version": record.spec.get("stable_version"),
        "phase": status.get("phase"),
        "weight": status.get("weight"),
        "step": status.get("step_index"),
        "steps": record.spec.get("steps"),
        "message": status.get("message"),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    if with_events:
        data["events"] = [_event(e) for e in ctx.store.list_events(record.id)]
        data["analysis"] = [
            {"step": a.step_index, "weight": a.weight, "verdict": a.verdict, "reason": a.reason, "evidence": a.evidence}
            for a in ctx.store.list_analysis(record.id)
        ]
    return data


def _event(e: EventRecord) -> dict[str, Any]:
    return {"at": e.at, "kind": e.kind, "phase": e.phase, "message": e.message, "evidence": e.evidence}
