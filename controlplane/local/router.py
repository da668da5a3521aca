"""The in-process weighted router of the local target (a ports.TrafficRouter)."""

from __future__ import annotations

import random
import threading

from controlplane.errors import InputError
from controlplane.ports import RouteTarget


class LocalRouter:
    name = "local"

    def __init__(self, seed: int = 7) -> None:
        self._weight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        if not 0 <= canary_weight <= 100:
            raise InputError(f"canary weight must be within 0..100, got {canary_weight}")
        with self._lock:
            self._weight = canary_weight

    def get_weight(self, target: RouteTarget) -> int:
        with self._lock:
            return self._weight

    def reset(self, target: RouteTarget) -> None:
        with self._lock:
            self._weight = 0

    def pick(self) -> str:
        """The role that serves the next request."""
        with self._lock:
            return "canary" if self._rng.random() * 100 < self._weight else "stable"
