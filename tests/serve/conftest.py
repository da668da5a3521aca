"""A real `ctl serve` on loopback, loading the real all-MiniLM-L6-v2 from the real `mlflow server` fixture.

``registered`` registers the model once (``ctl register`` in a subprocess); ``start_server`` starts a
`ctl serve` process (its own CONTROLPLANE_HOME, so its own download) and waits until
``/v2/health/ready``; ``server`` is one shared instance for the tests that only send requests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, stop_group

MODEL = "serve-minilm"
READY_TIMEOUT_S = 120.0


def ctl_env(home: Path, tracking_uri: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CONTROLPLANE_HOME": str(home), "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": tracking_uri}
    for key in ("MLFLOW_REGISTRY_URI", "CONTROLPLANE_DB_URL", "MODEL_URI", "MODEL_ROLE", "SERVE_PROVIDERS"):
        env.pop(key, None)
    env.update(extra)
    return env


def ctl(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", *args], env=env, text=True, capture_output=True, timeout=timeout
    )


@dataclass
class Registered:
    tracking_uri: str
    ref: str  # NAME:v1
    home: Path


@pytest.fixture(scope="session")
def registered(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Registered:
    from controlplane.models import minilm_dir

    home = tmp_path_factory.mktemp("serve-register")
    proc = ctl("register", MODEL, "--model-dir", str(minilm_dir()), env=ctl_env(home, mlflow_server))
    assert proc.returncode == 0, proc.stderr
    return Registered(mlflow_server, proc.stdout.strip().splitlines()[-1], home)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 60
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def post(self, path: str, doc: Any, timeout: float = 60) -> tuple[int, Any]:
        status, _, body = self.request("POST", path, json.dumps(doc).encode(), timeout)
        return status, json.loads(body)

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path)
        return status, body

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, keyed by (name, sorted labels)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples
        }

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"ctl serve exited with {server.proc.returncode}:\n{server.output()}", pytrace=False)
        try:
            if server.request("GET", "/v2/health/ready", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"ctl serve not ready within {READY_TIMEOUT_S:.0f} s:\n{server.output()}", pytrace=False)


StartServer = Callable[..., Server]


@pytest.fixture(scope="session")
def start_server(registered: Registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    started: list[Server] = []

    def start(*args: str, role: str = "canary", uri: str | None = None) -> Server:
        home = tmp_path_factory.mktemp("serve-home")
        port = free_port()
        env = ctl_env(home, registered.tracking_uri, MODEL_ROLE=role, MODEL_URI=uri or f"models:/{MODEL}/1")
        log = home / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "controlplane.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        server = Server(proc, f"http://127.0.0.1:{port}", log)
        started.append(server)
        wait_ready(server)
        return server

    yield start
    for server in started:
        stop_group(server.proc)


@pytest.fixture(scope="session")
def server(start_server: StartServer) -> Server:
    """The shared instance: MODEL_URI from the environment (models:/NAME/1), role canary."""
    return start_server()


def infer_body(texts: list[str]) -> dict[str, Any]:
    return {"id": "t-1", "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
