"""Optional dependency groups (pyproject's extras) and the guard that names the one to install.

The base install is the CLI and ``--target kubernetes``; everything heavier is an extra. A command
that needs a missing extra calls ``require(GROUP, what)`` before its lazy imports and gets a
NotAvailableError (exit 2) with the exact ``pip install`` line, never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata

from controlplane.errors import NotAvailableError

DIST = "attn-controlplane"

# group -> the top-level modules a command of that group imports (checked without importing them).
GROUPS: dict[str, tuple[str, ...]] = {
    "store": ("sqlalchemy", "alembic"),
    "registry": ("mlflow", "sqlalchemy", "alembic"),
    "controller": ("httpx", "prometheus_client", "numpy", "scipy"),
    "serve": ("onnxruntime", "tokenizers", "numpy", "prometheus_client", "uvicorn", "starlette", "httptools", "uvloop",
              "mlflow"),
    "validate": ("torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxscript", "onnxruntime", "numpy",
                 "matplotlib", "mlflow", "sqlalchemy"),
    # `ctl slo dashboards`: the Grafana SDK; the serving metrics' names come from controlplane.serving_metrics.
    "grafana": ("grafana_foundation_sdk", "prometheus_client"),
    # The embedded local target: the registry, the store, two onnxruntime servers, the judge, the gates.
    "all": ("mlflow", "sqlalchemy", "alembic", "onnxruntime", "tokenizers", "numpy", "scipy", "prometheus_client",
            "torch", "transformers", "onnx"),
}

# The CUDA twin of a group whose onnxruntime is the CPU one.
GPU_TWIN = {"serve": "serve-gpu", "validate": "validate-gpu", "all": "gpu"}

RUNTIMES = ("onnxruntime", "onnxruntime-gpu")  # two distributions, one `onnxruntime` module


def missing(group: str) -> list[str]:
    """The modules of ``group`` that cannot be imported here."""
    return [m for m in GROUPS[group] if importlib.util.find_spec(m) is None]


def install_hint(group: str) -> str:
    hint = f"pip install '{DIST}[{group}]'"
    twin = GPU_TWIN.get(group)
    return hint + (f" (on a CUDA machine: pip install '{DIST}[{twin}]')" if twin else "")


def require(group: str, what: str) -> None:
    """Raise NotAvailableError naming the extra when ``what`` cannot run in this install."""
    absent = missing(group)
    if absent:
        names = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise NotAvailableError(f"{what} needs the '{group}' extra ({names} not installed): {install_hint(group)}")
    if "onnxruntime" in GROUPS[group]:
        check_single_runtime()


def check_single_runtime() -> None:
    """onnxruntime and onnxruntime-gpu overwrite each other's files: both installed is a broken install."""
    present = [d for d in RUNTIMES if _installed(d)]
    if len(present) > 1:
        raise NotAvailableError(
            "onnxruntime and onnxruntime-gpu are both installed and share one module: "
            "pip uninstall -y onnxruntime onnxruntime-gpu, then install one role, "
            f"e.g. pip install '{DIST}[serve-gpu]'"
        )


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
