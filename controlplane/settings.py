"""Where the control plane keeps its state and which systems it talks to.

Everything the embedded default writes lives under ``$CONTROLPLANE_HOME``
(default ``./.controlplane``), so two homes never interfere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    tracking_uri: str
    registry_uri: str
    artifact_root: Path
    namespace: str = "default"  # the Kubernetes namespace of ModelRollouts and their workloads

    @property
    def models_cache(self) -> Path:
        """Local copies of registered artifacts, keyed by name and version."""
        return self.home / "cache" / "models"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("CONTROLPLANE_HOME", ".controlplane")).resolve()
    db_url = env.get("CONTROLPLANE_DB_URL") or f"sqlite:///{home / 'state.db'}"
    tracking = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    registry = env.get("MLFLOW_REGISTRY_URI") or tracking
    return Settings(
        home=home,
        db_url=db_url,
        tracking_uri=tracking,
        registry_uri=registry,
        artifact_root=home / "mlartifacts",
        namespace=env.get("CONTROLPLANE_NAMESPACE") or "default",
    )
