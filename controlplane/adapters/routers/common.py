"""Arithmetic and option helpers shared by the routers (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.errors import InputError
from controlplane.ports import RouteTarget

CANARY_SUFFIX = "-canary"
DOMAIN = "rollouts.attn-controlplane.dev"
ROLE_LABEL = f"{DOMAIN}/role"
WEIGHT_ANNOTATION = f"{DOMAIN}/weight"
STABLE_REPLICAS_ANNOTATION = f"{DOMAIN}/stable-replicas"
MODEL_URI_ANNOTATION = f"{DOMAIN}/model-uri"
MODEL_URI_ENV = "MODEL_URI"


def canary_name(stable: str) -> str:
    return f"{stable}{CANARY_SUFFIX}"


def check_weight(weight: int) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InputError(f"canary weight must be an integer between 0 and 100, got {weight!r}")
    return weight


def required_option(target: RouteTarget, key: str) -> str:
    value = target.options.get(key)
    if not value or not isinstance(value, str):
        raise InputError(f"rollout {target.namespace}/{target.name}: router option {key!r} is required")
    return value


def stable_service(target: RouteTarget) -> str:
    """The user's stable Service (``service`` option; defaults to the Deployment's name)."""
    return str(target.options.get("service") or required_option(target, "deployment"))


def canary_percent(stable_weight: int, canary_weight: int) -> int:
    """Proportional weights to the canary's share in percent (0 when both are zero)."""
    total = stable_weight + canary_weight
    return 0 if total <= 0 else round(100 * canary_weight / total)


def agreed_share(shares: Iterable[int], kind: str, obj: Mapping[str, Any]) -> int:
    """The canary share every rule of a route agrees on, -1 when they disagree (so the plan is
    re-applied); InputError when no rule routes to the stable backend."""
    distinct = set(shares)
    if not distinct:
        name = (obj.get("metadata") or {}).get("name")
        raise InputError(f"{kind} {name!r} does not route to the stable backend")
    return distinct.pop() if len(distinct) == 1 else -1


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for ``weight`` % of ``total``: the canary rounds up, and
    stable keeps at least one replica until the canary takes 100 %."""
    check_weight(weight)
    total = max(total, 1)
    if weight == 0:
        return total, 0
    if weight == 100:
        return 0, total
    canary = min(total, math.ceil(total * weight / 100))
    return max(total - canary, 1), canary


def model_uri(target: RouteTarget, version: int) -> str:
    template = str(target.options.get("storageUriTemplate") or "models:/{model}/{version}")
    return template.format(model=target.model, version=version, namespace=target.namespace)


def annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def pointer(*parts: object) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
