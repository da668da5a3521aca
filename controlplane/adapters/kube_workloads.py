"""Workloads on Kubernetes (``ports.Workloads``): the canary Deployment and Service, promotion
and retirement; and the same for a KServe InferenceService.

The user owns the stable Deployment (and Service). The model version it serves is the
``models:/NAME/N`` URI in the pod template annotation ``rollouts.attn-controlplane.dev/model-uri``
and in the containers' ``MODEL_URI`` environment variable. The canary is a copy of the stable
Deployment named ``<stable>-canary`` whose pods carry ``rollouts.attn-controlplane.dev/role: canary``
(also added to its selector, so the two Deployments never share pods), owned by the rollout
so that deleting the rollout deletes it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import (
    MODEL_URI_ANNOTATION,
    MODEL_URI_ENV,
    ROLE_LABEL,
    STABLE_REPLICAS_ANNOTATION,
    annotations,
    canary_name,
    model_uri,
    required_option,
)
from controlplane.adapters.routers.kserve import GROUP as KSERVE_GROUP
from controlplane.adapters.routers.kserve import PLURAL as KSERVE_PLURAL
from controlplane.adapters.routers.kserve import VERSION as KSERVE_VERSION
from controlplane.adapters.routers.kserve import storage_uri
from controlplane.errors import NotFoundError, TemporaryError
from controlplane.ports import RouteTarget, Workloads

SIZED_ANNOTATION = "rollouts.attn-controlplane.dev/sized-replicas"
_URI_VERSION = re.compile(r"/(?:v)?(\d+)$")


def version_of_uri(uri: str | None) -> int | None:
    match = _URI_VERSION.search(uri or "")
    return int(match.group(1)) if match else None


def served_uri(deployment: Mapping[str, Any]) -> str | None:
    """The model URI a Deployment serves: the pod template annotation, else ``MODEL_URI``."""
    template = (deployment.get("spec") or {}).get("template") or {}
    uri = annotations(template).get(MODEL_URI_ANNOTATION)
    if uri:
        return uri
    for container in (template.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == MODEL_URI_ENV and env.get("value"):
                return str(env["value"])
    return None


def with_model_uri(template: Mapping[str, Any], uri: str) -> dict[str, Any]:
    """A copy of a pod template serving ``uri``: annotation, and ``MODEL_URI`` in the containers
    that have it (the first container when none has)."""
    out = copy.deepcopy(dict(template))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), MODEL_URI_ANNOTATION: uri}
    containers = (out.setdefault("spec", {})).get("containers") or []
    holders = [c for c in containers if any(e.get("name") == MODEL_URI_ENV for e in c.get("env") or [])]
    for container in holders or containers[:1]:
        env = [e for e in container.get("env") or [] if e.get("name") != MODEL_URI_ENV]
        container["env"] = [*env, {"name": MODEL_URI_ENV, "value": uri}]
    return out


def rolled_out(deployment: Mapping[str, Any]) -> bool:
    """The Deployment's current spec is fully rolled out: every replica updated and available."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = int(spec.get("replicas", 1))
    generation = int((deployment.get("metadata") or {}).get("generation", 0))
    return (
        int(status.get("observedGeneration", 0)) >= generation
        and int(status.get("updatedReplicas", 0)) >= want
        and int(status.get("availableReplicas", 0)) >= want
        and int(status.get("replicas", 0)) == want
    )


def require_rolled_out(deployment: Mapping[str, Any], what: str) -> None:
    if not rolled_out(deployment):
        name = (deployment.get("metadata") or {}).get("name")
        status = deployment.get("status") or {}
        raise TemporaryError(
            f"waiting for {what} Deployment {name} to be available "
            f"({status.get('availableReplicas', 0)}/{(deployment.get('spec') or {}).get('replicas', 1)})",
            delay=1.0,
        )


