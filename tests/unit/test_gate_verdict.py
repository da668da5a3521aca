"""The rollout gate's reading of a validation run (controlplane/app/gate.py ``verdict_of``): the DAG
runs every check, the gate fails fast on the first failed one, and an all-error run is ERROR."""

from __future__ import annotations

import pytest

from controlplane.app.gate import verdict_of
from controlplane.engine.types import ValidationState
from controlplane.ports import CheckOutcome, WorkflowState


def _state(phase: str, *statuses: tuple[str, str]) -> WorkflowState:
    return WorkflowState("local/validate-minilm-v3-abc", phase, tuple(CheckOutcome(c, s, f"{c} {s}") for c, s in statuses))


@pytest.mark.parametrize(
    ("state", "expected", "mode"),
    [
        (_state("Running", ("tokenizer-parity", "running")), ValidationState.PENDING, None),
        (_state("Running", ("tokenizer-parity", "passed"), ("head-collapse", "running")),
         ValidationState.PENDING, None),
        # a failed check decides at once while the other checks still run (the engine then terminates the run)
        (_state("Running", ("tokenizer-parity", "failed"), ("head-collapse", "running")),
         ValidationState.FAILED, "tokenizer-mismatch"),
        (_state("Succeeded", ("tokenizer-parity", "passed"), ("head-collapse", "warning")),
         ValidationState.PASSED, None),
        (_state("Failed", ("tokenizer-parity", "passed"), ("head-collapse", "failed"), ("long-seq-memory", "failed")),
         ValidationState.FAILED, "head-collapse"),
        (_state("Failed", ("tokenizer-parity", "error"), ("head-collapse", "skipped")),
         ValidationState.ERROR, "tokenizer-mismatch"),
        (_state("Error"), ValidationState.ERROR, "validation-failed"),
    ],
)
def test_verdict_of(state: WorkflowState, expected: ValidationState, mode: str | None) -> None:
    verdict, evidence = verdict_of(state)
    assert verdict is expected
    assert evidence["workflow"] == state.handle
    assert evidence["checks"] == {c.check: c.status for c in state.checks}
    assert evidence.get("failure_mode") == mode
    if mode is not None and state.checks:
        first = next(c for c in state.checks if c.status in ("failed", "error"))
        assert evidence["summary"].startswith(f"{first.check} {first.status}")
