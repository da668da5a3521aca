"""Each router against the real API server and the real upstream CRDs: every step's weight
is read back from the server in the upstream field, and nothing else in the object moves."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import make_workloads, served_uri
from controlplane.adapters.routers import make_router
from controlplane.errors import InputError
from controlplane.ports import RouteTarget
from tests.k8s.conftest import apply, http_route, inference_service, stable_objects, until_ready, virtual_service

pytestmark = pytest.mark.k8s
STEPS = (5, 25, 50, 100)


def target(namespace: str, **options: Any) -> RouteTarget:
    return RouteTarget(namespace, "minilm", "minilm", 2, 3, options={"deployment": "minilm", **options})


def strip(obj: dict[str, Any], *drop: tuple[str, ...]) -> dict[str, Any]:
    """The object without server-managed metadata and the given paths."""
    out = copy.deepcopy(obj)
    for key in ("resourceVersion", "generation", "managedFields"):
        out["metadata"].pop(key, None)
    out.pop("status", None)
    for path in drop:
        node = out
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    return out


def test_gateway_api_httproute_weights(k8s_cluster: Any, k8s_namespace: str, kube: KubeClient) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    t = target(ns, httpRoute="minilm")
    router, workloads = make_router("gateway-api", kube), make_workloads("gateway-api", kube)
    before = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, "minilm")
    until_ready(lambda: workloads.ensure_canary(t))
    for weight in STEPS:
        router.set_weight(t, weight)
        route = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, "minilm")
        refs = route["spec"]["rules"][0]["backendRefs"]
        assert [(r["name"], r["weight"]) for r in refs] == [("minilm", 100 - weight), ("minilm-canary", weight)]
        assert refs[1]["port"] == 80
        assert router.get_weight(t) == weight
        # only the weights (and the added backendRef) differ from what the user applied
        assert strip(route, ("spec", "rules")) == strip(before, ("spec", "rules"))
        assert route["spec"]["rules"][0]["matches"] == before["spec"]["rules"][0]["matches"]
    until_ready(lambda: workloads.promote_stable(t))
    router.reset(t)
    workloads.retire_canary(t)
    refs = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, "minilm")["spec"]["rules"][0][
        "backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("minilm", 100), ("minilm-canary", 0)]
    assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
    canary_svc = kube.get_service(ns, "minilm-canary")
    assert canary_svc["spec"]["selector"] == {"app": "minilm", "rollouts.attn-controlplane.dev/role": "canary"}


def test_istio_virtualservice_weights(k8s_cluster: Any, k8s_namespace: str, kube: KubeClient) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), virtual_service(ns))
    t = target(ns, virtualService="minilm")
    router = make_router("istio", kube)
    before = kube.get_custom("networking.istio.io", "v1", "virtualservices", ns, "minilm")
    for weight in STEPS:
        router.set_weight(t, weight)
        vs = kube.get_custom("networking.istio.io", "v1", "virtualservices", ns, "minilm")
        route = vs["spec"]["http"][0]["route"]
        assert [(r["destination"]["host"], r["weight"]) for r in route] == [
            (f"minilm.{ns}.svc.cluster.local", 100 - weight), ("minilm-canary", weight)]
        assert router.get_weight(t) == weight
        assert vs["spec"]["http"][1] == before["spec"]["http"][1]  # the other route is the user's
        assert vs["spec"]["http"][0]["match"] == before["spec"]["http"][0]["match"]
        assert vs["spec"]["http"][0]["timeout"] == "5s"
    router.reset(t)
    assert router.get_weight(t) == 0


def test_kserve_canary_traffic_percent(k8s_cluster: Any, k8s_namespace: str, kube: KubeClient) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, inference_service(ns))
    t = RouteTarget(ns, "minilm", "minilm", 2, 3, options={"inferenceService": "minilm"})
    router, workloads = make_router("kserve", kube), make_workloads("kserve", kube)

    def predictor() -> dict[str, Any]:
        return kube.get_custom("serving.kserve.io", "v1beta1", "inferenceservices", ns, "minilm")["spec"]["predictor"]

    assert router.get_weight(t) == 0
    workloads.ensure_canary(t)
    assert predictor()["canaryTrafficPercent"] == 0 and predictor()["model"]["storageUri"] == "models:/minilm/3"
    for weight in STEPS:
        router.set_weight(t, weight)
        assert predictor()["canaryTrafficPercent"] == weight
        assert router.get_weight(t) == weight
        assert predictor()["minReplicas"] == 1 and predictor()["model"]["modelFormat"] == {"name": "onnx"}
    workloads.promote_stable(t)
    assert "canaryTrafficPercent" not in predictor()  # removed: the latest revision takes all
    assert router.get_weight(t) == 100
    # a rollback of the next version pins the previous revision, then restores stable
    t4 = RouteTarget(ns, "minilm", "minilm", 3, 4, options={"inferenceService": "minilm"})
    workloads.ensure_canary(t4)
    router.set_weight(t4, 25)
    router.reset(t4)
    assert predictor()["canaryTrafficPercent"] == 0
    workloads.retire_canary(t4)
    assert predictor()["model"]["storageUri"] == "models:/minilm/3" and "canaryTrafficPercent" not in predictor()


def test_replica_ratio_replicas(k8s_cluster: Any, k8s_namespace: str, kube: KubeClient) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns, replicas=4))
    t = target(ns)
    router, workloads = make_router("replica-ratio", kube), make_workloads("replica-ratio", kube)
    until_ready(lambda: workloads.ensure_canary(t))
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
    expected = {5: (3, 1), 25: (3, 1), 50: (2, 2), 100: (0, 4)}
    for weight in STEPS:
        router.set_weight(t, weight)
        replicas = (kube.get_deployment(ns, "minilm")["spec"]["replicas"],
                    kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"])
        assert replicas == expected[weight]
        assert router.get_weight(t) == weight
    until_ready(lambda: workloads.promote_stable(t))
    router.reset(t)
    workloads.retire_canary(t)
    assert kube.get_deployment(ns, "minilm")["spec"]["replicas"] == 4
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
    assert router.get_weight(t) == 0


def test_unknown_router_is_an_error(kube: KubeClient) -> None:
    with pytest.raises(InputError, match="unknown traffic router"):
        make_router("nginx", kube)
