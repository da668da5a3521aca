"""Rollout use cases on the store: start, read, and the user's intents."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from controlplane.app.context import Context
from controlplane.engine import RolloutSpec, RolloutStatus, plan_intent
from controlplane.engine.checks import spec_problems
from controlplane.engine.intents import INTENTS
from controlplane.errors import ConflictError, InputError, NotFoundError
from controlplane.extras import require
from controlplane.ports import EventRecord, RolloutRecord
from controlplane.refs import check_alias, check_name, parse_versioned_ref
from controlplane.rollout.intents import record_intent

LOCAL_ROUTERS = frozenset({"local"})
KUBE_ROUTERS = frozenset({"gateway-api", "istio", "kserve", "replica-ratio"})


@dataclass(frozen=True)
class IntentResult:
    record: RolloutRecord  # the rollout as the intent left it
    recorded: bool  # False: what was asked for already held or was already asked for
    note: str = ""  # why nothing was recorded


def start_rollout(ctx: Context, ref_text: str, **options: Any) -> RolloutRecord:
    """Check the request against the registry and create the rollout row (nothing else).
    ``timeout_s`` is stored with it: the engine turns it into an absolute deadline in the
    status when the rollout starts, so whichever process drives it (a runner restarted
    after a crash included) enforces it."""
    if options.get("target", "local") == "local":
        require("all", "the local target (--target local)")
    ref = parse_versioned_ref(ref_text)
    assert ref.version is not None
    alias = check_alias(options.get("alias", "production"))
    spec = RolloutSpec(model=ref.name, version=ref.version, **options)
    routers = LOCAL_ROUTERS if spec.target == "local" else KUBE_ROUTERS
    _refuse(spec_problems(spec, routers))  # the request itself first: bad input never opens the registry
    ctx.registry.get_version(ref.name, ref.version)  # NotFoundError with a clear message
    holder = ctx.registry.get_alias(ref.name, alias)
    stable = holder.version if holder else None
    if stable == ref.version:
        raise InputError(f"{ref} already holds alias '{alias}': nothing to promote")
    spec = replace(spec, stable_version=stable)
    _refuse(spec_problems(spec, routers))
    return ctx.store.create_rollout(spec.to_dict(), RolloutStatus().to_dict(), ctx.now())


def _refuse(problems: list[str]) -> None:
    if problems:
        raise InputError("; ".join(problems))


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


def request(ctx: Context, model: str, intent: str, attempts: int = 5) -> IntentResult:
    """Record a user intent on the model's rollout; the reconcile loop acts on it. A repeated or
    concurrent intent records nothing (optimistic concurrency: a writer that lost the race reads
    the winner's spec and finds the intent there). ConflictError when the intent does not apply."""
    if intent not in INTENTS:
        raise InputError(f"unknown intent {intent!r}")

    def attempt() -> IntentResult | None:
        record = _intent_target(ctx, model)
        plan = plan_intent(RolloutSpec.from_dict(record.spec), RolloutStatus.from_dict(record.status), intent)
        if plan.refused:
            raise ConflictError(f"rollout #{record.id} of {model} {plan.note}: nothing to {intent}")
        if plan.spec is None:
            return IntentResult(record, recorded=False, note=plan.note)
        event = (f"{intent.capitalize()}Requested", f"{intent} requested by user", {"intent": intent})
        try:
            saved = ctx.store.save_rollout(record.id, record.revision, plan.spec.to_dict(), record.status, [event], ctx.now())
        except ConflictError:
            return None
        return IntentResult(saved, recorded=True)

    return record_intent(attempt, intent, model, attempts)


def _intent_target(ctx: Context, model: str) -> RolloutRecord:
    try:
        return find_rollout(ctx, model)
    except NotFoundError:
        if model not in ctx.registry.list_models():
            raise NotFoundError(f"unknown model {model!r}") from None
        raise


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
        "deadline_at": status.get("deadline_at"),  # `promote --timeout`: aborted when not ended by then
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
