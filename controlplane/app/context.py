"""The application context: settings plus lazily opened store and registry.

Opening is lazy so that commands which need neither (``ctl --help``, ``ctl runbook``)
import neither SQLAlchemy nor MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from controlplane.extras import require
from controlplane.ports import ModelRegistry, Store
from controlplane.settings import Settings, load_settings


@dataclass
class Context:
    settings: Settings
    clock: Callable[[], float] = field(default=time.time)

    @cached_property
    def store(self) -> Store:
        require("store", "the state store")
        from controlplane.store import SqlStore

        return SqlStore(self.settings.db_url)

    @cached_property
    def registry(self) -> ModelRegistry:
        require("registry", "the model registry")
        from controlplane.adapters.mlflow_registry import MlflowRegistry

        self.settings.home.mkdir(parents=True, exist_ok=True)
        return MlflowRegistry(
            tracking_uri=self.settings.tracking_uri,
            registry_uri=self.settings.registry_uri,
            artifact_root=self.settings.artifact_root,
            cache_dir=self.settings.models_cache,
        )

    def now(self) -> float:
        return self.clock()


def open_context(settings: Settings | None = None) -> Context:
    return Context(settings or load_settings())
