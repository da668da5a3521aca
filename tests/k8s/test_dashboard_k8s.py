"""The dashboard under the controller, on the real API server, with the controller's own ServiceAccount
token and the RBAC of manifests/rbac/controller.yaml: it lists and shows the rollouts of the namespace the
controller manages, and for a namespace it may not read it shows the API server's 403 as one line (and
serves nothing of it). It listens on loopback only."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from tests.k8s.conftest import (
    MANIFESTS,
    ControllerProcess,
    apply,
    free_port,
    http_route,
    phase_is,
    rollout,
    stable_objects,
    wait_for,
)
from tests.k8s.test_rbac_k8s import render

pytestmark = pytest.mark.k8s


@pytest.fixture()
def namespaces(k8s_cluster: Any) -> Iterator[tuple[str, str, str]]:
    names = tuple(f"dash-{uuid.uuid4().hex[:8]}" for _ in range(3))  # controller, managed, elsewhere
    for name in names:
        k8s_cluster.kubectl("create", "namespace", name)
    yield names  # type: ignore[misc]
    for name in names:
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def test_the_controller_dashboard_shows_what_its_rbac_lets_it_read(
    k8s_cluster: Any, namespaces: tuple[str, str, str], kube: KubeClient, crd: str, controllers: list[Any],
    tmp_path: Path,
) -> None:
    ctl_ns, ns, elsewhere = namespaces
    apply(k8s_cluster, *render(MANIFESTS / "rbac" / "controller.yaml", ctl_ns, ns))
    apply(k8s_cluster, *stable_objects(ns), http_route(ns), rollout(ns, "gateway-api", steps=(50, 100)))
    apply(k8s_cluster, rollout(elsewhere, "gateway-api"))  # a rollout the controller may not read
    port = free_port()
    controller = ControllerProcess(
        k8s_cluster.token_kubeconfig(ctl_ns, "attn-controlplane-controller"), ns, tmp_path, lease_namespace=ctl_ns,
        extra_args=("--dashboard-port", str(port), "--dashboard-namespace", ns, "--dashboard-namespace", elsewhere),
    )
    controllers.append(controller)
    wait_for(phase_is(kube, ns, "Promoted"), 120, "promoted with the controller's own token")
    base = f"http://127.0.0.1:{port}"
    assert re.search(rf"dashboard at http://127\.0\.0\.1:{port}/", wait_for(lambda: _log(controller), 30, "log"))

    status, body = get(f"{base}/api/rollouts")
    assert status == 200
    listing = json.loads(body)
    assert [(r["id"], r["phase"], r["ref"]) for r in listing["rollouts"]] == [(f"{ns}/minilm", "Promoted", "minilm:v3")]
    assert len(listing["problems"]) == 1 and listing["problems"][0].startswith(f"namespace {elsewhere}: forbidden")

    status, page = get(f"{base}/")
    assert status == 200
    assert f'href="/rollouts/{ns}/minilm"' in page and "Promoted" in page
    assert f"namespace {elsewhere}: forbidden" in page and f"/rollouts/{elsewhere}/" not in page

    status, page = get(f"{base}/rollouts/{ns}/minilm")
    assert status == 200 and "Promoted" in page
    assert "StepStarted" in page and "Audit log" in page  # status.history: the decisions and the audit log
    status, data = get(f"{base}/api/rollouts/{ns}/minilm")
    kinds = [e["kind"] for e in json.loads(data)["rollout"]["events"]]
    assert kinds.count("StepStarted") == 2 and kinds[-1] == "Promoted", kinds

    status, page = get(f"{base}/rollouts/{elsewhere}/minilm")
    assert status == 403 and "forbidden" in page and "minilm:v3" not in page
    assert get(f"{base}/rollouts/kube-system/coredns")[0] == 404  # not a namespace the dashboard shows


def _log(controller: ControllerProcess) -> str | None:
    text = controller.log.read_text(errors="replace")
    return text if "dashboard at" in text else None
