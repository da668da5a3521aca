"""Helpers for the k8s tests: the ModelRollout CRD installed once, workloads in a namespace,
and the controller as a real subprocess (``ctl controller run``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.adapters.kube import KubeClient
from controlplane.app import kube_rollout as cr_

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


@pytest.fixture(scope="session")
def crd(k8s_cluster: Any) -> str:
    k8s_cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "crd" / "modelrollouts.yaml"))
    # `kubectl wait` errors out (instead of waiting) while the new CRD has no status.conditions yet
    wait_for(lambda: k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                                         "crd/modelrollouts.rollouts.attn-controlplane.dev", check=False
                                         ).returncode == 0, 120, "the ModelRollout CRD established", every=0.5)
    return cr_.PLURAL


@pytest.fixture()
def kube(k8s_cluster: Any) -> Iterator[KubeClient]:
    client = KubeClient(str(k8s_cluster.kubeconfig))
    yield client
    client.close()


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition", every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def until_ready(action: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Call ``action`` until it stops raising TemporaryError (e.g. waiting for pods)."""
    from controlplane.errors import TemporaryError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except TemporaryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def stable_objects(namespace: str, version: int = 2, replicas: int = 4, name: str = "minilm") -> list[dict[str, Any]]:
    """The example's Deployment and Service, in ``namespace``."""
    docs = list(yaml.safe_load_all((MANIFESTS / "example" / "workload.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        doc["metadata"]["name"] = name
    dep = docs[0]
    dep["spec"]["replicas"] = replicas
    uri = f"models:/minilm/{version}"
    dep["spec"]["template"]["metadata"]["annotations"]["rollouts.attn-controlplane.dev/model-uri"] = uri
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODEL_URI", "value": uri}]
    return docs


def http_route(namespace: str, name: str = "minilm") -> dict[str, Any]:
    doc = yaml.safe_load((MANIFESTS / "example" / "route.yaml").read_text())
    doc["metadata"].update(namespace=namespace, name=name)
    doc["spec"]["hostnames"] = ["minilm.example.com"]
    doc["spec"]["rules"][0]["backendRefs"][0]["name"] = name
    return doc


def virtual_service(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "minilm", "namespace": namespace},
        "spec": {"hosts": ["minilm.example.com"], "gateways": ["mesh"], "http": [
            {"name": "embeddings", "match": [{"uri": {"prefix": "/v1/embeddings"}}], "timeout": "5s",
             "route": [{"destination": {"host": f"minilm.{namespace}.svc.cluster.local", "port": {"number": 80}},
                        "weight": 100}]},
            {"name": "other", "route": [{"destination": {"host": "legacy", "port": {"number": 80}}}]},
        ]},
    }


def inference_service(namespace: str, version: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "minilm", "namespace": namespace},
        "spec": {"predictor": {"minReplicas": 1, "model": {
            "modelFormat": {"name": "onnx"}, "storageUri": f"models:/minilm/{version}"}}},
    }


def apply(k8s_cluster: Any, *docs: dict[str, Any]) -> None:
    for doc in docs:
        k8s_cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))


def rollout(namespace: str, router: str, version: int = 3, steps: tuple[int, ...] = (25, 50, 100),
            step_s: float = 1.0, name: str = "minilm", model: str = "minilm") -> dict[str, Any]:
    options = {"gateway-api": {"httpRoute": name}, "istio": {"virtualService": "minilm"},
               "kserve": {"inferenceService": "minilm"}, "replica-ratio": {}}[router]
    body = cr_.rollout_manifest(name, namespace, model, version, deployment=None if router == "kserve" else name,
                                router={"type": router, **options}, steps=steps, step_duration_s=step_s,
                                analysis_interval_s=0.25, skip_validation=True, service=None)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControllerProcess:
    """``ctl controller run`` as a real process (killable with SIGKILL)."""

    def __init__(self, kubeconfig: Path, namespace: str, log_dir: Path, lease_namespace: str | None = None,
                 ident: str = "c0", lease_duration: float = 4.0, audit_db: str | None = None,
                 extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None,
                 ctl: str | None = None) -> None:
        """``ctl``: an installed ``ctl`` to run (a role's venv) instead of this checkout's code."""
        self.port = free_port()
        self.ident = ident
        self.log = log_dir / f"controller-{ident}-{time.monotonic_ns()}.log"
        program = [ctl] if ctl else [sys.executable, "-m", "controlplane.cli.main"]
        argv = [*program, "controller", "run", f"--kubeconfig={kubeconfig}",
                f"--namespace={namespace}", f"--lease-namespace={lease_namespace or namespace}", f"--id={ident}",
                f"--port={self.port}", f"--lease-duration={lease_duration}", "--workers=4", "--log-level=INFO"]
        if audit_db:
            argv.append(f"--audit-db={audit_db}")
        argv += extra_args
        dropped = ("KUBECONFIG", "CONTROLPLANE_DB_URL") + (("PYTHONPATH",) if ctl else ())
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update(extra_env or {})
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log_dir if ctl else ROOT, env=env,
                                         start_new_session=True)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        return values

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Until /healthz answers: by then the SIGTERM handlers are in place (Python's start-up is not)."""
        deadline = time.monotonic() + timeout
        while self.get("/healthz") != 200:
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "controller never served /healthz\n" + self.output()
            time.sleep(0.1)

    def terminate(self, timeout: float = 20.0) -> int:
        self.wait_serving()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture()
def controllers(tmp_path: Path) -> Iterator[list[ControllerProcess]]:
    started: list[ControllerProcess] = []
    yield started
    for c in started:
        if c.proc.poll() is None:
            c.kill()


def get_rollout(kube: KubeClient, namespace: str, name: str = "minilm") -> dict[str, Any]:
    return kube.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name)


def phase_is(kube: KubeClient, namespace: str, *phases: str, name: str = "minilm") -> Callable[[], Any]:
    def check() -> Any:
        cr = get_rollout(kube, namespace, name)
        return cr if (cr.get("status") or {}).get("phase") in phases else None

    return check
