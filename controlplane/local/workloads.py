"""Local workloads (a ports.Workloads): load, promote and retire onnxruntime servers."""

from __future__ import annotations

from controlplane.local.fleet import Fleet, ModelServer
from controlplane.ports import ModelRegistry, RouteTarget


class LocalWorkloads:
    def __init__(self, fleet: Fleet, registry: ModelRegistry) -> None:
        self.fleet = fleet
        self.registry = registry

    def _load(self, version: int) -> ModelServer:
        return ModelServer.load(self.fleet.model, version, self.registry.fetch(self.fleet.model, version))

    def ensure_stable(self, target: RouteTarget) -> None:
        if target.stable_version is None:
            return
        current = self.fleet.get("stable")
        if current is None or current.version != target.stable_version:
            self.fleet.put("stable", self._load(target.stable_version))

    def ensure_canary(self, target: RouteTarget) -> None:
        current = self.fleet.get("canary")
        if current is None or current.version != target.canary_version:
            self.fleet.put("canary", self._load(target.canary_version))

    def promote_stable(self, target: RouteTarget) -> None:
        """Stable serves the canary's version: the canary's server itself when it is loaded."""
        canary = self.fleet.get("canary")
        server = canary if canary is not None and canary.version == target.canary_version else None
        self.fleet.put("stable", server or self._load(target.canary_version))

    def stable_ready(self, target: RouteTarget) -> bool:
        stable = self.fleet.get("stable")
        return stable is not None and stable.version == target.canary_version

    def retire_canary(self, target: RouteTarget) -> None:
        self.fleet.put("canary", None)
