"""The pure rollout engine: (spec, status, observations, now) -> (actions, new status).

Nothing in this package performs I/O or imports a client library.
"""

from controlplane.engine.decide import decide, decide_intents
from controlplane.engine.intents import IntentPlan, plan_intent, timeout_reason
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
    "IntentPlan",
    "Observations",
    "Phase",
    "RolloutSpec",
    "RolloutStatus",
    "Verdict",
    "decide",
    "decide_intents",
    "plan_intent",
    "timeout_reason",
]
