"""Istio: the canary share is the weight of the canary destination in every VirtualService
HTTP route that sends traffic to the stable destination (``spec.http[i].route[j].weight``).

Destinations are told apart by host (default: the stable Service and ``<service>-canary``)
or, with ``stableSubset``/``canarySubset``, by DestinationRule subset of one host. Where a
route has no canary destination yet, one is appended (a copy of the stable one). Only the
weights are patched, with JSON-patch ``test`` operations pinning the entries changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
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

GROUP = "networking.istio.io"
VERSION = "v1"
PLURAL = "virtualservices"


@dataclass(frozen=True)
class Destination:
    host: str
    subset: str | None = None

    def matches(self, dest: Mapping[str, Any], namespace: str) -> bool:
        return _same_host(str(dest.get("host", "")), self.host, namespace) and dest.get("subset") == self.subset


def _same_host(a: str, b: str, namespace: str) -> bool:
    """``minilm``, ``minilm.ns`` and ``minilm.ns.svc.cluster.local`` name one Service."""

    def full(host: str) -> str:
        parts = host.split(".")
        if len(parts) == 1:
            return f"{host}.{namespace}"
        return ".".join(parts[:2])

    return a == b or full(a) == full(b)


def destinations(target: RouteTarget) -> tuple[Destination, Destination]:
    options = target.options
    stable_host = str(options.get("stableHost") or stable_service(target))
    if options.get("stableSubset") or options.get("canarySubset"):
        return (
            Destination(stable_host, str(required_option(target, "stableSubset"))),
            Destination(stable_host, str(required_option(target, "canarySubset"))),
        )
    return Destination(stable_host), Destination(str(options.get("canaryHost") or canary_name(stable_service(target))))


def _routes(vs: Mapping[str, Any], stable: Destination, namespace: str) -> list[tuple[int, list[dict[str, Any]], int]]:
    found = []
    for i, http in enumerate((vs.get("spec") or {}).get("http") or []):
        route = list(http.get("route") or [])
        s = next((j for j, r in enumerate(route) if stable.matches(r.get("destination") or {}, namespace)), None)
        if s is not None:
            found.append((i, route, s))
    return found


def _find(route: list[dict[str, Any]], dest: Destination, namespace: str) -> int | None:
    return next((j for j, r in enumerate(route) if dest.matches(r.get("destination") or {}, namespace)), None)


def _weight(entry: Mapping[str, Any], alone: bool) -> int:
    # Istio: a single destination without a weight takes 100 %; otherwise a missing weight is 0.
    return int(entry.get("weight", 100 if alone else 0))


def weight_patch(
    vs: Mapping[str, Any], stable: Destination, canary: Destination, weight: int, namespace: str
) -> list[dict[str, Any]]:
    check_weight(weight)
    routes = _routes(vs, stable, namespace)
    if not routes:
        name = (vs.get("metadata") or {}).get("name")
        raise InputError(f"VirtualService {name!r} has no HTTP route to the stable destination {stable.host!r}")
    ops: list[dict[str, Any]] = []
    for i, route, s in routes:
        base = pointer("spec", "http", i, "route")
        c = _find(route, canary, namespace)
        if c is None:
            if weight == 0:
                continue
            entry = copy.deepcopy(route[s])
            entry.pop("weight", None)
            entry["destination"] = {**entry.get("destination", {}), "host": canary.host}
            if canary.subset is not None:
                entry["destination"]["subset"] = canary.subset
            ops += _set(base, s, route[s], 100 - weight)
            ops.append({"op": "add", "path": f"{base}/-", "value": {**entry, "weight": weight}})
            continue
        if _weight(route[s], len(route) == 1) != 100 - weight:
            ops += _set(base, s, route[s], 100 - weight)
        if _weight(route[c], False) != weight:
            ops += _set(base, c, route[c], weight)
    return ops


def _set(base: str, index: int, entry: Mapping[str, Any], weight: int) -> list[dict[str, Any]]:
    return [
        {"op": "test", "path": f"{base}/{index}/destination", "value": entry.get("destination")},
        {"op": "add", "path": f"{base}/{index}/weight", "value": weight},
    ]


def read_weight(vs: Mapping[str, Any], stable: Destination, canary: Destination, namespace: str) -> int:
    shares = []
    for _, route, s in _routes(vs, stable, namespace):
        c = _find(route, canary, namespace)
        canary_w = 0 if c is None else _weight(route[c], False)
        shares.append(canary_percent(_weight(route[s], len(route) == 1), canary_w))
    return agreed_share(shares, "VirtualService", vs)


class IstioRouter:
    name = "istio"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _get(self, target: RouteTarget) -> tuple[str, dict[str, Any]]:
        name = required_option(target, "virtualService")
        return name, self.client.get_custom(GROUP, VERSION, PLURAL, target.namespace, name)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        name, vs = self._get(target)
        stable, canary = destinations(target)
        ops = weight_patch(vs, stable, canary, canary_weight, target.namespace)
        if ops:
            self.client.json_patch_custom(GROUP, VERSION, PLURAL, target.namespace, name, ops)

    def get_weight(self, target: RouteTarget) -> int:
        _, vs = self._get(target)
        stable, canary = destinations(target)
        return read_weight(vs, stable, canary, target.namespace)

    def reset(self, target: RouteTarget) -> None:
        self.set_weight(target, 0)
