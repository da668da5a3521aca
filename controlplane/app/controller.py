"""``ctl controller run``: reconcile every ModelRollout, one replica at a time.

    lease ──leader──▶ watch (list+watch ModelRollouts) ──keys──▶ WorkQueue ──▶ workers ──▶ Reconciler

Only the leader watches and reconciles (a standby just campaigns); a leader that cannot renew
its Lease exits so that it never acts next to a new one. Failures are handled in one place,
``_process``: 409 → requeue at once (fresh read), TemporaryError → requeue with per-key
exponential backoff (honouring its delay), anything else → logged, requeued with the longest
backoff. The reconciler requeues itself when the engine asks (step timers). SIGTERM stops
taking work, lets running reconciles finish and releases the Lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from controlplane.adapters.kube import KubeClient
from controlplane.app import kube_rollout as cr_
from controlplane.app.controller_http import ControllerMetrics, serve
from controlplane.app.controller_lease import LeaderElector
from controlplane.app.controller_queue import Key, WorkQueue
from controlplane.app.kube_reconcile import Reconciler
from controlplane.errors import ConflictError, ControlPlaneError, TemporaryError

log = logging.getLogger("controlplane.controller")


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass
class ControllerOptions:
    namespace: str | None = None  # None: every namespace
    identity: str = field(default_factory=default_identity)
    leader_elect: bool = True
    lease_namespace: str = "default"
    lease_name: str = "attn-controlplane-controller"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_s: float = 2.0
    workers: int = 4
    port: int | None = 8080
    max_backoff_s: float = 60.0
    watch_timeout_s: int = 60


class Controller:
    def __init__(self, client: KubeClient, reconciler: Reconciler, options: ControllerOptions,
                 stop: threading.Event | None = None) -> None:
        self.client, self.reconciler, self.options = client, reconciler, options
        self.metrics = ControllerMetrics()
        client.hooks.append(self.metrics.on_request)
        self.queue = WorkQueue()
        self.synced = threading.Event()
        self.stop = stop or threading.Event()  # the CLI passes one its signal handlers set from the start
        self.lost = False
        self.durations: list[float] = []  # seconds per reconcile (benchmarks read these)
        self._own_writes: dict[Key, str] = {}
        self._cache: dict[Key, dict[str, object]] = {}  # latest copy seen (watch or own write)
        self._cache_lock = threading.Lock()
        self._failures: dict[Key, int] = {}
        self._threads: list[threading.Thread] = []
        self.elector = LeaderElector(
            client, options.lease_namespace, options.lease_name, options.identity,
            lease_duration_s=options.lease_duration_s, renew_deadline_s=options.renew_deadline_s,
            retry_s=options.retry_s,
        )
        reconciler.can_write = self.is_leader
        self.server = serve(options.port, self.metrics, self.ready) if options.port is not None else None

    def is_leader(self) -> bool:
        return not self.stop.is_set() and (not self.options.leader_elect or self.elector.is_leader())

    def ready(self) -> bool:
        """Ready: a standby campaigning, or a leader whose first list is done."""
        return not self.stop.is_set() and (not self.is_leader() or self.synced.is_set())

    # ---- life cycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Block until stopped (SIGTERM sets ``stop``); 1 when the leadership was lost."""
        if self.options.leader_elect:
            campaign = threading.Thread(
                target=self.elector.run, args=(self.stop, self._start_work, self._on_lost), name="lease", daemon=True
            )
            campaign.start()
        else:
            self._start_work()
        self.stop.wait()
        self.shutdown()
        return 1 if self.lost else 0

    def _start_work(self) -> None:
        self.metrics.leader.set(1)
        log.info("%s: starting %d workers", self.options.identity, self.options.workers)
        threads = [threading.Thread(target=self._watch, name="watch", daemon=True)]
        threads += [
            threading.Thread(target=self._worker, name=f"worker-{i}", daemon=True) for i in range(self.options.workers)
        ]
        for thread in threads:
            thread.start()
        self._threads = threads

    def _on_lost(self) -> None:
        self.lost = True
        self.metrics.leader.set(0)
        self.stop.set()

    def shutdown(self, grace_s: float = 10.0) -> None:
        self.stop.set()
        self.queue.close()
        deadline = time.monotonic() + grace_s
        for thread in self._threads:
            if thread.name.startswith("worker"):
                thread.join(max(0.0, deadline - time.monotonic()))
        flush = getattr(self.reconciler.events, "flush", None)
        if flush is not None:
            flush()
        if self.options.leader_elect and not self.lost:
            self.elector.release()
        self.metrics.leader.set(0)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---- watch --------------------------------------------------------------------------

    def _watch(self) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                listing = self.client.list_objects(cr_.GROUP, cr_.VERSION, cr_.PLURAL, self.options.namespace)
                rv = (listing.get("metadata") or {}).get("resourceVersion")
                for item in listing.get("items") or []:
                    self._remember(_key(item), item)
                    self.queue.add(_key(item))
                self.synced.set()
                backoff = 0.5
                while not self.stop.is_set():
                    rv = self._follow(rv)
                    if rv is None:
                        break  # 410 Gone or an error event: list again
            except ControlPlaneError as exc:
                log.warning("watch of %s failed: %s; listing again in %.1fs", cr_.PLURAL, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _follow(self, rv: str | None) -> str | None:
        stream = self.client.watch_custom(
            cr_.GROUP, cr_.VERSION, cr_.PLURAL, self.options.namespace, rv, self.options.watch_timeout_s
        )
        for event in stream:
            if self.stop.is_set():
                return rv
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return None
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            if kind == "BOOKMARK":
                continue
            key = _key(obj)
            if kind == "DELETED":
                self.queue.forget(key)
                self._own_writes.pop(key, None)
                self._forget(key)
                continue
            self._remember(key, obj)
            if self._own_writes.get(key) != rv:  # our own status write: already acted on
                self.queue.add(key)
        return rv

    # ---- work ---------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self.stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self._process(key)
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(len(self.queue))

    def _process(self, key: Key) -> None:
        started = time.monotonic()
        result = "ok"
        try:
            with self._cache_lock:
                cached = self._cache.get(key)
            outcome = self.reconciler.reconcile(*key, cached=cached)  # type: ignore[arg-type]
            self._failures.pop(key, None)
            if outcome.wrote and outcome.resource_version:
                self._own_writes[key] = outcome.resource_version
                self.metrics.status_writes.inc()
            if outcome.written is not None:
                self._remember(key, outcome.written)
            if outcome.requeue_after is not None:
                self.queue.add(key, outcome.requeue_after)
        except ConflictError:
            result = "conflict"
            self._forget(key)  # read it afresh next time
            self.queue.add(key, 0.0)
        except TemporaryError as exc:
            result = "retry"
            self.queue.add(key, max(exc.delay, self._backoff(key)))
            log.info("%s/%s: %s (retrying)", *key, exc)
        except ControlPlaneError as exc:
            result = "error"
            self.queue.add(key, self._backoff(key, floor=5.0))
            log.warning("%s/%s: %s", *key, exc)
        except Exception:  # a bug must not kill the worker: log it and back off
            result = "bug"
            self.queue.add(key, self.options.max_backoff_s)
            log.exception("%s/%s: unexpected error", *key)
        finally:
            elapsed = time.monotonic() - started
            self.durations.append(elapsed)
            self.metrics.reconcile_seconds.observe(elapsed)
            self.metrics.reconciles.labels(result=result).inc()

    def _remember(self, key: Key, obj: dict[str, object]) -> None:
        """Keep the newest copy (by resourceVersion order as the server delivered them)."""
        with self._cache_lock:
            old = self._cache.get(key)
            if old is None or _rv(obj) >= _rv(old):  # a late watch event must not undo our own write
                self._cache[key] = obj

    def _forget(self, key: Key) -> None:
        with self._cache_lock:
            self._cache.pop(key, None)

    def _backoff(self, key: Key, floor: float = 0.1) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return min(self.options.max_backoff_s, floor * 2 ** (failures - 1))


def _rv(obj: dict[str, object]) -> int:
    """resourceVersion as a number (etcd's revision); 0 when it is not one (then always replaced)."""
    meta = obj.get("metadata") or {}
    value = str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""
    return int(value) if value.isdigit() else 0


def _key(obj: dict[str, object]) -> Key:
    meta = obj.get("metadata") or {}
    assert isinstance(meta, dict)
    return str(meta.get("namespace")), str(meta.get("name"))
