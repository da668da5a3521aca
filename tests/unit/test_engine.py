"""Table-driven tests of the pure decision function. No mocks: it is pure."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controlplane.engine import AnalysisVerdict, Observations, Phase, RolloutSpec, RolloutStatus, Verdict, decide
from controlplane.engine.checks import spec_problems
from controlplane.engine.types import (
    FinalizePromotion,
    OpenIncident,
    PromoteStable,
    RecordAnalysis,
    RecordEvent,
    ResetTraffic,
    SetAlias,
    SetWeight,
    StartValidation,
    TerminateValidation,
    ValidationState,
)

SPEC = RolloutSpec(model="minilm", version=3, stable_version=2, step_duration_s=30, analysis_interval_s=10)
PASS = AnalysisVerdict(Verdict.PASS, "within SLO")
FAIL = AnalysisVerdict(Verdict.FAIL, "error burn 20x over 14.4", "slo-burn-errors", {"burn_long": 20.0})
INCONCLUSIVE = AnalysisVerdict(Verdict.INCONCLUSIVE, "12 requests < 50 minimum", "canary-inconclusive")


def progressing(step: int = 0, weight: int = 5, started: float = 100.0, ext: int = 0) -> RolloutStatus:
    return RolloutStatus(
        phase=Phase.PROGRESSING, step_index=step, weight=weight, step_started_at=started, extensions=ext
    )


@dataclass
class Case:
    name: str
    status: RolloutStatus
    obs: Observations = field(default_factory=Observations)
    now: float = 200.0
    spec: RolloutSpec = SPEC
    phase: Phase = Phase.PROGRESSING
    weight: int | None = None
    step: int | None = None
    actions: tuple[type, ...] | None = None
    requeue: float | str | None = "any"


CASES = [
    Case(
        "pending starts validation",
        RolloutStatus(),
        phase=Phase.VALIDATING,
        actions=(StartValidation, RecordEvent),
        requeue=2.0,
    ),
    Case(
        "pending with skip goes to first step",
        RolloutStatus(),
        spec=RolloutSpec("minilm", 3, 2, skip_validation=True),
        weight=5,
        step=0,
        actions=(RecordEvent, SetWeight, RecordEvent),
    ),
    Case(
        "first version goes straight to 100",
        RolloutStatus(),
        spec=RolloutSpec("minilm", 1, None, skip_validation=True),
        weight=100,
        step=0,
        actions=(RecordEvent, SetWeight, RecordEvent),
    ),
    Case(
        "validating waits",
        RolloutStatus(phase=Phase.VALIDATING),
        Observations(validation=ValidationState.PENDING),
        phase=Phase.VALIDATING,
        actions=(),
        requeue=2.0,
    ),
    Case(
        "validation passed enters step 1",
        RolloutStatus(phase=Phase.VALIDATING),
        Observations(validation=ValidationState.PASSED),
        weight=5,
        step=0,
        actions=(RecordEvent, SetWeight, RecordEvent),
    ),
    Case(
        "validation failed fails without traffic and stops the checks still running",
        RolloutStatus(phase=Phase.VALIDATING),
        Observations(validation=ValidationState.FAILED, validation_evidence={"failure_mode": "head-collapse"}),
        phase=Phase.FAILED,
        weight=0,
        actions=(TerminateValidation, OpenIncident, RecordEvent),
        requeue=None,
    ),
    Case(
        "step not elapsed keeps waiting",
        progressing(),
        Observations(analysis=PASS),
        now=110.0,
        weight=5,
        step=0,
        actions=(),
        requeue=10.0,
    ),
    Case(
        "step elapsed with pass advances",
        progressing(),
        Observations(analysis=PASS),
        now=131.0,
        weight=25,
        step=1,
        actions=(RecordAnalysis, SetWeight, RecordEvent),
    ),
    Case(
        "fail mid-step rolls back at once",
        progressing(),
        Observations(analysis=FAIL),
        now=101.0,
        phase=Phase.ROLLED_BACK,
        weight=0,
        actions=(RecordAnalysis, ResetTraffic, OpenIncident, RecordEvent),
        requeue=None,
    ),
    Case(
        "inconclusive extends",
        progressing(),
        Observations(analysis=INCONCLUSIVE),
        now=131.0,
        weight=5,
        step=0,
        actions=(RecordAnalysis, RecordEvent),
    ),
    Case("no verdict at deadline extends", progressing(), Observations(), now=131.0, weight=5, actions=(RecordEvent,)),
    Case(
        "inconclusive after limit pauses with incident",
        progressing(ext=2),
        Observations(analysis=INCONCLUSIVE),
        now=191.0,
        phase=Phase.PAUSED,
        weight=5,
        actions=(RecordAnalysis, OpenIncident, RecordEvent),
    ),
    Case(
        "extended deadline honoured",
        progressing(ext=1),
        Observations(analysis=PASS),
        now=150.0,
        weight=5,
        step=0,
        actions=(),
    ),
    Case(
        "last step pass promotes",
        progressing(step=3, weight=100),
        Observations(analysis=PASS, current_alias_version=2),
        now=131.0,
        phase=Phase.PROMOTED,
        weight=0,
        actions=(RecordAnalysis, SetAlias, PromoteStable, RecordEvent),
        requeue=0.0,  # finalizing: look at stable at once
    ),
    Case(
        "promoted: traffic stays until stable is ready",
        RolloutStatus(phase=Phase.PROMOTED, finalizing=True, step_index=3),
        Observations(stable_ready=False),
        phase=Phase.PROMOTED,
        actions=(),
        requeue=1.0,
    ),
    Case(
        "promoted: stable ready, traffic back on it and the canary retired",
        RolloutStatus(phase=Phase.PROMOTED, finalizing=True, step_index=3),
        Observations(stable_ready=True),
        phase=Phase.PROMOTED,
        actions=(FinalizePromotion, RecordEvent),
        requeue=None,
    ),
    Case(
        "promoted and finalized: nothing more",
        RolloutStatus(phase=Phase.PROMOTED, step_index=3),
        Observations(stable_ready=True),
        phase=Phase.PROMOTED,
        actions=(),
        requeue=None,
    ),
    Case(
        "weight drift re-applied",
        progressing(weight=25, step=1),
        Observations(analysis=PASS, router_weight=5),
        now=131.0,
        weight=25,
        step=1,
        actions=(SetWeight, RecordEvent),
        requeue=1.0,
    ),
    Case(
        "fail beats drift",
        progressing(),
        Observations(analysis=FAIL, router_weight=0),
        now=101.0,
        phase=Phase.ROLLED_BACK,
    ),
    Case(
        "user pause",
        progressing(),
        Observations(analysis=PASS),
        spec=RolloutSpec("minilm", 3, 2, paused=True),
        phase=Phase.PAUSED,
        weight=5,
        actions=(RecordEvent,),
    ),
    Case(
        "paused stays paused",
        RolloutStatus(phase=Phase.PAUSED, weight=25, step_index=1, pause_reason="user"),
        spec=RolloutSpec("minilm", 3, 2, paused=True),
        phase=Phase.PAUSED,
        actions=(),
    ),
    Case(
        "user resume restarts the step",
        RolloutStatus(phase=Phase.PAUSED, weight=25, step_index=1, pause_reason="user"),
        weight=25,
        step=1,
        actions=(SetWeight, RecordEvent),
    ),
    Case(
        "inconclusive pause needs an explicit resume",
        RolloutStatus(phase=Phase.PAUSED, weight=25, step_index=1, pause_reason="inconclusive"),
        phase=Phase.PAUSED,
        actions=(),
    ),
    Case(
        "resume request resumes inconclusive pause",
        RolloutStatus(phase=Phase.PAUSED, weight=25, step_index=1, pause_reason="inconclusive"),
        spec=RolloutSpec("minilm", 3, 2, resume_requests=1),
        weight=25,
        actions=(SetWeight, RecordEvent),
    ),
    Case(
        "rollback intent skips remaining steps",
        progressing(step=1, weight=25),
        spec=RolloutSpec("minilm", 3, 2, rollback=True),
        phase=Phase.ROLLED_BACK,
        weight=0,
        actions=(ResetTraffic, RecordEvent),
        requeue=None,
    ),
    Case(
        "abort during validation terminates it",
        RolloutStatus(phase=Phase.VALIDATING),
        spec=RolloutSpec("minilm", 3, 2, abort=True),
        phase=Phase.ABORTED,
        actions=(TerminateValidation, ResetTraffic, RecordEvent),
        requeue=None,
    ),
    Case(
        "terminal does nothing",
        RolloutStatus(phase=Phase.PROMOTED),
        spec=RolloutSpec("minilm", 3, 2, abort=True),
        phase=Phase.PROMOTED,
        actions=(),
        requeue=None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(case: Case) -> None:
    decision = decide(case.spec, case.status, case.obs, case.now)
    assert decision.status.phase is case.phase
    if case.actions is not None:
        assert tuple(type(a) for a in decision.actions) == case.actions
    if case.weight is not None:
        assert decision.status.weight == case.weight
    if case.step is not None:
        assert decision.status.step_index == case.step
    if case.requeue != "any":
        assert decision.requeue_after == case.requeue


def test_set_weight_matches_status() -> None:
    decision = decide(SPEC, progressing(), Observations(analysis=PASS), 131.0)
    weights = [a.weight for a in decision.actions if isinstance(a, SetWeight)]
    assert weights == [decision.status.weight] == [25]


def test_rollback_incident_carries_evidence_and_mode() -> None:
    decision = decide(SPEC, progressing(step=2, weight=50), Observations(analysis=FAIL), 101.0)
    incident = next(a for a in decision.actions if isinstance(a, OpenIncident))
    assert incident.failure_mode == "slo-burn-errors"
    assert incident.severity == "page"
    assert incident.evidence["burn_long"] == 20.0
    assert "50%" in incident.summary


def test_promotion_records_previous_alias_holder() -> None:
    decision = decide(
        SPEC, progressing(step=3, weight=100), Observations(analysis=PASS, current_alias_version=2), 131.0
    )
    assert decision.status.previous_alias_version == 2
    alias = next(a for a in decision.actions if isinstance(a, SetAlias))
    assert (alias.model, alias.alias, alias.version) == ("minilm", "production", 3)


def test_full_walk_visits_every_step_once() -> None:
    status, now, seen = RolloutStatus(), 0.0, []
    obs = Observations(validation=ValidationState.PASSED, analysis=PASS)
    while not status.phase.terminal:
        decision = decide(SPEC, status, obs, now)
        seen += [a.weight for a in decision.actions if isinstance(a, SetWeight)]
        status, now = decision.status, now + (decision.requeue_after or 0)
    assert seen == [5, 25, 50, 100]
    assert status.phase is Phase.PROMOTED


def test_decide_is_deterministic() -> None:
    args = (SPEC, progressing(), Observations(analysis=PASS), 131.0)
    assert decide(*args) == decide(*args)


@pytest.mark.parametrize(
    ("steps", "problem"),
    [((5, 5, 100), "strictly increasing"), ((5, 150), "between 1 and 100"), ((5, 50), "last step"), ((), "empty")],
)
def test_spec_problems(steps: tuple[int, ...], problem: str) -> None:
    assert any(problem in p for p in spec_problems(RolloutSpec("m", 2, 1, steps=steps)))


def test_unknown_router_is_a_problem() -> None:
    problems = spec_problems(RolloutSpec("m", 2, 1, router="nginx"), frozenset({"gateway-api", "istio"}))
    assert problems == ["unknown traffic router 'nginx'; known: gateway-api, istio"]


def test_spec_round_trip() -> None:
    assert RolloutSpec.from_dict(SPEC.to_dict()) == SPEC
    status = progressing()
    assert RolloutStatus.from_dict(status.to_dict()) == status


def test_promotion_finalizes_only_after_stable_is_ready() -> None:
    promoted = decide(SPEC, progressing(step=3, weight=100), Observations(analysis=PASS), 131.0).status
    assert promoted.finalizing and promoted.phase is Phase.PROMOTED
    waiting = decide(SPEC, promoted, Observations(stable_ready=False), 132.0)
    assert waiting.status == promoted
    done = decide(SPEC, promoted, Observations(stable_ready=True), 140.0)
    assert not done.status.finalizing and done.status.finished_at == promoted.finished_at
    assert [a.kind for a in done.actions if isinstance(a, RecordEvent)] == ["PromotionFinalized"]
    # a user's intent no longer applies to a promoted rollout, finalizing or not
    rollback = RolloutSpec("minilm", 3, 2, rollback=True)
    assert decide(rollback, promoted, Observations(stable_ready=False), 133.0).actions == ()
