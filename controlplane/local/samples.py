"""Per-request outcomes kept in memory for the local metric provider, and the
Prometheus metrics exported for the same requests."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Sample:
    at: float
    version: int
    latency_s: float
    ok: bool


class ServingMetrics:
    """Thread-safe record of every request: a bounded in-memory log plus Prometheus series."""

    def __init__(self, max_samples: int = 200_000) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests", "Inference requests served", ["model", "version", "role", "outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "Inference latency",
            ["model", "version", "role"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._log: deque[Sample] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def announce(self, model: str, version: int, role: str) -> None:
        """Create a version's series at zero when it starts serving: Prometheus takes a new series' first
        value as its start, so an error counter born at 1 would hide the first error from increase()."""
        for outcome in ("ok", "error"):
            self.requests.labels(model, str(version), role, outcome).inc(0)

    def record(self, model: str, version: int, role: str, at: float, latency_s: float, ok: bool) -> None:
        labels = (model, str(version), role)
        self.requests.labels(*labels, "ok" if ok else "error").inc()
        self.latency.labels(*labels).observe(latency_s)
        with self._lock:
            self._log.append(Sample(at, version, latency_s, ok))

    def window(self, version: int, start: float, end: float) -> list[Sample]:
        with self._lock:
            return [s for s in self._log if s.version == version and start <= s.at < end]
