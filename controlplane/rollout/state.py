"""The RolloutState port: where one rollout's spec and status live, read and written whole.

``load()`` returns a snapshot with an opaque concurrency token (the store row's revision, the
resource's resourceVersion); ``save()`` writes the new status and the events of one decision at
once, conditional on that token: ``ConflictError`` when someone else wrote meanwhile (a user's
intent), and the caller decides again from a fresh load. Implementations: ``StoreState``
(controlplane/app/store_state.py, local) and ``ResourceState`` (controlplane/app/kube_state.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.engine import RolloutSpec, RolloutStatus
from controlplane.engine.types import OpenIncident, RecordAnalysis

Event = tuple[str, str, dict[str, Any]]  # kind, message, evidence


@dataclass(frozen=True)
class Snapshot:
    spec: RolloutSpec
    status: RolloutStatus
    token: Any  # whatever save() needs to detect a concurrent write


class RolloutState(Protocol):
    def load(self) -> Snapshot: ...

    def save(self, status: RolloutStatus, events: list[Event], token: Any, now: float) -> bool:
        """Write status and events (at ``now``, the decision's time) at once; False when nothing
        changed (nothing written).
        Raise ConflictError when ``token`` is stale."""
        ...

    def journal(self, action: RecordAnalysis | OpenIncident, now: float) -> list[Event]:
        """Record an analysis verdict or an incident where this state keeps such records (the
        store's tables, or the resource's history); the events to add to the next save."""
        ...
