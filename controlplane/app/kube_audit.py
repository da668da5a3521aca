"""The SQL audit mirror of Kubernetes rollouts: ``status.history`` copied into the store.

The resource decides; the store only records (never read for a decision). Every history
entry carries a gap-free ``seq``; ``sync`` appends the entries whose ``seq`` the store has
not seen, so a controller killed between its status write and the audit write catches up on
the next reconcile and the audit log has no gap. A local cache of the last ``seq`` synced per
rollout keeps this to no database access at all when nothing is new.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.app import kube_rollout as cr_
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
