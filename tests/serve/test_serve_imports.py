"""`ctl serve` needs neither torch nor transformers: importing the CLI and the serve modules, resolving
and fetching the version from the registry, building the app and loading the model (session and
warm-up) leave both out of ``sys.modules`` (in a fresh interpreter, so nothing else imported them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.conftest import MODEL, Registered, ctl_env

pytestmark = [pytest.mark.slow, pytest.mark.mlflow_server]

SCRIPT = f"""
import json, sys
import controlplane.cli.main
import controlplane.serving_metrics
from controlplane.serve import app, batcher, inference, loader, openapi, options, protocol, server
fetched = loader.resolve_and_fetch("models:/{MODEL}/1")
state = app.ServerState(fetched, options.ServeOptions("models:/{MODEL}/1"), lambda: None)
app.create_app(state)
embedder = loader.load(fetched, truncate=True, threads=None)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"torch", "transformers"}})
print(json.dumps({{"dim": embedder.dim, "heavy": heavy}}))
"""


def test_serving_imports_neither_torch_nor_transformers(registered: Registered, tmp_path: Path) -> None:
    env = ctl_env(tmp_path, registered.tracking_uri)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"dim": 384, "heavy": []}
