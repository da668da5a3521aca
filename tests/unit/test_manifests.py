"""Pure tests of manifests/ and of what the controller builds (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controlplane.adapters.kube_workloads import (
    canary_deployment,
    canary_service,
    served_uri,
    version_of_uri,
    with_model_uri,
)
from controlplane.adapters.routers.common import MODEL_URI_ANNOTATION, ROLE_LABEL
from controlplane.app import kube_rollout as cr_
from controlplane.engine import RolloutStatus
from controlplane.engine.types import Phase

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(MANIFESTS.rglob("*.yaml")) if p.name != "kustomization.yaml" for d in load(p)]


def test_kustomizations_list_existing_files() -> None:
    for kust in MANIFESTS.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kust.read_text())["resources"]:
            assert (kust.parent / resource).is_file(), (kust, resource)


def test_crd_is_structural_with_status_and_columns() -> None:
    (crd,) = load(MANIFESTS / "crd" / "modelrollouts.yaml")
    assert crd["spec"]["group"] == cr_.GROUP and crd["spec"]["names"]["plural"] == cr_.PLURAL
    (version,) = crd["spec"]["versions"]
    assert version["name"] == cr_.VERSION and version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Model", "Version", "Phase", "Weight"} <= columns
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["router"]["properties"]["type"]["enum"] == ["gateway-api", "istio", "kserve",
                                                                            "replica-ratio"]
    assert spec["properties"]["steps"]["items"] == {"type": "integer", "minimum": 1, "maximum": 100}


def test_rbac_is_least_privilege() -> None:
    rules = [(d["metadata"]["name"], r) for d in all_docs() if d["kind"] in ("Role", "ClusterRole")
             for r in d["rules"]]
    for name, rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], name
        assert "secrets" not in rule["resources"], name
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), name
    ci = [r for n, r in rules if n == "attn-controlplane-ci"]
    assert ci == [{"apiGroups": [cr_.GROUP], "resources": ["modelrollouts"], "verbs": ["get", "create", "patch"]}]
    bindings = [d for d in all_docs() if d["kind"] == "ClusterRoleBinding"]
    assert bindings == []  # every grant is namespaced


def test_controller_deployment_runs_two_replicas_with_probes() -> None:
    (dep,) = load(MANIFESTS / "controller" / "deployment.yaml")
    assert dep["spec"]["replicas"] == 2
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["controller", "run"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def example_rollout() -> dict[str, Any]:
    (cr,) = load(MANIFESTS / "example" / "rollout.yaml")
    cr["metadata"]["uid"] = "u-1"
    return cr


def test_example_rollout_maps_to_the_engine() -> None:
    cr = example_rollout()
    assert cr_.resource_problems(cr) == []
    spec = cr_.engine_spec(cr, 2)
    assert (spec.model, spec.version, spec.stable_version, spec.router) == ("minilm", 3, 2, "gateway-api")
    assert spec.steps == (5, 25, 50, 100) and spec.target == "kubernetes"
    target = cr_.route_target(cr, spec)
    assert target.options["httpRoute"] == "minilm" and target.options["deployment"] == "minilm"
    assert target.options["owner"]["uid"] == "u-1" and target.options["owner"]["kind"] == "ModelRollout"


def test_bad_rollouts_are_named_clearly() -> None:
    cr = example_rollout()
    cr["metadata"]["name"] = "Bad_Name"
    cr["spec"]["router"] = {"type": "linkerd"}
    cr["spec"]["steps"] = [50, 25, 100]
    problems = "; ".join(cr_.resource_problems(cr))
    assert "DNS-1123" in problems and "unknown traffic router 'linkerd'" in problems
    assert "strictly increasing" in problems
    cr = example_rollout()
    cr["spec"]["steps"] = [5, 150]
    assert "between 1 and 100" in "; ".join(cr_.resource_problems(cr))


def test_status_body_and_round_trip() -> None:
    cr = example_rollout()
    cr["metadata"]["generation"] = 4
    status = RolloutStatus(phase=Phase.PROGRESSING, step_index=1, weight=25, message="step 2/4", started_at=1.0)
    body = cr_.status_body(cr, status, 2)
    assert body["observedGeneration"] == 4 and body["weight"] == 25 and body["stepIndex"] == 1
    assert {c["type"] for c in body["conditions"]} == {"Progressing", "Ready"}
    assert cr_.engine_status({"status": body}) == status


def stable_deployment() -> dict[str, Any]:
    docs = load(MANIFESTS / "example" / "workload.yaml")
    return next(d for d in docs if d["kind"] == "Deployment")


def test_canary_is_a_copy_with_its_own_selector_and_version() -> None:
    stable = stable_deployment()
    assert served_uri(stable) == "models:/minilm/2" and version_of_uri(served_uri(stable)) == 2
    owner = {"apiVersion": cr_.API_VERSION, "kind": cr_.KIND, "name": "minilm", "uid": "u-1", "controller": True}
    canary = canary_deployment(stable, "models:/minilm/3", 4, owner)
    assert canary["metadata"]["name"] == "minilm-canary" and canary["metadata"]["ownerReferences"] == [owner]
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "minilm", ROLE_LABEL: "canary"}
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels[ROLE_LABEL] == "canary" and labels["app"] == "minilm"
    assert served_uri(canary) == "models:/minilm/3"
    env = canary["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "MODEL_URI"] == [{"name": "MODEL_URI", "value": "models:/minilm/3"}]
    stable_env = stable["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] != "MODEL_URI"] == [e for e in stable_env if e["name"] != "MODEL_URI"]
    assert served_uri(stable) == "models:/minilm/2"  # the stable object is not modified


def test_canary_service_selects_only_canary_pods() -> None:
    docs = load(MANIFESTS / "example" / "workload.yaml")
    svc = next(d for d in docs if d["kind"] == "Service")
    canary = canary_service(svc, None)
    assert canary["metadata"]["name"] == "minilm-canary"
    assert canary["spec"]["selector"] == {"app": "minilm", ROLE_LABEL: "canary"}
    assert canary["spec"]["ports"] == svc["spec"]["ports"]


def test_with_model_uri_sets_first_container_when_none_has_the_variable() -> None:
    template = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    out = with_model_uri(template, "models:/m/7")
    assert out["metadata"]["annotations"][MODEL_URI_ANNOTATION] == "models:/m/7"
    assert out["spec"]["containers"][0]["env"] == [{"name": "MODEL_URI", "value": "models:/m/7"}]
    assert "env" not in out["spec"]["containers"][1]


def test_rollout_manifest_for_ctl_promote() -> None:
    body = cr_.rollout_manifest("minilm", "models", "minilm", 4, deployment="minilm",
                                router={"type": "istio", "virtualService": "minilm"}, steps=(10, 100))
    assert body["kind"] == "ModelRollout" and body["spec"]["version"] == 4 and body["spec"]["steps"] == [10, 100]
    assert cr_.resource_problems({**body, "metadata": {"name": "minilm"}}) == []
