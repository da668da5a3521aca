"""The pure side of the intents: what each intent records in each state, and the --timeout deadline
enforced by the engine from the stored spec (so whichever process decides next enforces it)."""

from __future__ import annotations

import pytest

from controlplane.engine import Observations, Phase, RolloutSpec, RolloutStatus, decide, decide_intents, plan_intent
from controlplane.engine.types import ResetTraffic, TerminateValidation

SPEC = RolloutSpec(model="minilm", version=2, stable_version=1, step_duration_s=600.0)
PROGRESSING = RolloutStatus(phase=Phase.PROGRESSING, step_index=0, weight=5, step_started_at=0.0)


@pytest.mark.parametrize(
    ("intent", "field", "value"),
    [("pause", "paused", True), ("abort", "abort", True), ("rollback", "rollback", True)],
)
def test_a_new_intent_is_recorded_once(intent: str, field: str, value: bool) -> None:
    plan = plan_intent(SPEC, PROGRESSING, intent)
    assert plan.spec is not None and getattr(plan.spec, field) is value and not plan.refused
    again = plan_intent(plan.spec, PROGRESSING, intent)
    assert again.spec is None and not again.refused and "already" in again.note


def test_resume_of_a_user_pause_and_of_an_inconclusive_one() -> None:
    paused = PROGRESSING.evolve(phase=Phase.PAUSED, pause_reason="user")
    plan = plan_intent(RolloutSpec(**{**SPEC.to_dict(), "paused": True}), paused, "resume")
    assert plan.spec is not None and not plan.spec.paused and plan.spec.resume_requests == 1
    inconclusive = PROGRESSING.evolve(phase=Phase.PAUSED, pause_reason="inconclusive")
    plan = plan_intent(SPEC, inconclusive, "resume")
    assert plan.spec is not None and plan.spec.resume_requests == 1
    assert plan_intent(plan.spec, inconclusive, "resume").spec is None  # already asked for
    assert plan_intent(SPEC, PROGRESSING, "resume").note == "not paused (Progressing)"


def test_intents_on_an_ended_rollout() -> None:
    rolled_back = PROGRESSING.evolve(phase=Phase.ROLLED_BACK, weight=0, message="rollback requested")
    asked = RolloutSpec(**{**SPEC.to_dict(), "rollback": True})
    repeat = plan_intent(asked, rolled_back, "rollback")
    assert repeat.spec is None and not repeat.refused  # the same intent again: nothing to do, no error
    for intent in ("pause", "resume", "abort"):
        assert plan_intent(asked, rolled_back, intent).refused
    assert plan_intent(SPEC, rolled_back, "rollback").refused  # it ended another way (an automatic rollback)


def test_pause_after_an_abort_request_records_nothing() -> None:
    aborting = RolloutSpec(**{**SPEC.to_dict(), "abort": True})
    assert plan_intent(aborting, PROGRESSING, "pause").spec is None


def test_the_deadline_is_set_when_the_rollout_starts() -> None:
    spec = RolloutSpec(**{**SPEC.to_dict(), "timeout_s": 30.0})
    assert decide(spec, RolloutStatus(), Observations(), 70.0).status.deadline_at == 100.0
    assert decide(SPEC, RolloutStatus(), Observations(), 70.0).status.deadline_at is None


def test_the_deadline_aborts_in_every_live_phase_and_stops_validation() -> None:
    spec = RolloutSpec(**{**SPEC.to_dict(), "timeout_s": 30.0})
    for status in (RolloutStatus(phase=Phase.VALIDATING), PROGRESSING,
                   PROGRESSING.evolve(phase=Phase.PAUSED, pause_reason="user")):
        status = status.evolve(deadline_at=100.0)
        assert decide_intents(spec, status, 99.0) is None  # not yet
        decision = decide(spec, status, Observations(), 100.0)
        assert (decision.status.phase, decision.status.weight, decision.requeue_after) == (Phase.ABORTED, 0, None)
        assert ResetTraffic() in decision.actions
        assert (TerminateValidation() in decision.actions) is (status.phase is Phase.VALIDATING)
        reasons = [a.evidence.get("reason") for a in decision.actions if getattr(a, "kind", "") == "AbortRequested"]
        assert reasons == ["not finished within the --timeout of 30s"]


def test_a_user_rollback_wins_over_the_deadline() -> None:
    spec = RolloutSpec(**{**SPEC.to_dict(), "timeout_s": 30.0, "rollback": True})
    assert decide(spec, PROGRESSING.evolve(deadline_at=100.0), Observations(), 200.0).status.phase is Phase.ROLLED_BACK


def test_the_engine_comes_back_by_the_deadline() -> None:
    spec = RolloutSpec(**{**SPEC.to_dict(), "timeout_s": 30.0, "analysis_interval_s": 10.0})
    decision = decide(spec, PROGRESSING.evolve(deadline_at=100.0), Observations(), 97.0)
    assert decision.status.phase is Phase.PROGRESSING and decision.requeue_after == pytest.approx(3.0)
