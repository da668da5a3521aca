"""Opens incidents from the engine's OpenIncident actions in the store (a rollout.apply.IncidentSink),
notifying the webhook, on every target."""

from __future__ import annotations

from collections.abc import Callable

from controlplane.engine.types import OpenIncident
from controlplane.ports import Store


class StoreIncidentSink:
    """``rollout_id``: the store row the incident links to (a callable when it is looked up only
    when an incident opens: the audit row of a Kubernetes rollout)."""

    def __init__(self, store: Store, rollout_id: int | Callable[[], int | None] | None) -> None:
        self.store, self.rollout_id = store, rollout_id

    def open(self, incident: OpenIncident, model: str, version: int, now: float) -> None:
        from controlplane.app.incidents import open_incident

        link = self.rollout_id() if callable(self.rollout_id) else self.rollout_id
        open_incident(
            self.store,
            failure_mode=incident.failure_mode,
            severity=incident.severity,
            summary=incident.summary,
            evidence=dict(incident.evidence),
            rollout_id=link,
            model=model,
            version=version,
            now=now,
        )
