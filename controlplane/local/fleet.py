"""The servers of the local target: one onnxruntime model server per role."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.local.samples import ServingMetrics

MAX_LENGTH = 256


@dataclass
class ModelServer:
    """Serves one registered version with a real onnxruntime session."""

    model: str
    version: int
    encoder: Any  # controlplane.models.OnnxEncoder

    @classmethod
    def load(cls, model: str, version: int, artifact_dir: Path) -> ModelServer:
        from controlplane.models import OnnxEncoder

        return cls(model, version, OnnxEncoder(artifact_dir / "model.onnx", artifact_dir / "tokenizer.json"))

    def infer(self, texts: list[str]) -> Any:
        return self.encoder.encode(texts, max_length=MAX_LENGTH)


class Fleet:
    """Stable and canary servers; requests are recorded in ServingMetrics with their role."""

    def __init__(self, model: str, metrics: ServingMetrics, clock: Callable[[], float] = time.time) -> None:
        self.model = model
        self.metrics = metrics
        self.clock = clock
        self._servers: dict[str, ModelServer] = {}
        self._lock = threading.Lock()

    def get(self, role: str) -> ModelServer | None:
        with self._lock:
            return self._servers.get(role)

    def put(self, role: str, server: ModelServer | None) -> None:
        with self._lock:
            if server is None:
                self._servers.pop(role, None)
            else:
                self._servers[role] = server
        if server is not None:
            self.metrics.announce(self.model, server.version, role)

    def versions(self) -> dict[str, int]:
        with self._lock:
            return {role: s.version for role, s in self._servers.items()}

    def serve(self, role: str, texts: list[str]) -> bool:
        """Run one real inference on ``role``; record latency and outcome. Returns success."""
        server = self.get(role)
        if server is None:
            return False
        started = time.perf_counter()
        try:
            server.infer(texts)
            ok = True
        except Exception:  # a failing model is data here: it becomes an error sample
            ok = False
        latency = time.perf_counter() - started
        self.metrics.record(self.model, server.version, role, self.clock(), latency, ok)
        return ok