def canary_deployment(
    stable: Mapping[str, Any], uri: str, replicas: int, owner: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The canary Deployment: the stable one's spec, the canary's version, its own selector."""
    meta = stable.get("metadata") or {}
    spec = copy.deepcopy(dict(stable.get("spec") or {}))
    for key in ("paused",):
        spec.pop(key, None)
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), ROLE_LABEL: "canary"}
    template = with_model_uri(spec.get("template") or {}, uri)
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), ROLE_LABEL: "canary"}
    spec["template"] = template
    spec["replicas"] = replicas
    metadata: dict[str, Any] = {
        "name": canary_name(str(meta.get("name"))),
        "namespace": meta.get("namespace"),
        "labels": {**(meta.get("labels") or {}), ROLE_LABEL: "canary"},
        "annotations": {MODEL_URI_ANNOTATION: uri},
    }
    if owner:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def canary_service(stable: Mapping[str, Any], owner: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ClusterIP Service like the stable one, selecting only the canary's pods."""
    meta = stable.get("metadata") or {}
    spec = stable.get("spec") or {}
    ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports") or []]
    selector = {**(spec.get("selector") or {}), ROLE_LABEL: "canary"}
    metadata: dict[str, Any] = {
        "name": canary_name(str(meta.get("name"))),
        "namespace": meta.get("namespace"),
        "labels": {**(meta.get("labels") or {}), ROLE_LABEL: "canary"},
    }
    if owner:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"selector": selector, "ports": ports}}


class DeploymentWorkloads:
    """``scale_canary``: give the canary as many replicas as stable (routers that split by
    request weight); off for the replica-ratio router, which owns the replica counts."""

    def __init__(self, client: KubeClient, *, scale_canary: bool = True, canary_service: bool = True) -> None:
        self.client = client
        self.scale_canary = scale_canary
        self.with_service = canary_service

    def ensure_canary(self, target: RouteTarget) -> None:
        """The canary Service, then the canary Deployment (so that the Deployment's existence
        implies the Service's): one GET when both are already there for this version."""
        ns, stable_name = target.namespace, required_option(target, "deployment")
        uri = model_uri(target, target.canary_version)
        owner = target.options.get("owner")
        try:
            canary: dict[str, Any] | None = self.client.get_deployment(ns, canary_name(stable_name))
        except NotFoundError:
            canary = None
        ready = canary is not None and served_uri(canary) == uri
        if ready and self.scale_canary:  # sized by us (not retired since): the annotation says to what
            sized = annotations(canary or {}).get(SIZED_ANNOTATION)
            ready = sized is not None and str((canary or {}).get("spec", {}).get("replicas")) == sized
        if not ready:
            stable = self.client.get_deployment(ns, stable_name)
            total = _total(stable)
            if self.with_service:
                self._ensure_service(target, owner)
            if canary is None:
                replicas = total if self.scale_canary else 0
                body = canary_deployment(stable, uri, replicas, owner)
                body["metadata"]["annotations"][SIZED_ANNOTATION] = str(replicas)
                canary = self.client.create_deployment(ns, body)
            else:
                patch: dict[str, Any] = {}
                if served_uri(canary) != uri:
                    desired = canary_deployment(stable, uri, total, owner)
                    patch = {"metadata": {"annotations": desired["metadata"]["annotations"]},
                             "spec": {"template": desired["spec"]["template"]}}
                if self.scale_canary and (canary.get("spec") or {}).get("replicas") != total:
                    patch.setdefault("spec", {})["replicas"] = total
                if self.scale_canary and annotations(canary).get(SIZED_ANNOTATION) != str(total):
                    patch.setdefault("metadata", {}).setdefault("annotations", {})[SIZED_ANNOTATION] = str(total)
                if patch:
                    canary = self.client.patch_deployment(ns, canary_name(stable_name), patch)
        if self.scale_canary and canary is not None:  # shift traffic only to pods that serve
            require_rolled_out(canary, "canary")

    def _ensure_service(self, target: RouteTarget, owner: Mapping[str, Any] | None) -> None:
        service = str(target.options.get("service") or required_option(target, "deployment"))
        try:
            self.client.get_service(target.namespace, canary_name(service))
        except NotFoundError:
            stable = self.client.get_service(target.namespace, service)
            self.client.create_service(target.namespace, canary_service(stable, owner))

    def promote_stable(self, target: RouteTarget) -> None:
        """Stable's pod template on the canary's version, at full size (traffic returns to stable
        only once ``stable_ready``)."""
        ns, stable_name = target.namespace, required_option(target, "deployment")
        stable = self.client.get_deployment(ns, stable_name)
        uri = model_uri(target, target.canary_version)
        patch: dict[str, Any] = {}
        if served_uri(stable) != uri:
            template = with_model_uri((stable.get("spec") or {}).get("template") or {}, uri)
            patch = {"spec": {"template": template}}
        total = _total(stable)
        if (stable.get("spec") or {}).get("replicas") != total:
            patch.setdefault("spec", {})["replicas"] = total
        if patch:  # no resourceVersion pin: the Deployment's status changes it all the time
            self.client.patch_deployment(ns, stable_name, patch)

    def stable_ready(self, target: RouteTarget) -> bool:
        stable = self.client.get_deployment(target.namespace, required_option(target, "deployment"))
        return served_uri(stable) == model_uri(target, target.canary_version) and rolled_out(stable)

    def retire_canary(self, target: RouteTarget) -> None:
        ns, name = target.namespace, canary_name(required_option(target, "deployment"))
        try:
            canary = self.client.get_deployment(ns, name)
        except NotFoundError:
            return
        if (canary.get("spec") or {}).get("replicas") != 0:
            self.client.patch_deployment(ns, name, {"spec": {"replicas": 0}})


