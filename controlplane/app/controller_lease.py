"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it: the holder
renews every ``retry_s``; a candidate takes the lease over once ``renewTime`` is older than
``leaseDurationSeconds``; every write is an optimistic PUT (409 → someone else won).

The leader that cannot renew within ``renew_deadline_s`` steps down (``on_lost``), so two
leaders never act at once for longer than the clock skew allows.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.errors import ConflictError, ControlPlaneError, NotFoundError

log = logging.getLogger("controlplane.controller.lease")


def micro_time(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.lease_duration_s, self.renew_deadline_s, self.retry_s = lease_duration_s, renew_deadline_s, retry_s
        self.clock = clock
        self._renewed_at = 0.0  # local clock time of the last successful acquire/renew
        self._leader = threading.Event()

    def is_leader(self) -> bool:
        return self._leader.is_set() and self.clock() - self._renewed_at < self.renew_deadline_s

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = self.client.get_lease(self.namespace, self.name)
        except NotFoundError:
            try:
                self.client.create_lease(self.namespace, self._body(None, now, transitions=0, acquired=now))
            except ConflictError:
                return False
            return self._won(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renewed = parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_s)
        if holder and holder != self.identity and now < renewed + duration:
            self._leader.clear()
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = parse_time(spec.get("acquireTime")) if holder == self.identity else now
        try:
            self.client.replace_lease(self.namespace, self.name, self._body(lease, now, transitions, acquired))
        except ConflictError:
            return False
        return self._won(now)

    def _won(self, now: float) -> bool:
        if not self._leader.is_set():
            log.info("%s became the leader (lease %s/%s)", self.identity, self.namespace, self.name)
        self._renewed_at = now
        self._leader.set()
        return True

    def _body(self, lease: dict[str, Any] | None, now: float, transitions: int, acquired: float) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration_s),
                "acquireTime": micro_time(acquired),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def run(self, stop: threading.Event, on_started: Callable[[], None], on_lost: Callable[[], None]) -> None:
        """Campaign until ``stop``; call ``on_started`` when elected and ``on_lost`` when the
        leadership could not be kept (then stop campaigning: the process should exit)."""
        while not stop.is_set():
            was_leader = self._leader.is_set()
            try:
                self.try_acquire_or_renew()
            except ControlPlaneError as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            if self._leader.is_set() and not was_leader:
                on_started()
            if was_leader and not self.is_leader():
                self._leader.clear()
                log.error("%s lost the leadership", self.identity)
                on_lost()
                return
            stop.wait(self.retry_s)

    def release(self) -> None:
        """Give the lease up (on graceful shutdown) so that a standby takes over at once."""
        if not self._leader.is_set():
            return
        self._leader.clear()
        try:
            lease = self.client.get_lease(self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            body = self._body(lease, self.clock(), int(lease["spec"].get("leaseTransitions") or 0), self.clock())
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            self.client.replace_lease(self.namespace, self.name, body)
        except ControlPlaneError as exc:
            log.warning("could not release lease: %s", exc)
