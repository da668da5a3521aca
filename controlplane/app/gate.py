"""The validation gate of a rollout: the validation DAG on a workflow engine, its state read
back as the engine's ``ValidationState`` and evidence.

``EngineGate`` works over any ``ports.WorkflowEngine``: the local target gives it the local
engine (the DAG in-process: tokenizer-parity, then quantization-accuracy and head-collapse
concurrently, then long-seq-memory, the checks running in threads so the rollout loop keeps
serving and polling); the Kubernetes controller gives it the Argo engine (``--validation
argo``). Submitting is idempotent (the engine derives the run's name from the request), so a
restarted loop finds the run it started, or starts it again when the process that ran it is gone.
"""

from __future__ import annotations

import contextlib
from typing import Any

from controlplane.app.context import Context
from controlplane.engine import RolloutSpec
from controlplane.engine.types import ValidationState
from controlplane.errors import NotFoundError
from controlplane.ports import ValidationRequest, WorkflowEngine, WorkflowState
from controlplane.workflows.results import FAILING
from controlplane.workflows.template import VALIDATION_DAG

CHECK_FAILURE_MODES = {
    "tokenizer-parity": "tokenizer-mismatch",
    "quantization-accuracy": "quantization-drift",
    "head-collapse": "head-collapse",
    "long-seq-memory": "long-seq-oom",
}
_PHASES = {
    "Succeeded": ValidationState.PASSED,
    "Failed": ValidationState.FAILED,
    "Error": ValidationState.ERROR,
}


def verdict_of(state: WorkflowState) -> tuple[ValidationState, dict[str, Any]]:
    """A workflow's state as the gate's verdict and the evidence recorded with it: the run,
    each check's status, and for a failure the first failing check's failure mode and summary.
    A run whose failed checks all errored (nothing judged the model) is ``ERROR``.

    The DAG runs every check whatever the verdicts (``ctl validate`` reports them all); the
    gate fails fast: a failed check decides while the run is still going (the rollout engine
    then terminates the run, so no GPU step runs for a rejected version)."""
    evidence: dict[str, Any] = {"workflow": state.handle, "checks": {c.check: c.status for c in state.checks}}
    failing = [c for c in state.checks if c.status in FAILING]
    result = _PHASES.get(state.phase, ValidationState.PENDING)
    if result is ValidationState.PENDING and failing:
        result = ValidationState.FAILED
    if result in (ValidationState.PASSED, ValidationState.PENDING):
        return result, evidence
    first = failing[0] if failing else None
    evidence["failure_mode"] = CHECK_FAILURE_MODES.get(first.check if first else "", "validation-failed")
    if first is not None:
        evidence["summary"] = f"{first.check} {first.status}" + (f": {first.summary}" if first.summary else "")
    else:
        evidence["summary"] = state.message or f"workflow {state.phase}"
    if failing and all(c.status == "error" for c in failing):
        result = ValidationState.ERROR
    return result, evidence


class EngineGate:
    """A rollout.apply.ValidationGate over a WorkflowEngine, for one rollout's spec."""

    def __init__(self, engine: WorkflowEngine, spec: RolloutSpec, device: str = "auto") -> None:
        self.engine = engine
        baseline = f"{spec.model}:v{spec.stable_version}" if spec.stable_version else None
        checks = spec.checks or VALIDATION_DAG.names  # empty means every check of the DAG
        self.request = ValidationRequest(spec.model, spec.version, checks, baseline, device)

    def start(self, model: str, version: int) -> None:
        self.engine.submit(self.request)

    def state(self) -> tuple[ValidationState | None, dict[str, Any]]:
        """One read of the run; submitted again only when it is gone (a restarted process,
        a deleted Workflow), so a poll costs one GET and no write."""
        try:
            return verdict_of(self.engine.poll(self.engine.handle_for(self.request)))
        except NotFoundError:
            self.engine.submit(self.request)
            return ValidationState.PENDING, {}

    def terminate(self) -> None:
        """Stop the run if there is one (nothing is submitted just to be stopped)."""
        with contextlib.suppress(NotFoundError):
            self.engine.terminate(self.engine.handle_for(self.request))


def local_gate(ctx: Context, spec: RolloutSpec, device: str = "cpu") -> EngineGate:
    """The local target's gate: the validation DAG in-process, each check through the validators
    (one MLflow run and one store row per check, as each Argo step records)."""
    from controlplane.app.validation_checks import validators_check_runner
    from controlplane.workflows import LocalEngine

    return EngineGate(LocalEngine(validators_check_runner(context=ctx)), spec, device)
