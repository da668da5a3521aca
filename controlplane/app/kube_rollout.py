"""The ModelRollout custom resource: its names, and the pure mapping between the resource
and the engine (spec → RolloutSpec/RouteTarget, engine status → resource status).

    apiVersion: rollouts.attn-controlplane.dev/v1alpha1
    kind: ModelRollout
    spec: {model, version, stableVersion?, deployment, service?, router: {type, ...},
           steps, stepDurationSeconds, analysisIntervalSeconds, maxExtensions,
           skipValidation, checks, slo?, alias, paused, abort, rollback, resumeRequests}
    status: {observedGeneration, phase, stepIndex, weight, stableVersion, message,
             conditions, state (the engine's full status)}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.adapters.routers.names import DEFAULT_ROUTER, ROUTERS, route_option
from controlplane.engine import RolloutSpec, RolloutStatus
from controlplane.engine.checks import is_dns1123_label, spec_problems
from controlplane.engine.types import DEFAULT_STEPS, Phase
from controlplane.ports import RouteTarget

GROUP = "rollouts.attn-controlplane.dev"
VERSION = "v1alpha1"
PLURAL = "modelrollouts"
KIND = "ModelRollout"
API_VERSION = f"{GROUP}/{VERSION}"
ROUTER_OPTIONS = (
    "httpRoute", "virtualService", "inferenceService", "canaryService",
    "stableHost", "canaryHost", "stableSubset", "canarySubset", "storageUriTemplate",
)
INTENT_FIELDS = {"pause": ("paused", True), "abort": ("abort", True), "rollback": ("rollback", True)}


def spec_of(cr: Mapping[str, Any]) -> dict[str, Any]:
    return dict(cr.get("spec") or {})


def router_type(cr: Mapping[str, Any]) -> str:
    return str((spec_of(cr).get("router") or {}).get("type") or DEFAULT_ROUTER)


def engine_spec(cr: Mapping[str, Any], stable_version: int | None) -> RolloutSpec:
    s = spec_of(cr)
    return RolloutSpec(
        model=str(s.get("model", "")),
        version=int(s.get("version", 0)),
        stable_version=stable_version,
        steps=tuple(s.get("steps") or DEFAULT_STEPS),
        step_duration_s=float(s.get("stepDurationSeconds", 30)),
        analysis_interval_s=float(s.get("analysisIntervalSeconds", 10)),
        max_extensions=int(s.get("maxExtensions", 2)),
        alias=str(s.get("alias", "production")),
        target="kubernetes",
        router=router_type(cr),
        skip_validation=bool(s.get("skipValidation", False)),
        checks=tuple(s.get("checks") or ()),
        slo=dict(s["slo"]) if isinstance(s.get("slo"), Mapping) else None,
        paused=bool(s.get("paused", False)),
        abort=bool(s.get("abort", False)),
        rollback=bool(s.get("rollback", False)),
        resume_requests=int(s.get("resumeRequests", 0)),
    )


def owner_reference(cr: Mapping[str, Any]) -> dict[str, Any]:
    meta = cr.get("metadata") or {}
    return {"apiVersion": API_VERSION, "kind": KIND, "name": meta.get("name"), "uid": meta.get("uid"), "controller": True}


def route_target(cr: Mapping[str, Any], spec: RolloutSpec) -> RouteTarget:
    s = spec_of(cr)
    meta = cr.get("metadata") or {}
    router = dict(s.get("router") or {})
    options: dict[str, Any] = {k: router[k] for k in ROUTER_OPTIONS if router.get(k)}
    for key in ("deployment", "service"):
        if s.get(key):
            options[key] = s[key]
    options["owner"] = owner_reference(cr)
    return RouteTarget(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        model=spec.model,
        stable_version=spec.stable_version,
        canary_version=spec.version,
        options=options,
    )


def resource_problems(cr: Mapping[str, Any]) -> list[str]:
    """What the controller refuses before touching anything (the schema catches most of it;
    this is the same check for clusters that skip schema validation, and for the CLI)."""
    s = spec_of(cr)
    problems: list[str] = []
    name = str((cr.get("metadata") or {}).get("name") or "")
    if not is_dns1123_label(name):
        problems.append(f"name {name!r} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)")
    kind = router_type(cr)
    router = s.get("router") or {}
    required = route_option(kind) if kind in ROUTERS else None
    if required and not router.get(required):
        problems.append(f"router {kind} needs spec.router.{required}")
    if kind != "kserve" and not s.get("deployment"):
        problems.append("spec.deployment (the stable Deployment) is required")
    if not isinstance(s.get("version"), int) or s.get("version", 0) < 1:
        problems.append("spec.version must be a positive integer")
    try:
        spec = engine_spec(cr, None)
    except (TypeError, ValueError) as exc:
        return [*problems, f"invalid spec: {exc}"]
    problems += [p for p in spec_problems(spec, frozenset(ROUTERS)) if "already the stable" not in p]
    return problems


def status_body(
    cr: Mapping[str, Any],
    status: RolloutStatus,
    stable_version: int | None,
    error: str | None = None,
) -> dict[str, Any]:
    """The whole ``status`` of the resource for one engine status (conditions included)."""
    meta = cr.get("metadata") or {}
    previous = {c.get("type"): c for c in (cr.get("status") or {}).get("conditions") or []}
    ready = "False" if error or status.phase in (Phase.FAILED,) else "True"
    conditions = [
        _condition(previous, "Progressing", "False" if status.phase.terminal else "True", status.phase.value,
                   status.message, status),
        _condition(previous, "Ready", ready, "ReconcileError" if error else "Reconciled", error or "", status),
    ]
    return {
        "observedGeneration": meta.get("generation"),
        "phase": status.phase.value,
        "stepIndex": status.step_index,
        "weight": status.weight,
        "stableVersion": stable_version,
        "message": status.message,
        "conditions": conditions,
        "state": status.to_dict(),
    }


def _condition(
    previous: Mapping[str, Mapping[str, Any]], kind: str, value: str, reason: str, message: str, status: RolloutStatus
) -> dict[str, Any]:
    old = previous.get(kind) or {}
    changed = old.get("status") != value or old.get("reason") != reason
    at = old.get("lastTransitionTime") if not changed and old.get("lastTransitionTime") else _rfc3339(
        status.finished_at or status.step_started_at or status.started_at
    )
    return {"type": kind, "status": value, "reason": reason, "message": message[:1000], "lastTransitionTime": at}


def _rfc3339(at: float | None) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(at or 0, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def engine_status(cr: Mapping[str, Any]) -> RolloutStatus:
    state = (cr.get("status") or {}).get("state")
    return RolloutStatus.from_dict(dict(state)) if state else RolloutStatus()


def rollout_manifest(
    name: str,
    namespace: str,
    model: str,
    version: int,
    *,
    deployment: str | None,
    router: Mapping[str, Any],
    steps: tuple[int, ...] = DEFAULT_STEPS,
    step_duration_s: float = 30.0,
    analysis_interval_s: float = 10.0,
    skip_validation: bool = False,
    alias: str = "production",
    service: str | None = None,
) -> dict[str, Any]:
    """The ModelRollout that ``ctl promote NAME:vN --target kubernetes`` creates or updates."""
    spec: dict[str, Any] = {
        "model": model,
        "version": version,
        "router": dict(router),
        "steps": list(steps),
        "stepDurationSeconds": step_duration_s,
        "analysisIntervalSeconds": analysis_interval_s,
        "skipValidation": skip_validation,
        "alias": alias,
        "paused": False,
        "abort": False,
        "rollback": False,
        "resumeRequests": 0,
    }
    if deployment:
        spec["deployment"] = deployment
    if service:
        spec["service"] = service
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