def _total(stable: Mapping[str, Any]) -> int:
    saved = annotations(stable).get(STABLE_REPLICAS_ANNOTATION)
    return int(saved) if saved else int((stable.get("spec") or {}).get("replicas", 1))


class KServeWorkloads:
    """The InferenceService is both workloads: its latest revision is the canary."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _isvc(self, target: RouteTarget) -> tuple[str, dict[str, Any]]:
        name = required_option(target, "inferenceService")
        return name, self.client.get_custom(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL, target.namespace, name)

    def _patch(self, target: RouteTarget, name: str, uri: str, percent: int | None) -> None:
        patch = {
            "metadata": {"annotations": {MODEL_URI_ANNOTATION: uri}},
            "spec": {"predictor": {"model": {"storageUri": uri}, "canaryTrafficPercent": percent}},
        }
        self.client.patch_custom(KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL, target.namespace, name, patch)

    def ensure_canary(self, target: RouteTarget) -> None:
        """A new revision with the canary's version that takes no traffic yet (0 %)."""
        name, isvc = self._isvc(target)
        uri = model_uri(target, target.canary_version)
        if storage_uri(isvc) != uri:
            self._patch(target, name, uri, 0)

    def promote_stable(self, target: RouteTarget) -> None:
        """The latest revision (the canary's version) takes all traffic: no canaryTrafficPercent."""
        name, isvc = self._isvc(target)
        uri = model_uri(target, target.canary_version)
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        if storage_uri(isvc) != uri or "canaryTrafficPercent" in predictor:
            self._patch(target, name, uri, None)

    def stable_ready(self, target: RouteTarget) -> bool:
        """The latest revision takes all traffic once promoted (KServe rolls it out itself)."""
        _, isvc = self._isvc(target)
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        return storage_uri(isvc) == model_uri(target, target.canary_version) and "canaryTrafficPercent" not in predictor

    def retire_canary(self, target: RouteTarget) -> None:
        if target.stable_version is None:
            return
        name, isvc = self._isvc(target)
        uri = model_uri(target, target.stable_version)
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        if storage_uri(isvc) != uri or "canaryTrafficPercent" in predictor:
            self._patch(target, name, uri, None)


def make_workloads(router: str, client: KubeClient) -> Workloads:
    if router == "kserve":
        return KServeWorkloads(client)
    if router == "replica-ratio":
        return DeploymentWorkloads(client, scale_canary=False, canary_service=False)
    return DeploymentWorkloads(client)
