"""The rollout decision function. Pure: no I/O, no clock, no client imports.

decide(spec, status, observations, now) -> Decision(actions, new status, requeue_after)

Precedence on every call: terminal phases do nothing (but a promotion still finalizing); then
the user's intents (rollback > abort > the --timeout deadline > pause); then the phase's own logic.

Finalizing: a promoted rollout first moves stable to the new version (PromoteStable) and only
once the observation says stable is ready returns traffic to it and retires the canary
(FinalizePromotion), so that stable never takes traffic it cannot serve.
"""

from __future__ import annotations

from controlplane.engine.intents import deadline_passed, timeout_reason
from controlplane.engine.types import (
    Action,
    AnalysisVerdict,
    Decision,
    FinalizePromotion,
    Observations,
    OpenIncident,
    Phase,
    PromoteStable,
    RecordAnalysis,
    RecordEvent,
    ResetTraffic,
    RolloutSpec,
    RolloutStatus,
    SetAlias,
    SetWeight,
    StartValidation,
    TerminateValidation,
    ValidationState,
    Verdict,
)

VALIDATION_POLL_S = 2.0
PAUSED_POLL_S = 5.0
DRIFT_RETRY_S = 1.0
FINALIZE_POLL_S = 1.0
FINALIZED = "stable serves the new version; traffic back on stable; canary scaled to zero"


def plan_steps(spec: RolloutSpec) -> tuple[int, ...]:
    """The weights the canary goes through. A first version (no stable) goes straight to 100 %."""
    return (100,) if spec.stable_version is None else spec.steps


def decide(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float) -> Decision:
    if status.phase.terminal:
        return _finalizing(spec, status, obs) if status.finalizing else Decision((), status, None)
    intent = decide_intents(spec, status, now)
    if intent is not None:
        return intent
    handler = _HANDLERS[status.phase]
    return _until_deadline(handler(spec, status, obs, now), now)


def _until_deadline(decision: Decision, now: float) -> Decision:
    """Come back no later than the --timeout deadline."""
    deadline = decision.status.deadline_at
    if deadline is None or decision.requeue_after is None:
        return decision
    return Decision(decision.actions, decision.status, max(0.0, min(decision.requeue_after, deadline - now)))


# ---- user intents ----------------------------------------------------------------------


def decide_intents(spec: RolloutSpec, status: RolloutStatus, now: float) -> Decision | None:
    """The decision the user's intents (and the --timeout deadline) impose, None when there is
    none. Needs no observation, so a process that cannot observe the target can still apply it."""
    if status.phase.terminal:
        return None
    stop_validation: tuple[Action, ...] = (TerminateValidation(),) if status.phase is Phase.VALIDATING else ()
    if spec.rollback:
        return _finish(
            status,
            Phase.ROLLED_BACK,
            now,
            "rollback requested: all traffic returned to stable, remaining steps skipped",
            (*stop_validation, ResetTraffic()),
            event=("RolledBack", {"intent": "rollback", "from_weight": status.weight, "step_index": status.step_index}),
        )
    if spec.abort:
        return _finish(
            status,
            Phase.ABORTED,
            now,
            "aborted by user: all traffic returned to stable",
            (*stop_validation, ResetTraffic()),
            event=("Aborted", {"intent": "abort", "from_weight": status.weight, "step_index": status.step_index}),
        )
    if deadline_passed(status, now):
        reason = timeout_reason(spec.timeout_s)
        asked = RecordEvent("AbortRequested", f"abort requested: {reason}", {"intent": "abort", "reason": reason})
        return _finish(
            status,
            Phase.ABORTED,
            now,
            f"aborted: {reason}; all traffic returned to stable",
            (asked, *stop_validation, ResetTraffic()),
            event=("Aborted", {"reason": reason, "from_weight": status.weight, "step_index": status.step_index}),
        )
    if spec.paused and status.phase is Phase.PROGRESSING:
        new = status.evolve(phase=Phase.PAUSED, pause_reason="user", message="paused by user")
        return Decision((RecordEvent("Paused", "paused by user", {"weight": status.weight}),), new, PAUSED_POLL_S)
    return None


# ---- phases ----------------------------------------------------------------------------


