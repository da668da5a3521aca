"""StoreState: a rollout whose state lives in the store (the local target), a rollout.state.RolloutState.

The store is the source of truth for local rollouts: the row's ``revision`` is the concurrency
token, analysis verdicts go to the analysis_results table and events to rollout_events, written
with the status in one transaction. For Kubernetes rollouts the resource is (kube_state.py), and
the store only keeps the audit trail.
"""

from __future__ import annotations

from typing import Any

from controlplane.engine import Decision, RolloutSpec, RolloutStatus
from controlplane.engine.types import OpenIncident, RecordAnalysis
from controlplane.errors import ConflictError
from controlplane.ports import RolloutRecord, Store
from controlplane.rollout.apply import Ports
from controlplane.rollout.loop import Outcome, reconcile
from controlplane.rollout.observe import Analyzer
from controlplane.rollout.state import Event, Snapshot


class StoreState:
    def __init__(self, store: Store, rollout_id: int) -> None:
        self.store, self.rollout_id = store, rollout_id
        self._record: RolloutRecord | None = None

    def load(self) -> Snapshot:
        record = self._record = self.store.get_rollout(self.rollout_id)
        return Snapshot(RolloutSpec.from_dict(record.spec), RolloutStatus.from_dict(record.status), record.revision)

    def save(self, status: RolloutStatus, events: list[Event], token: Any, now: float) -> bool:
        record = self._record or self.store.get_rollout(self.rollout_id)  # the store checks the token
        if status == RolloutStatus.from_dict(record.status) and not events:
            return False
        self._record = self.store.save_rollout(self.rollout_id, token, record.spec, status.to_dict(), events, now)
        return True

    def journal(self, action: RecordAnalysis | OpenIncident, now: float) -> list[Event]:
        if isinstance(action, RecordAnalysis):
            self.store.add_analysis(self.rollout_id, action.step_index, action.weight, action.verdict, action.reason,
                                    dict(action.evidence), now)
        return []  # incidents have their own table (the incident sink writes it)


def reconcile_once(state: StoreState, ports: Ports, analyzer: Analyzer, now: float) -> Outcome:
    """One turn of the local loop. A user intent (pause, abort, ...) written meanwhile makes the
    save conflict: the actions applied are idempotent, and the next turn decides again."""
    try:
        return reconcile(state, ports, analyzer, now)
    except ConflictError:
        snap = state.load()
        return Outcome(Decision((), snap.status, 0.0), wrote=False)
