"""Traffic routers for the Kubernetes target: one module per data plane, one factory.

Each router implements ``controlplane.ports.TrafficRouter`` (set weight, read back the
weight, reset) by patching only the fields it owns, through ``KubeClient``; none of them
imports ``kubernetes``. An unknown router name is an InputError, never a fallback.

=============== ============================================================ ======================
name            field patched                                                 required options
=============== ============================================================ ======================
gateway-api     HTTPRoute ``spec.rules[i].backendRefs[j].weight``              httpRoute
istio           VirtualService ``spec.http[i].route[j].weight``               virtualService
kserve          InferenceService ``spec.predictor.canaryTrafficPercent``      inferenceService
replica-ratio   Deployment ``spec.replicas`` of stable and canary             (none)
=============== ============================================================ ======================
"""

from __future__ import annotations

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import (
    CANARY_SUFFIX,
    canary_name,
    check_weight,
    required_option,
)
from controlplane.adapters.routers.names import DEFAULT_ROUTER, REQUIRED_OPTIONS, ROUTERS, check_router
from controlplane.ports import TrafficRouter


def make_router(name: str, client: KubeClient) -> TrafficRouter:
    """The router called ``name``; InputError for any other name."""
    check_router(name)
    if name == "gateway-api":
        from controlplane.adapters.routers.gateway_api import GatewayApiRouter

        return GatewayApiRouter(client)
    if name == "istio":
        from controlplane.adapters.routers.istio import IstioRouter

        return IstioRouter(client)
    if name == "kserve":
        from controlplane.adapters.routers.kserve import KServeRouter

        return KServeRouter(client)
    from controlplane.adapters.routers.replica_ratio import ReplicaRatioRouter

    return ReplicaRatioRouter(client)


__all__ = [
    "CANARY_SUFFIX",
    "DEFAULT_ROUTER",
    "REQUIRED_OPTIONS",
    "ROUTERS",
    "canary_name",
    "check_router",
    "check_weight",
    "make_router",
    "required_option",
]
