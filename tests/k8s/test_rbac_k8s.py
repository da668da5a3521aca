"""The RBAC in manifests/ on the real API server: the controller runs a whole rollout with a
token of its own ServiceAccount and nothing more; Secrets and other namespaces are denied;
the CI identity can create and patch a rollout and do nothing else. Also: the manifests and
the example apply with ``kubectl apply --dry-run=server``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from controlplane.app import kube_commands
from controlplane.app import kube_rollout as cr_
from controlplane.errors import PermanentError
from tests.k8s.conftest import MANIFESTS, ControllerProcess, apply, http_route, phase_is, stable_objects, wait_for

pytestmark = pytest.mark.k8s


def render(path: Path, controller_ns: str, managed_ns: str) -> list[dict[str, Any]]:
    text = path.read_text().replace("namespace: attn-controlplane", f"namespace: {controller_ns}")
    text = text.replace("namespace: models", f"namespace: {managed_ns}")
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture()
def namespaces(k8s_cluster: Any) -> Iterator[tuple[str, str, str]]:
    names = tuple(f"rbac-{uuid.uuid4().hex[:8]}" for _ in range(3))  # controller, managed, elsewhere
    for name in names:
        k8s_cluster.kubectl("create", "namespace", name)
    yield names  # type: ignore[misc]
    for name in names:
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_controller_and_ci_identities_are_least_privilege(
    k8s_cluster: Any, namespaces: tuple[str, str, str], kube: KubeClient, crd: str, controllers: list[Any],
    tmp_path: Path,
) -> None:
    ctl_ns, ns, elsewhere = namespaces
    for name in ("controller.yaml", "ci.yaml"):
        apply(k8s_cluster, *render(MANIFESTS / "rbac" / name, ctl_ns, ns))
    apply(k8s_cluster, *stable_objects(ns), http_route(ns), *stable_objects(elsewhere))
    kube.create_custom("", "v1", "secrets", ns, {"metadata": {"name": "db"}, "stringData": {"password": "x"}})
    controller_config = k8s_cluster.token_kubeconfig(ctl_ns, "attn-controlplane-controller")
    ci_config = k8s_cluster.token_kubeconfig(ns, "attn-controlplane-ci")

    # the CI identity creates the rollout (ctl promote --target kubernetes) ...
    ci = KubeClient(str(ci_config))
    kube_commands.promote(ci, ns, "minilm:v3", steps=(50, 100), step_duration_s=1.0, router="gateway-api",
                          skip_validation=True, alias="production")
    # ... and can do nothing else
    for denied in (
        lambda: ci.get_deployment(ns, "minilm"),
        lambda: ci.get_custom("", "v1", "secrets", ns, "db"),
        lambda: ci.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, "minilm", {"status": {"phase": "Promoted"}},
                                subresource="status"),
        lambda: ci.delete_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, "minilm"),
        lambda: ci.list_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, elsewhere),
    ):
        with pytest.raises(PermanentError, match="forbidden"):
            denied()

    # the controller, with its own token only, runs the whole rollout
    controllers.append(ControllerProcess(controller_config, ns, tmp_path, lease_namespace=ctl_ns))
    cr = wait_for(phase_is(kube, ns, "Promoted"), 120, "promoted with the controller's own token")
    assert cr["status"]["weight"] == 0 and served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
    own = KubeClient(str(controller_config))
    for denied in (
        lambda: own.get_custom("", "v1", "secrets", ns, "db"),
        lambda: own.list_custom("", "v1", "secrets", ns),
        lambda: own.get_deployment(elsewhere, "minilm"),
        lambda: own.patch_deployment(elsewhere, "minilm", {"spec": {"replicas": 0}}),
        lambda: own.delete_custom("apps", "v1", "deployments", ns, "minilm"),
        lambda: own.list_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, None),  # cluster-wide
    ):
        with pytest.raises(PermanentError, match="forbidden"):
            denied()
    assert kube.get_deployment(elsewhere, "minilm")["spec"]["replicas"] == 4


def test_manifests_and_example_apply_with_server_dry_run(k8s_cluster: Any, crd: str) -> None:
    for ns in ("attn-controlplane", "models"):
        k8s_cluster.kubectl("create", "namespace", ns, check=False)
    for folder in (MANIFESTS, MANIFESTS / "example"):
        result = k8s_cluster.kubectl("apply", "--dry-run=server", "-k", str(folder), "-o", "json")
        items = json.loads(result.stdout)
        items = items.get("items", [items])
        assert items, folder
    kinds = {i["kind"] for i in json.loads(k8s_cluster.kubectl(
        "apply", "--dry-run=server", "-k", str(MANIFESTS / "example"), "-o", "json").stdout).get("items", [])}
    assert {"Deployment", "Service", "HTTPRoute", "ModelRollout"} <= kinds
