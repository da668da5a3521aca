"""The SQL audit mirror of Kubernetes rollouts: ``status.history`` copied into the store.

The resource decides; the store only records (never read for a decision). Every history
entry carries a gap-free ``seq``; ``sync`` appends the entries whose ``seq`` the store has
not seen, so a controller killed between its status write and the audit write catches up on
the next reconcile and the audit log has no gap. A local cache of the last ``seq`` synced per
rollout keeps this to no database access at all when nothing is new.

The same store holds the incidents of Kubernetes rollouts (``incidents``): opened and notified
exactly as the local target's, linked to the rollout's audit row, so ``ctl incident list``
shows the controller's automatic rollbacks too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.app import kube_rollout as cr_
from controlplane.app.incident_sink import StoreIncidentSink
from controlplane.engine.types import OpenIncident
from controlplane.errors import ControlPlaneError
from controlplane.ports import RolloutRecord, Store

log = logging.getLogger("controlplane.controller.audit")


class StoreAudit:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock
        self._synced: dict[tuple[str, int], int] = {}  # (uid, version) -> last seq in the store
        self._lock = threading.Lock()

    def sync(self, cr: Mapping[str, Any]) -> None:
        status = cr.get("status") or {}
        history = list(status.get("history") or [])
        version = status.get("version")
        uid = str((cr.get("metadata") or {}).get("uid"))
        if not history or version is None:
            return
        key = (uid, int(version))
        last = int(history[-1].get("seq", -1))
        with self._lock:
            if self._synced.get(key) == last:
                return
            try:
                self._sync(cr, key, history)
            except ControlPlaneError as exc:  # the audit must never stop a rollout; the next sync catches up
                log.warning("audit of %s/%s not written: %s", *(cr_.owner_reference(cr)["name"], uid), exc)

    def incidents(self, cr: Mapping[str, Any]) -> AuditIncidents:
        """The incident sink of one rollout (at the version its spec asks for)."""
        return AuditIncidents(self, cr)

    def rollout_id(self, cr: Mapping[str, Any]) -> int:
        """The audit row of the rollout's current version (created when missing)."""
        uid = str((cr.get("metadata") or {}).get("uid"))
        with self._lock:
            return self._record(cr, (uid, int(cr_.spec_of(cr).get("version", 0)))).id

    def _sync(self, cr: Mapping[str, Any], key: tuple[str, int], history: list[dict[str, Any]]) -> None:
        record = self._record(cr, key)
        seen = [int(e.evidence.get("seq", -1)) for e in self.store.list_events(record.id)]
        after = max(seen, default=-1)
        new = [e for e in history if int(e.get("seq", -1)) > after]
        events = [
            (str(e["kind"]), str(e["message"]),
             {**(e.get("evidence") or {}), "seq": e["seq"], "at": e["at"], "step_index": e.get("stepIndex"),
              "weight": e.get("weight")})
            for e in new
        ]
        state = dict((cr.get("status") or {}).get("state") or {})
        self.store.save_rollout(record.id, record.revision, record.spec, state, events, self.clock())
        self._synced[key] = int(history[-1]["seq"])

    def _record(self, cr: Mapping[str, Any], key: tuple[str, int]) -> RolloutRecord:
        spec = cr_.spec_of(cr)
        for record in self.store.list_rollouts(str(spec.get("model"))):
            if record.spec.get("kubernetes", {}).get("uid") == key[0] and record.version == key[1]:
                return record
        meta = cr.get("metadata") or {}
        stable = (cr.get("status") or {}).get("stableVersion")
        body = cr_.engine_spec(cr, stable).to_dict()
        body["kubernetes"] = {"namespace": meta.get("namespace"), "name": meta.get("name"), "uid": key[0]}
        return self.store.create_rollout(body, {"phase": "Pending"}, self.clock())


class AuditIncidents:
    """A rollout.apply.IncidentSink: the store's incidents (and the webhook), linked to the audit
    row. A failing store is logged, never raised: the rollback it reports is already applied, and
    the incident stays in ``status.history``."""

    def __init__(self, audit: StoreAudit, cr: Mapping[str, Any]) -> None:
        self.audit, self.cr = audit, cr

    def open(self, incident: OpenIncident, model: str, version: int, now: float) -> None:
        try:
            StoreIncidentSink(self.audit.store, lambda: self.audit.rollout_id(self.cr)).open(
                incident, model, version, now)
        except ControlPlaneError as exc:
            log.warning("incident %s of %s:v%s not recorded in the store: %s", incident.failure_mode, model,
                        version, exc)
