"""The validation gate of a local rollout: runs the validators in a background thread
(so the rollout loop keeps serving and polling) and reports their state to the engine."""

from __future__ import annotations

import threading
from typing import Any

from controlplane.app.context import Context
from controlplane.engine import RolloutSpec
from controlplane.engine.types import ValidationState

CHECK_FAILURE_MODES = {
    "tokenizer-parity": "tokenizer-mismatch",
    "quantization-accuracy": "quantization-drift",
    "head-collapse": "head-collapse",
    "long-seq-memory": "long-seq-oom",
}


class ValidatorsGate:
    def __init__(self, ctx: Context, spec: RolloutSpec, device: str = "cpu") -> None:
        self.ctx = ctx
        self.spec = spec
        self.device = device
        self._state: ValidationState | None = None
        self._evidence: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, model: str, version: int) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._state = ValidationState.PENDING
            self._thread = threading.Thread(target=self._run, args=(model, version), daemon=True, name="validation")
            self._thread.start()

    def state(self) -> tuple[ValidationState | None, dict[str, Any]]:
        with self._lock:
            if self._thread is None:  # restarted while Validating: run the gate again
                pass
            else:
                return self._state, dict(self._evidence)
        self.start(self.spec.model, self.spec.version)
        return ValidationState.PENDING, {}

    def terminate(self) -> None:
        """Checks run in-process and finish on their own; the result is simply ignored."""
        with self._lock:
            self._state = ValidationState.ERROR
            self._evidence = {"summary": "validation terminated"}

    def _run(self, model: str, version: int) -> None:
        try:
            state, evidence = run_gate(self.ctx, model, version, self.spec.checks, self.spec.stable_version, self.device)
        except Exception as exc:  # any failure of the gate is an error verdict, never a pass
            state, evidence = ValidationState.ERROR, {"summary": f"validation error: {exc}", "failure_mode": "validation-failed"}
        with self._lock:
            if self._state is ValidationState.PENDING:
                self._state, self._evidence = state, evidence


def run_gate(
    ctx: Context, model: str, version: int, checks: tuple[str, ...], stable: int | None, device: str
) -> tuple[ValidationState, dict[str, Any]]:
    from validators.runner import run_checks

    baseline = f"{model}:v{stable}" if stable is not None else None
    report = run_checks(
        f"{model}:v{version}",
        checks=list(checks) or None,
        baseline_ref=baseline,
        device=device,
        registry=ctx.registry,
        store=ctx.store,
        now=ctx.now(),
    )
    results = {r.check: r.status for r in report.results}
    failed = [c for c, s in results.items() if s in ("failed", "error")]
    evidence: dict[str, Any] = {"checks": results}
    if not failed:
        return ValidationState.PASSED, evidence
    first = next(r for r in report.results if r.check == failed[0])
    evidence["failure_mode"] = CHECK_FAILURE_MODES.get(failed[0], "validation-failed")
    evidence["summary"] = f"{failed[0]} {first.status}: " + "; ".join(first.findings[:2])
    state = ValidationState.ERROR if all(results[c] == "error" for c in failed) else ValidationState.FAILED
    return state, evidence
