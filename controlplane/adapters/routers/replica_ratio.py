"""Replica ratio, for clusters without a mesh or gateway: one Service selects the pods of
both Deployments, so the canary's share is its share of the replicas.

The total is the stable Deployment's replica count when the rollout started, kept in the
annotation ``rollouts.attn-controlplane.dev/stable-replicas`` on the stable Deployment; the
weight last applied is kept on the canary Deployment (``.../weight``) so that a rounded
split (1 of 4 replicas for 5 %) reads back as the planned weight. This router owns the two
``spec.replicas`` fields and those two annotations. Scaling up always happens before
scaling down, so the serving capacity never dips below the total.
"""

from __future__ import annotations

from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import (
    STABLE_REPLICAS_ANNOTATION,
    WEIGHT_ANNOTATION,
    annotations,
    canary_name,
    canary_percent,
    check_weight,
    replica_split,
    required_option,
)
from controlplane.errors import NotFoundError
from controlplane.ports import RouteTarget


def total_replicas(stable: dict[str, Any]) -> int:
    saved = annotations(stable).get(STABLE_REPLICAS_ANNOTATION)
    return int(saved) if saved else int((stable.get("spec") or {}).get("replicas", 1))


def read_weight(stable: dict[str, Any], canary: dict[str, Any] | None) -> int:
    if canary is None:
        return 0
    s = int((stable.get("spec") or {}).get("replicas", 1))
    c = int((canary.get("spec") or {}).get("replicas", 1))
    applied = annotations(canary).get(WEIGHT_ANNOTATION)
    if applied is not None and replica_split(total_replicas(stable), int(applied)) == (s, c):
        return int(applied)
    return canary_percent(s, c)


def scale_plan(stable: dict[str, Any], canary: dict[str, Any], weight: int) -> list[tuple[str, dict[str, Any]]]:
    """Ordered (which, merge patch) pairs: the growing side first. Empty when nothing changes."""
    check_weight(weight)
    total = total_replicas(stable)
    want_s, want_c = replica_split(total, weight)
    s = int((stable.get("spec") or {}).get("replicas", 1))
    c = int((canary.get("spec") or {}).get("replicas", 1))
    stable_patch: dict[str, Any] = {}
    if weight > 0 and STABLE_REPLICAS_ANNOTATION not in annotations(stable):
        stable_patch["metadata"] = {"annotations": {STABLE_REPLICAS_ANNOTATION: str(total)}}
    if weight == 0 and STABLE_REPLICAS_ANNOTATION in annotations(stable):
        stable_patch["metadata"] = {"annotations": {STABLE_REPLICAS_ANNOTATION: None}}
    if s != want_s:
        stable_patch["spec"] = {"replicas": want_s}
    canary_patch: dict[str, Any] = {}
    if annotations(canary).get(WEIGHT_ANNOTATION) != str(weight):
        canary_patch["metadata"] = {"annotations": {WEIGHT_ANNOTATION: str(weight)}}
    if c != want_c:
        canary_patch["spec"] = {"replicas": want_c}
    plan = [("stable", stable_patch), ("canary", canary_patch)]
    if want_c > c:
        plan.reverse()
    return [(which, patch) for which, patch in plan if patch]


class ReplicaRatioRouter:
    name = "replica-ratio"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _names(self, target: RouteTarget) -> tuple[str, str]:
        stable = required_option(target, "deployment")
        return stable, canary_name(stable)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        stable_name, canary_name_ = self._names(target)
        stable = self.client.get_deployment(target.namespace, stable_name)
        canary = self.client.get_deployment(target.namespace, canary_name_)
        names = {"stable": stable_name, "canary": canary_name_}
        for which, patch in scale_plan(stable, canary, canary_weight):
            self.client.patch_deployment(target.namespace, names[which], patch)

    def get_weight(self, target: RouteTarget) -> int:
        stable_name, canary_name_ = self._names(target)
        stable = self.client.get_deployment(target.namespace, stable_name)
        try:
            canary = self.client.get_deployment(target.namespace, canary_name_)
        except NotFoundError:
            canary = None
        return read_weight(stable, canary)

    def reset(self, target: RouteTarget) -> None:
        """Stable back to its full replica count, canary to zero."""
        _, canary_name_ = self._names(target)
        try:
            self.client.get_deployment(target.namespace, canary_name_)
        except NotFoundError:
            return
        self.set_weight(target, 0)
