"""The pure rollout engine: (spec, status, observations, now) -> (actions, new status).

Nothing in this package performs I/O or imports a client library.
"""

from controlplane.engine.decide import decide
from controlplane.engine.types import (
    Action,
    AnalysisVerdict,
    Decision,
    Observations,
    Phase,
    RolloutSpec,
    RolloutStatus,
    Verdict,
)

__all__ = [
    "Action",
    "AnalysisVerdict",
    "Decision",
    "Observations",
    "Phase",
    "RolloutSpec",
    "RolloutStatus",
    "Verdict",
    "decide",
]
