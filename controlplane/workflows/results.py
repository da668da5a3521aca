"""The result structure both engines return: a ``WorkflowState`` whose ``checks`` hold one
``CheckOutcome`` per requested check, in DAG order, with one status vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.ports import CheckOutcome, WorkflowState

# Workflow phases (Argo's): Pending | Running | Succeeded | Failed | Error
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
# Check statuses: passed | warning | failed | error (a check ran), pending | running (not yet),
# skipped (will not run: the run was terminated or stopped on bad input, or not selected).
PASSING = frozenset({"passed", "warning"})
FAILING = frozenset({"failed", "error"})
FINISHED = PASSING | FAILING | frozenset({"skipped"})  # a dependent may start after these
TERMINATED_MESSAGE = "terminated"


def final_phase(outcomes: tuple[CheckOutcome, ...]) -> str:
    """Succeeded when every check passed (warnings allowed), Failed otherwise."""
    return "Succeeded" if outcomes and all(o.status in PASSING for o in outcomes) else "Failed"


def numeric_metrics(data: Any) -> dict[str, float]:
    """The numeric entries of a metrics mapping (bools and non-numbers dropped)."""
    if not isinstance(data, Mapping):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


# The keys of ``ctl validate -o json``, whichever engine ran the checks.
RESULT_KEYS = frozenset({"ref", "engine", "handle", "phase", "message", "checks"})
CHECK_KEYS = frozenset({"check", "status", "summary", "metrics", "run_id", "seconds"})


def state_to_dict(state: WorkflowState, *, ref: str = "", engine: str = "") -> dict[str, Any]:
    """JSON-friendly view of a state (``ctl validate -o json``): ``RESULT_KEYS``, and
    ``CHECK_KEYS`` for each check."""
    return {
        "ref": ref,
        "engine": engine,
        "handle": state.handle,
        "phase": state.phase,
        "message": state.message,
        "checks": [
            {"check": o.check, "status": o.status, "summary": o.summary, "metrics": dict(o.metrics),
             "run_id": o.run_id, "seconds": o.seconds}
            for o in state.checks
        ],
    }
