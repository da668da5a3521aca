"""The real control plane (tests/cluster/) behaves like a cluster: kwok nodes, scheduling,
upstream CRD schemas, optimistic concurrency and RBAC are enforced by the real API server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import NODES, Cluster

pytestmark = pytest.mark.k8s
REPO = Path(__file__).resolve().parents[2]


def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _route(name: str, weights: tuple[int, int]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [
                {"name": "model-stable", "port": 8080, "weight": weights[0]},
                {"name": "model-canary", "port": 8080, "weight": weights[1]},
            ]}],
        },
    }


def test_kwok_nodes_are_ready(k8s_api_client: Any) -> None:
    from kubernetes import client

    nodes = client.CoreV1Api(k8s_api_client).list_node().items
    assert sorted(n.metadata.name for n in nodes) == sorted(name for name, _ in NODES)
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name
    gpu = next(n for n in nodes if n.metadata.name == "kwok-gpu-0")
    assert gpu.status.allocatable["nvidia.com/gpu"] == "4"


def test_deployment_gets_ready_replicas(k8s_api_client: Any, k8s_namespace: str) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(k8s_api_client)
    labels = {"app": "model"}
    container = client.V1Container(name="server", image="registry.invalid/model-server:1",
                                   resources=client.V1ResourceRequirements(requests={"cpu": "100m"}))
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="model"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[container])),
        ),
    )
    apps.create_namespaced_deployment(k8s_namespace, body)
    _wait(lambda: (apps.read_namespaced_deployment_status("model", k8s_namespace).status.ready_replicas or 0) == 3,
          what="3 ready replicas")
    pods = client.CoreV1Api(k8s_api_client).list_namespaced_pod(k8s_namespace).items
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name in {"kwok-node-0", "kwok-node-1"}  # untolerated GPU taint keeps it off the GPU node


def test_upstream_crds_are_established(k8s_cluster: Cluster) -> None:
    names = set(k8s_cluster.kubectl("get", "crd", "-o", "name").stdout.split())
    for crd in ("httproutes.gateway.networking.k8s.io", "virtualservices.networking.istio.io",
                "destinationrules.networking.istio.io", "inferenceservices.serving.kserve.io",
                "workflows.argoproj.io", "workflowtemplates.argoproj.io"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{crd}" in names


def test_custom_resources_can_be_created(k8s_api_client: Any, k8s_namespace: str) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(k8s_api_client)
    objects = [
        ("gateway.networking.k8s.io", "v1", "httproutes", _route("model", (90, 10))),
        ("networking.istio.io", "v1", "virtualservices", {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "model"},
            "spec": {"hosts": ["model"], "http": [{"route": [
                {"destination": {"host": "model", "subset": "stable"}, "weight": 90},
                {"destination": {"host": "model", "subset": "canary"}, "weight": 10}]}]}}),
        ("networking.istio.io", "v1", "destinationrules", {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "model"},
            "spec": {"host": "model", "subsets": [{"name": "stable", "labels": {"role": "stable"}},
                                                  {"name": "canary", "labels": {"role": "canary"}}]}}),
        ("serving.kserve.io", "v1beta1", "inferenceservices", {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "model"},
            "spec": {"predictor": {"canaryTrafficPercent": 10,
                                   "model": {"modelFormat": {"name": "onnx"}, "storageUri": "s3://models/m/2"}}}}),
        ("argoproj.io", "v1alpha1", "workflowtemplates", {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "hello"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "busybox", "command": ["true"]}}]}}),
    ]
    for group, version, plural, body in objects:
        api.create_namespaced_custom_object(group, version, k8s_namespace, plural, body)
        got = api.get_namespaced_custom_object(group, version, k8s_namespace, plural, body["metadata"]["name"])
        assert got["metadata"]["uid"] and got["kind"] == body["kind"]
    get = api.get_namespaced_custom_object
    route = get("gateway.networking.k8s.io", "v1", k8s_namespace, "httproutes", "model")
    assert [b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    vs = get("networking.istio.io", "v1", k8s_namespace, "virtualservices", "model")
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [90, 10]
    isvc = get("serving.kserve.io", "v1beta1", k8s_namespace, "inferenceservices", "model")
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10


@pytest.mark.parametrize("weight", [-1, 1_000_001])
def test_httproute_schema_rejects_invalid_weight(k8s_api_client: Any, k8s_namespace: str, weight: int) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(k8s_api_client)
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", k8s_namespace, "httproutes",
                                            _route("bad", (weight, 10)))
    assert err.value.status == 422
    assert "weight" in err.value.body


def test_valid_weighted_httproute_round_trips(k8s_api_client: Any, k8s_namespace: str) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(k8s_api_client)
    args = ("gateway.networking.k8s.io", "v1", k8s_namespace, "httproutes")
    api.create_namespaced_custom_object(*args, _route("model", (1_000_000, 0)))
    got = api.get_namespaced_custom_object(*args, "model")
    assert [b["weight"] for b in got["spec"]["rules"][0]["backendRefs"]] == [1_000_000, 0]


def test_stale_resource_version_gets_409(k8s_api_client: Any, k8s_namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CustomObjectsApi(k8s_api_client)
    args = ("gateway.networking.k8s.io", "v1", k8s_namespace, "httproutes")
    created = api.create_namespaced_custom_object(*args, _route("model", (90, 10)))
    first = dict(created)
    first["spec"]["rules"][0]["backendRefs"][0]["weight"] = 50
    api.replace_namespaced_custom_object(*args, "model", first)  # bumps resourceVersion
    stale = _route("model", (0, 100))
    stale["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as err:
        api.replace_namespaced_custom_object(*args, "model", stale)
    assert err.value.status == 409


def test_service_account_without_permissions_gets_403(k8s_cluster: Cluster, k8s_namespace: str) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    kubeconfig = k8s_cluster.token_kubeconfig(k8s_namespace, "nobody")
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api_client).list_namespaced_pod(k8s_namespace)
        assert err.value.status == 403
        assert "system:serviceaccount:" + k8s_namespace + ":nobody" in err.value.body


def _manifest_objects(folder: Path) -> list[dict[str, Any]]:
    """Every object of every YAML file under folder (kustomization files are not objects)."""
    import yaml

    objects = []
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".yaml", ".yml") and path.name not in ("kustomization.yaml", "kustomization.yml"):
            objects += [o for o in yaml.safe_load_all(path.read_text()) if isinstance(o, dict) and o.get("kind")]
    return objects


@pytest.mark.parametrize("folder", ["manifests", "workflows"])
def test_repository_manifests_pass_server_side_dry_run(k8s_cluster: Cluster, folder: str) -> None:
    """``kubectl apply --dry-run=server`` of every manifest in the repository. A dry run cannot
    create what later objects need, so the Namespaces and CRDs among them are applied for real
    first; every kustomization must also build (``kubectl kustomize``) and pass the dry run."""
    import json

    objects = _manifest_objects(REPO / folder)
    if not objects:
        pytest.skip(f"no manifests under {folder}/ yet")
    prerequisites = [o for o in objects if o["kind"] in ("Namespace", "CustomResourceDefinition")]
    if prerequisites:
        k8s_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": prerequisites}))
    crds = [f"crd/{o['metadata']['name']}" for o in prerequisites if o["kind"] == "CustomResourceDefinition"]
    if crds:
        k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
    everything = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    result = k8s_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=everything, check=False)
    assert result.returncode == 0, result.stderr
    for kustomization in sorted((REPO / folder).rglob("kustomization.yaml")):
        result = k8s_cluster.kubectl("apply", "--dry-run=server", "-k", str(kustomization.parent), check=False)
        assert result.returncode == 0, f"{kustomization}: {result.stderr}"
