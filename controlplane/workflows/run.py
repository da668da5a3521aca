"""One call for the CLI (``ctl validate --engine local|argo``) and the rollout's Validating phase:
check the input, run the DAG on the chosen engine to its end, return the common result shape."""

from __future__ import annotations

from typing import Any

from controlplane.errors import InputError
from controlplane.workflows.engines import DEFAULT_ENGINE, make_engine, run_validation
from controlplane.workflows.params import request_from_ref
from controlplane.workflows.results import state_to_dict
from controlplane.workflows.template import VALIDATION_DAG


def validate_with_engine(
    ref: str,
    checks: str | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    baseline: str | None = None,
    device: str = "auto",
    timeout_s: float | None = None,
    **engine_options: Any,
) -> tuple[dict[str, Any], bool]:
    """``(result, passed)`` where result is ``state_to_dict`` of the final state (the same keys
    for both engines) and passed is True when the workflow Succeeded. Bad input (ref, checks,
    device, engine settings) raises InputError before anything runs or is submitted, and so
    does bad input a check found while running (the local engine stops there)."""
    request = request_from_ref(ref, checks, VALIDATION_DAG, baseline, device)
    runner = make_engine(engine, dag=VALIDATION_DAG, timeout_s=timeout_s, **engine_options)
    state = run_validation(runner, request, timeout_s)
    result = state_to_dict(state, ref=f"{request.model}:v{request.version}", engine=engine)
    bad = next((o for o in state.checks if o.input_error), None)
    if bad is not None:
        raise InputError(bad.summary if bad.summary.startswith(bad.check) else f"{bad.check}: {bad.summary}")
    return result, state.phase == "Succeeded"
