"""Pure tests of the routers' patch building and weight arithmetic (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.adapters.routers import ROUTERS, check_router, gateway_api, istio, kserve, replica_ratio
from controlplane.adapters.routers.common import (
    STABLE_REPLICAS_ANNOTATION,
    WEIGHT_ANNOTATION,
    canary_percent,
    replica_split,
)
from controlplane.errors import InputError
from controlplane.ports import RouteTarget


def apply_json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Enough of RFC 6902 (test, add) to check what the patches do."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op["op"] == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            assert current == op["value"], op
        elif op["op"] == "add":
            if isinstance(parent, list):
                parent.append(op["value"]) if last == "-" else parent.insert(int(last), op["value"])
            else:
                parent[last] = op["value"]
        else:
            raise AssertionError(op)
    return doc


def route(*refs: dict[str, Any], other_rule: bool = True) -> dict[str, Any]:
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}], "backendRefs": list(refs)}]
    if other_rule:
        rules.append({"backendRefs": [{"name": "unrelated", "port": 80}]})
    return {"metadata": {"name": "minilm"}, "spec": {"parentRefs": [{"name": "gw"}], "rules": rules}}


def test_gateway_adds_canary_backend_and_sets_only_weights() -> None:
    r = route({"name": "minilm", "port": 80, "weight": 100})
    patched = apply_json_patch(r, gateway_api.weight_patch(r, "minilm", "minilm-canary", 25))
    refs = patched["spec"]["rules"][0]["backendRefs"]
    assert refs == [{"name": "minilm", "port": 80, "weight": 75}, {"name": "minilm-canary", "port": 80, "weight": 25}]
    assert patched["spec"]["rules"][1] == r["spec"]["rules"][1]  # untouched
    assert patched["spec"]["parentRefs"] == r["spec"]["parentRefs"]
    assert gateway_api.read_weight(patched, "minilm", "minilm-canary") == 25
    assert gateway_api.weight_patch(patched, "minilm", "minilm-canary", 25) == []  # nothing to do
    back = apply_json_patch(patched, gateway_api.weight_patch(patched, "minilm", "minilm-canary", 0))
    assert gateway_api.read_weight(back, "minilm", "minilm-canary") == 0
    assert back["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100


def test_gateway_default_weight_and_errors() -> None:
    r = route({"name": "minilm", "port": 80}, {"name": "minilm-canary", "port": 80})
    assert gateway_api.read_weight(r, "minilm", "minilm-canary") == 50  # both default to 1
    with pytest.raises(InputError, match="no rule"):
        gateway_api.weight_patch(route({"name": "other"}), "minilm", "minilm-canary", 5)
    with pytest.raises(InputError):
        gateway_api.weight_patch(r, "minilm", "minilm-canary", 101)


def test_gateway_rules_that_disagree_read_as_drift() -> None:
    r = route({"name": "minilm", "weight": 90}, {"name": "minilm-canary", "weight": 10}, other_rule=False)
    r["spec"]["rules"].append({"backendRefs": [{"name": "minilm", "weight": 100}]})
    assert gateway_api.read_weight(r, "minilm", "minilm-canary") == -1


def target(**options: Any) -> RouteTarget:
    return RouteTarget("ns", "minilm", "minilm", 2, 3, options={"deployment": "minilm", **options})


def test_istio_host_mode_and_subset_mode() -> None:
    vs = {"metadata": {"name": "vs"}, "spec": {"hosts": ["minilm"], "http": [
        {"route": [{"destination": {"host": "minilm.ns.svc.cluster.local", "port": {"number": 80}}}]}]}}
    stable, canary = istio.destinations(target(virtualService="vs"))
    assert istio.read_weight(vs, stable, canary, "ns") == 0
    patched = apply_json_patch(vs, istio.weight_patch(vs, stable, canary, 50, "ns"))
    route_ = patched["spec"]["http"][0]["route"]
    assert [r["weight"] for r in route_] == [50, 50]
    assert route_[1]["destination"] == {"host": "minilm-canary", "port": {"number": 80}}
    assert istio.read_weight(patched, stable, canary, "ns") == 50
    stable, canary = istio.destinations(target(virtualService="vs", stableSubset="v2", canarySubset="v3"))
    vs2 = {"spec": {"http": [{"route": [{"destination": {"host": "minilm", "subset": "v2"}, "weight": 100},
                                        {"destination": {"host": "minilm", "subset": "v3"}, "weight": 0}]}]}}
    patched = apply_json_patch(vs2, istio.weight_patch(vs2, stable, canary, 5, "ns"))
    assert [r["weight"] for r in patched["spec"]["http"][0]["route"]] == [95, 5]


def test_kserve_reads_and_patches_one_field() -> None:
    isvc = {"spec": {"predictor": {"model": {"storageUri": "models:/minilm/2"}}}}
    assert kserve.read_weight(isvc, "models:/minilm/3") == 0
    isvc["spec"]["predictor"]["model"]["storageUri"] = "models:/minilm/3"
    assert kserve.read_weight(isvc, "models:/minilm/3") == 100  # no canaryTrafficPercent: latest takes all
    assert kserve.weight_patch(isvc, 25) == {"spec": {"predictor": {"canaryTrafficPercent": 25}}}
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = 25
    assert kserve.weight_patch(isvc, 25) is None
    assert kserve.read_weight(isvc, "models:/minilm/3") == 25


@pytest.mark.parametrize(
    ("total", "weight", "split"),
    [(4, 0, (4, 0)), (4, 5, (3, 1)), (4, 25, (3, 1)), (4, 50, (2, 2)), (4, 100, (0, 4)), (1, 50, (1, 1)),
     (10, 5, (9, 1))],
)
def test_replica_split(total: int, weight: int, split: tuple[int, int]) -> None:
    assert replica_split(total, weight) == split


def deployment(replicas: int, **annotations: str) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}}


def test_replica_ratio_scales_up_before_down_and_reads_planned_weight() -> None:
    stable, canary = deployment(4), deployment(0)
    plan = replica_ratio.scale_plan(stable, canary, 5)
    assert [w for w, _ in plan] == ["canary", "stable"]
    assert plan[0][1]["spec"] == {"replicas": 1}
    assert plan[1][1] == {"metadata": {"annotations": {STABLE_REPLICAS_ANNOTATION: "4"}}, "spec": {"replicas": 3}}
    stable = deployment(3, **{STABLE_REPLICAS_ANNOTATION: "4"})
    canary = deployment(1, **{WEIGHT_ANNOTATION: "5"})
    assert replica_ratio.read_weight(stable, canary) == 5  # 1 of 4 replicas, planned 5 %
    assert replica_ratio.read_weight(deployment(4), deployment(0)) == 0
    plan = replica_ratio.scale_plan(stable, canary, 0)
    assert [w for w, _ in plan] == ["stable", "canary"]  # grow stable first on the way back
    assert plan[0][1]["spec"] == {"replicas": 4}
    assert replica_ratio.read_weight(deployment(3), None) == 0


def test_router_names_and_percent() -> None:
    assert ROUTERS == ("gateway-api", "istio", "kserve", "replica-ratio")
    with pytest.raises(InputError, match="unknown traffic router 'linkerd'"):
        check_router("linkerd")
    assert canary_percent(0, 0) == 0
    assert canary_percent(3, 1) == 25
