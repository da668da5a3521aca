"""Gateway API: the canary share is the weight of the canary Service's backendRef in every
HTTPRoute rule that sends traffic to the stable Service (``spec.rules[i].backendRefs[j].weight``).

The route belongs to the user; this router only sets the two weights of each such rule and,
where a rule has no canary backendRef yet, appends one (a copy of the stable backendRef
pointing at the canary Service). Each patch is a JSON patch whose ``test`` operations pin
the backendRefs it changes, so a concurrent edit of the route fails the patch instead of
being overwritten.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import (
    agreed_share,
    canary_name,
    canary_percent,
    check_weight,
    pointer,
    required_option,
    stable_service,
)
from controlplane.errors import InputError
from controlplane.ports import RouteTarget

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
PLURAL = "httproutes"


def _is_service_ref(ref: Mapping[str, Any], name: str) -> bool:
    return ref.get("name") == name and ref.get("group", "") in ("", None) and ref.get("kind", "Service") == "Service"


def _find(refs: list[dict[str, Any]], name: str) -> int | None:
    return next((j for j, ref in enumerate(refs) if _is_service_ref(ref, name)), None)


def _rules(route: Mapping[str, Any], stable: str) -> list[tuple[int, list[dict[str, Any]], int]]:
    """(rule index, backendRefs, stable index) of every rule that routes to ``stable``."""
    found = []
    for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        refs = list(rule.get("backendRefs") or [])
        j = _find(refs, stable)
        if j is not None:
            found.append((i, refs, j))
    return found


def weight_patch(route: Mapping[str, Any], stable: str, canary: str, weight: int) -> list[dict[str, Any]]:
    """JSON patch operations putting ``weight`` % on ``canary`` in every rule routing to ``stable``;
    empty when the route already says so."""
    check_weight(weight)
    rules = _rules(route, stable)
    if not rules:
        name = (route.get("metadata") or {}).get("name")
        raise InputError(f"HTTPRoute {name!r} has no rule with a backendRef to Service {stable!r}")
    ops: list[dict[str, Any]] = []
    for i, refs, s in rules:
        c = _find(refs, canary)
        base = pointer("spec", "rules", i, "backendRefs")
        if c is None:
            if weight == 0:
                if refs[s].get("weight", 1) != 100:
                    ops += _set(base, s, stable, 100)
                continue
            added = {k: copy.deepcopy(v) for k, v in refs[s].items() if k not in ("name", "weight", "filters")}
            ops += _set(base, s, stable, 100 - weight)
            ops.append({"op": "test", "path": f"{base}/{len(refs) - 1}/name", "value": refs[-1].get("name")})
            ops.append({"op": "add", "path": f"{base}/-", "value": {**added, "name": canary, "weight": weight}})
            continue
        if refs[s].get("weight", 1) != 100 - weight:
            ops += _set(base, s, stable, 100 - weight)
        if refs[c].get("weight", 1) != weight:
            ops += _set(base, c, canary, weight)
    return ops


def _set(base: str, index: int, name: str, weight: int) -> list[dict[str, Any]]:
    return [
        {"op": "test", "path": f"{base}/{index}/name", "value": name},
        {"op": "add", "path": f"{base}/{index}/weight", "value": weight},
    ]


def read_weight(route: Mapping[str, Any], stable: str, canary: str) -> int:
    """The canary's share in percent; -1 when the rules disagree (so the plan is re-applied)."""
    shares = []
    for _, refs, s in _rules(route, stable):
        c = _find(refs, canary)
        stable_w = int(refs[s].get("weight", 1))
        canary_w = 0 if c is None else int(refs[c].get("weight", 1))
        shares.append(canary_percent(stable_w, canary_w))
    return agreed_share(shares, "HTTPRoute", route)


class GatewayApiRouter:
    name = "gateway-api"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _names(self, target: RouteTarget) -> tuple[str, str, str]:
        stable = stable_service(target)
        return required_option(target, "httpRoute"), stable, str(target.options.get("canaryService") or canary_name(stable))

    def _get(self, target: RouteTarget, route: str) -> dict[str, Any]:
        return self.client.get_custom(GROUP, VERSION, PLURAL, target.namespace, route)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        route, stable, canary = self._names(target)
        ops = weight_patch(self._get(target, route), stable, canary, canary_weight)
        if ops:
            self.client.json_patch_custom(GROUP, VERSION, PLURAL, target.namespace, route, ops)

    def get_weight(self, target: RouteTarget) -> int:
        route, stable, canary = self._names(target)
        return read_weight(self._get(target, route), stable, canary)

    def reset(self, target: RouteTarget) -> None:
        self.set_weight(target, 0)
