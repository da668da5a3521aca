"""The local metric provider (a ports.MetricProvider) over the in-memory request log."""

from __future__ import annotations

import itertools

import numpy as np

from controlplane.local.samples import Sample, ServingMetrics
from controlplane.ports import MetricObservation, MetricWindow, VersionSample


class LocalMetricProvider:
    name = "local"

    def __init__(self, metrics: ServingMetrics, latency_threshold_s: float = 0.2, sub_interval_s: float = 1.0) -> None:
        self.metrics = metrics
        self.latency_threshold_s = latency_threshold_s
        self.sub_interval_s = sub_interval_s

    def observe(
        self, model: str, canary_version: int, stable_version: int | None, window: MetricWindow
    ) -> MetricObservation:
        canary = self._sample(self.metrics.window(canary_version, window.start, window.end), window)
        stable = None
        if stable_version is not None:
            stable = self._sample(self.metrics.window(stable_version, window.start, window.end), window)
        queries = {"source": f"in-process request log, window {window.end - window.start:.1f}s"}
        return MetricObservation(window=window, canary=canary, stable=stable, queries=queries)

    def _sample(self, samples: list[Sample], window: MetricWindow) -> VersionSample:
        latencies_ms: list[float] = []
        error_ratios: list[float] = []
        step = self.sub_interval_s
        edges = np.arange(window.start, window.end + step, step)
        for lo, hi in itertools.pairwise(edges):
            chunk = [s for s in samples if lo <= s.at < hi]
            if chunk:
                latencies_ms.append(float(np.percentile([s.latency_s * 1000 for s in chunk], 95)))
                error_ratios.append(sum(not s.ok for s in chunk) / len(chunk))
        return VersionSample(
            requests=float(len(samples)),
            errors=float(sum(not s.ok for s in samples)),
            latency_good=float(sum(s.latency_s <= self.latency_threshold_s for s in samples)),
            latencies_ms=tuple(latencies_ms),
            error_ratios=tuple(error_ratios),
        )
