"""Opens incidents from the engine's OpenIncident actions (an executor.IncidentSink)."""

from __future__ import annotations

from controlplane.engine.types import OpenIncident
from controlplane.ports import Store


class StoreIncidentSink:
    def __init__(self, store: Store) -> None:
        self.store = store

    def open(self, rollout_id: int | None, model: str, version: int, incident: OpenIncident, now: float) -> None:
        from controlplane.app.incidents import open_incident

        open_incident(
            self.store,
            failure_mode=incident.failure_mode,
            severity=incident.severity,
            summary=incident.summary,
            evidence=dict(incident.evidence),
            rollout_id=rollout_id,
            model=model,
            version=version,
            now=now,
        )
