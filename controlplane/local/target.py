"""The local target assembled: fleet, router, workloads, traffic, metrics and exporter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controlplane.local.fleet import Fleet
from controlplane.local.provider import LocalMetricProvider
from controlplane.local.router import LocalRouter
from controlplane.local.samples import ServingMetrics
from controlplane.local.traffic import TrafficGenerator
from controlplane.local.workloads import LocalWorkloads
from controlplane.ports import ModelRegistry, RouteTarget


@dataclass
class LocalTarget:
    model: str
    registry: ModelRegistry
    corpus: list[str]
    rate: float = 40.0
    workers: int = 2
    latency_threshold_s: float = 0.2
    metrics_port: int | None = None
    clock: Callable[[], float] = time.time
    metrics: ServingMetrics = field(default_factory=ServingMetrics)

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.model, self.metrics, self.clock)
        self.router = LocalRouter()
        self.workloads = LocalWorkloads(self.fleet, self.registry)
        self.provider = LocalMetricProvider(self.metrics, self.latency_threshold_s)
        self.traffic = TrafficGenerator(self.fleet, self.router, self.corpus, self.rate, self.workers)
        self._server: object | None = None

    def start(self, target: RouteTarget) -> None:
        """Load stable (and the canary if one is being served), export metrics, start traffic."""
        self.workloads.ensure_stable(target)
        if self.fleet.get("stable") is None:  # first version: the canary is all there is
            self.workloads.ensure_canary(target)
        if self.metrics_port is not None:
            from prometheus_client import start_http_server

            self._server, _ = start_http_server(self.metrics_port, addr="127.0.0.1", registry=self.metrics.registry)
        self.traffic.start()

    def stop(self) -> None:
        self.traffic.stop()
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server = None