def _pending(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float) -> Decision:
    deadline = None if spec.timeout_s is None else now + spec.timeout_s
    status = status.evolve(started_at=now, deadline_at=deadline)
    if spec.skip_validation:
        skipped = status.evolve(validation=ValidationState.SKIPPED)
        warn = RecordEvent("ValidationSkipped", "validation gates skipped by --skip-validation", {"skipped": True})
        return _enter_step(spec, skipped, 0, now, lead=(warn,))
    new = status.evolve(phase=Phase.VALIDATING, validation=ValidationState.PENDING, message="validating")
    actions = (StartValidation(spec.model, spec.version), RecordEvent("ValidationStarted", "validation gates started"))
    return Decision(actions, new, VALIDATION_POLL_S)


def _validating(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float) -> Decision:
    state = obs.validation
    if state in (None, ValidationState.PENDING):
        return Decision((), status, VALIDATION_POLL_S)
    if state in (ValidationState.PASSED, ValidationState.SKIPPED):
        passed = status.evolve(validation=state)
        event = RecordEvent("ValidationPassed", "validation gates passed", dict(obs.validation_evidence))
        return _enter_step(spec, passed, 0, now, lead=(event,))
    mode = str(obs.validation_evidence.get("failure_mode", "validation-failed"))
    summary = str(obs.validation_evidence.get("summary", f"validation {state.value}"))
    failed = status.evolve(validation=state)
    incident = OpenIncident(mode, "ticket", f"{spec.model}:v{spec.version} {summary}", dict(obs.validation_evidence))
    return _finish(
        failed,
        Phase.FAILED,
        now,
        f"validation {state.value}: {summary}; no traffic was moved",
        (TerminateValidation(), incident),  # stops the checks still running (a no-op when the run ended)
        event=("ValidationFailed", dict(obs.validation_evidence)),
    )


def _progressing(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float) -> Decision:
    verdict = obs.analysis
    if verdict is not None and verdict.verdict is Verdict.FAIL:
        return _roll_back(spec, status, verdict, now)
    if obs.router_weight is not None and obs.router_weight != status.weight:
        drift = RecordEvent(
            "WeightDrift",
            f"router reports {obs.router_weight}% but the plan says {status.weight}%; re-applying",
            {"observed": obs.router_weight, "planned": status.weight},
        )
        return Decision((SetWeight(status.weight), drift), status, DRIFT_RETRY_S)
    started = status.step_started_at if status.step_started_at is not None else now
    deadline = started + spec.step_duration_s * (1 + status.extensions)
    if now < deadline:
        return Decision((), status, min(deadline - now, spec.analysis_interval_s))
    if verdict is not None and verdict.verdict is Verdict.PASS:
        record = _record(status, verdict)
        steps = plan_steps(spec)
        if status.step_index + 1 >= len(steps):
            return _promote(spec, status, obs, now, record)
        return _enter_step(spec, status, status.step_index + 1, now, lead=(record,))
    return _inconclusive(spec, status, verdict, now)


def _paused(spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float) -> Decision:
    resumed = not spec.paused and (status.pause_reason == "user" or spec.resume_requests > status.resumes_seen)
    if not resumed:
        return Decision((), status, PAUSED_POLL_S)
    new = status.evolve(
        phase=Phase.PROGRESSING,
        step_started_at=now,
        extensions=0,
        pause_reason=None,
        resumes_seen=spec.resume_requests,
        message=f"resumed at {status.weight}%",
    )
    actions = (SetWeight(status.weight), RecordEvent("Resumed", f"resumed at step {status.step_index + 1}"))
    return Decision(actions, new, min(spec.step_duration_s, spec.analysis_interval_s))


# ---- transitions -----------------------------------------------------------------------


def _enter_step(
    spec: RolloutSpec, status: RolloutStatus, index: int, now: float, lead: tuple[Action, ...] = ()
) -> Decision:
    steps = plan_steps(spec)
    weight = steps[index]
    new = status.evolve(
        phase=Phase.PROGRESSING,
        step_index=index,
        weight=weight,
        step_started_at=now,
        extensions=0,
        message=f"step {index + 1}/{len(steps)}: canary at {weight}%",
    )
    event = RecordEvent("StepStarted", new.message, {"step_index": index, "weight": weight, "steps": list(steps)})
    return Decision((*lead, SetWeight(weight), event), new, min(spec.step_duration_s, spec.analysis_interval_s))


