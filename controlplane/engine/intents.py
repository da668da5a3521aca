"""What a user's intent (pause, resume, abort, rollback) does to a rollout's spec. Pure.

``plan_intent`` answers one of three ways:
- record this new spec (the intent is new);
- nothing to record: what the user asked for already holds or is already asked for
  (a second `ctl rollback`, a pause of a paused rollout); the command succeeds;
- refused: the intent does not apply (the rollout ended another way); the command fails.
So a repeated or racing intent records exactly one transition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controlplane.engine.types import Phase, RolloutSpec, RolloutStatus

INTENTS = ("pause", "resume", "abort", "rollback")


@dataclass(frozen=True)
class IntentPlan:
    spec: RolloutSpec | None  # the spec to record; None: nothing to record
    note: str = ""  # why nothing is recorded, or why the intent is refused
    refused: bool = False


def plan_intent(spec: RolloutSpec, status: RolloutStatus, intent: str) -> IntentPlan:
    if intent not in INTENTS:
        raise ValueError(f"unknown intent {intent!r}")
    if status.phase.terminal:
        return _ended(spec, status, intent)
    if intent == "rollback":
        return _noop("rollback already requested") if spec.rollback else IntentPlan(replace(spec, rollback=True))
    if spec.rollback or spec.abort:
        return _noop(f"{'rollback' if spec.rollback else 'abort'} already requested")
    if intent == "abort":
        return IntentPlan(replace(spec, abort=True))
    if intent == "pause":
        if spec.paused or status.phase is Phase.PAUSED:
            return _noop("already paused")
        return IntentPlan(replace(spec, paused=True))
    return _resume(spec, status)


def _resume(spec: RolloutSpec, status: RolloutStatus) -> IntentPlan:
    resumed = replace(spec, paused=False, resume_requests=spec.resume_requests + 1)
    if spec.paused:
        return IntentPlan(resumed)
    if status.phase is Phase.PAUSED:
        if status.pause_reason != "user" and spec.resume_requests <= status.resumes_seen:
            return IntentPlan(resumed)  # an inconclusive pause: resumed by counting the request
        return _noop("resume already requested")
    return _noop(f"not paused ({status.phase.value})")


def _ended(spec: RolloutSpec, status: RolloutStatus, intent: str) -> IntentPlan:
    if (intent == "rollback" and spec.rollback) or (intent == "abort" and spec.abort):
        return _noop(f"already ended: {status.phase.value}")
    return IntentPlan(None, f"already ended: {status.phase.value} ({status.message})", refused=True)


def _noop(note: str) -> IntentPlan:
    return IntentPlan(None, note)


def timeout_reason(timeout_s: float | None) -> str:
    return f"not finished within the --timeout of {timeout_s or 0:g}s"


def deadline_passed(status: RolloutStatus, now: float) -> bool:
    return status.deadline_at is not None and now >= status.deadline_at
