"""KServe (serverless mode): the canary share is ``spec.predictor.canaryTrafficPercent``.

KServe splits traffic between the latest revision (the canary: the predictor's
``model.storageUri`` is the new version, set by ``KServeWorkloads``) and the previous ready
revision. ``0`` pins all traffic on the previous revision (a rollback); removing the field
sends everything to the latest (a promotion). This router owns only that one field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.common import check_weight, model_uri, required_option
from controlplane.ports import RouteTarget

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"


def storage_uri(isvc: Mapping[str, Any]) -> str | None:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    return (predictor.get("model") or {}).get("storageUri")


def read_weight(isvc: Mapping[str, Any], canary_uri: str) -> int:
    """The canary's share: 0 unless the latest revision serves the canary's version."""
    if storage_uri(isvc) != canary_uri:
        return 0
    percent = ((isvc.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    return 100 if percent is None else int(percent)


def weight_patch(isvc: Mapping[str, Any], weight: int) -> dict[str, Any] | None:
    """Merge patch of the one field; None when it already holds ``weight``."""
    check_weight(weight)
    current = ((isvc.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
    if current == weight:
        return None
    return {"spec": {"predictor": {"canaryTrafficPercent": weight}}}


class KServeRouter:
    name = "kserve"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def _get(self, target: RouteTarget) -> tuple[str, dict[str, Any]]:
        name = required_option(target, "inferenceService")
        return name, self.client.get_custom(GROUP, VERSION, PLURAL, target.namespace, name)

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None:
        name, isvc = self._get(target)
        patch = weight_patch(isvc, canary_weight)
        if patch is not None:
            self.client.patch_custom(GROUP, VERSION, PLURAL, target.namespace, name, patch)

    def get_weight(self, target: RouteTarget) -> int:
        _, isvc = self._get(target)
        return read_weight(isvc, model_uri(target, target.canary_version))

    def reset(self, target: RouteTarget) -> None:
        """All traffic on the previous revision: ``canaryTrafficPercent: 0``. Without the field
        (after a promotion) there is no split to undo, and setting 0 would pin the old revision."""
        name, isvc = self._get(target)
        if "canaryTrafficPercent" in ((isvc.get("spec") or {}).get("predictor") or {}):
            patch = weight_patch(isvc, 0)
            if patch is not None:
                self.client.patch_custom(GROUP, VERSION, PLURAL, target.namespace, name, patch)