def _promote(
    spec: RolloutSpec, status: RolloutStatus, obs: Observations, now: float, record: RecordAnalysis
) -> Decision:
    previous = obs.current_alias_version
    done = status.evolve(previous_alias_version=previous)
    message = (
        f"promoted {spec.model}:v{spec.version}; alias '{spec.alias}' moved from {_v(previous)} to v{spec.version}"
    )
    actions = (record, SetAlias(spec.model, spec.alias, spec.version), PromoteStable(spec.version))
    evidence = {"alias": spec.alias, "previous_version": previous, "version": spec.version}
    promoted = _finish(done, Phase.PROMOTED, now, message, actions, event=("Promoted", evidence))
    return Decision(promoted.actions, promoted.status.evolve(finalizing=True), 0.0)  # observe stable at once


def _finalizing(spec: RolloutSpec, status: RolloutStatus, obs: Observations) -> Decision:
    if not obs.stable_ready:  # PromoteStable was applied with the Promoted decision: wait for it
        return Decision((), status, FINALIZE_POLL_S)
    actions = (FinalizePromotion(spec.version), RecordEvent("PromotionFinalized", FINALIZED))
    return Decision(actions, status.evolve(finalizing=False), None)


def _roll_back(spec: RolloutSpec, status: RolloutStatus, verdict: AnalysisVerdict, now: float) -> Decision:
    mode = verdict.failure_mode or "slo-burn-errors"
    summary = f"{spec.model}:v{spec.version} rolled back at {status.weight}%: {verdict.reason}"
    actions = (_record(status, verdict), ResetTraffic(), OpenIncident(mode, "page", summary, dict(verdict.evidence)))
    evidence = {"failure_mode": mode, "weight": status.weight, "step_index": status.step_index, **verdict.evidence}
    return _finish(status, Phase.ROLLED_BACK, now, summary, actions, event=("RolledBack", evidence))


def _inconclusive(spec: RolloutSpec, status: RolloutStatus, verdict: AnalysisVerdict | None, now: float) -> Decision:
    reason = verdict.reason if verdict else "no analysis result"
    evidence = dict(verdict.evidence) if verdict else {}
    records: tuple[Action, ...] = (_record(status, verdict),) if verdict else ()
    if status.extensions < spec.max_extensions:
        new = status.evolve(extensions=status.extensions + 1, message=f"step extended: {reason}")
        event = RecordEvent("StepExtended", new.message, {"extensions": new.extensions, **evidence})
        return Decision((*records, event), new, min(spec.step_duration_s, spec.analysis_interval_s))
    mode = (verdict.failure_mode if verdict else None) or "canary-inconclusive"
    summary = (
        f"{spec.model}:v{spec.version} paused at {status.weight}%: "
        f"inconclusive after {status.extensions} extensions ({reason})"
    )
    new = status.evolve(phase=Phase.PAUSED, pause_reason="inconclusive", message=summary)
    actions = (
        *records,
        OpenIncident(mode, "ticket", summary, evidence),
        RecordEvent("PausedInconclusive", summary, evidence),
    )
    return Decision(actions, new, PAUSED_POLL_S)


def _finish(
    status: RolloutStatus,
    phase: Phase,
    now: float,
    message: str,
    actions: tuple[Action, ...],
    event: tuple[str, dict[str, object]],
) -> Decision:
    new = status.evolve(phase=phase, message=message, finished_at=now, weight=0)
    kind, evidence = event
    return Decision((*actions, RecordEvent(kind, message, dict(evidence))), new, None)


def _record(status: RolloutStatus, verdict: AnalysisVerdict) -> RecordAnalysis:
    return RecordAnalysis(
        status.step_index, status.weight, verdict.verdict.value, verdict.reason, dict(verdict.evidence)
    )


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"


_HANDLERS = {
    Phase.PENDING: _pending,
    Phase.VALIDATING: _validating,
    Phase.PROGRESSING: _progressing,
    Phase.PAUSED: _paused,
}
