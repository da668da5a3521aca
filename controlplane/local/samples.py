"""Per-request outcomes kept in memory for the local metric provider, and the
Prometheus metrics exported for the same requests (defined once, in ``controlplane.serving_metrics``)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from controlplane.serving_metrics import RequestMetrics


@dataclass(frozen=True)
class Sample:
    at: float
    version: int
    latency_s: float
    ok: bool


class ServingMetrics:
    """Thread-safe record of every request: a bounded in-memory log plus Prometheus series."""

    def __init__(self, max_samples: int = 200_000) -> None:
        self._metrics = RequestMetrics()
        self.registry = self._metrics.registry
        self._log: deque[Sample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def announce(self, model: str, version: int, role: str) -> None:
        self._metrics.announce(model, version, role)

    def record(self, model: str, version: int, role: str, at: float, latency_s: float, ok: bool) -> None:
        self._metrics.observe(model, version, role, "ok" if ok else "error", latency_s)
        with self._lock:
            self._log.append(Sample(at, version, latency_s, ok))

    def window(self, version: int, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self._log if s.version == version and start <= s.at < end]
