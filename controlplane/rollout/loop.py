"""One reconcile of one rollout, for every target: load → observe → decide → apply → save once.

Every action is idempotent (set weight N, scale to zero), so re-applying after a crash or a
conflict is safe; the status only moves forward through a successful save, so no step is
skipped or counted twice. A ConflictError from the save (someone wrote meanwhile) propagates:
the caller decides again from a fresh load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.engine import Decision, decide
from controlplane.rollout.apply import Ports, apply_actions
from controlplane.rollout.observe import Analyzer, observe
from controlplane.rollout.state import RolloutState

NOT_LEADER_RETRY_S = 1.0  # not allowed to act now (leadership in doubt): look again soon, write nothing


@dataclass
class Outcome:
    decision: Decision
    wrote: bool

    @property
    def requeue_after(self) -> float | None:
        return self.decision.requeue_after


def reconcile(
    state: RolloutState, ports: Ports, analyzer: Analyzer, now: float, can_act: Callable[[], bool] = lambda: True
) -> Outcome:
    snap = state.load()
    status = snap.status
    decision = decide(snap.spec, status, observe(snap.spec, status, ports, analyzer, now), now)
    if (decision.actions or not status.phase.terminal) and not can_act():
        return Outcome(Decision((), status, NOT_LEADER_RETRY_S), wrote=False)
    events = apply_actions(decision.actions, ports, state, now)
    return Outcome(decision, state.save(decision.status, events, snap.token, now))
