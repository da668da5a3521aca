"""Kubernetes Events on ModelRollouts (``core/v1`` Events, as ``kubectl describe`` shows them).

Events mirror ``status.history`` (which is the record), so they are sent by a background
thread: a reconcile never waits for them, and a failure to send one is logged, not retried.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.app import kube_rollout as cr_
from controlplane.errors import ControlPlaneError

log = logging.getLogger("controlplane.controller.events")
COMPONENT = "attn-controlplane"


def event_body(cr: Mapping[str, Any], kind: str, message: str, warning: bool, instance: str) -> dict[str, Any]:
    meta = cr.get("metadata") or {}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": cr_.API_VERSION, "kind": cr_.KIND, "name": meta.get("name"),
                           "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "reason": kind, "message": message[:1024], "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": instance,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class KubeEvents:
    def __init__(self, client: KubeClient, instance: str, capacity: int = 10000) -> None:
        self.client, self.instance = client, instance
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._send_all, name="events", daemon=True)
        self._thread.start()

    def emit(self, cr: Mapping[str, Any], kind: str, message: str, warning: bool) -> None:
        try:
            self._queue.put_nowait(event_body(cr, kind, message, warning, self.instance))
        except queue.Full:
            log.warning("event queue full: %s on %s dropped (status.history keeps it)", kind,
                        (cr.get("metadata") or {}).get("name"))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) until every queued event was sent; used on shutdown."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def _send_all(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is not None:
                    self.client.create_event(str(body["metadata"]["namespace"]), body)
            except ControlPlaneError as exc:
                log.warning("event %s not recorded: %s", body and body.get("reason"), exc)
            finally:
                self._queue.task_done()
