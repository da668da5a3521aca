"""Use cases on ModelRollout resources for CI and operators: promote (create or update),
the intents (pause, resume, abort, rollback), reading, and waiting for the end.

Only the rollout resource is touched, so the CI identity needs nothing but get/create/patch
on ``modelrollouts`` (``manifests/rbac/ci-role.yaml``). By convention the rollout, the stable
Deployment, its Service and the route are named after the model; an existing rollout keeps
the names it was created with (apply ``manifests/example`` style resources to choose others).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.routers.names import DEFAULT_ROUTER, check_router, route_option
from controlplane.app import kube_rollout as cr_
from controlplane.engine.checks import is_dns1123_label, spec_problems
from controlplane.engine.types import TERMINAL_PHASES, RolloutSpec
from controlplane.errors import ConflictError, InputError, NotFoundError, TimedOut
from controlplane.refs import parse_versioned_ref
from controlplane.rollout.intents import record_intent


def rollout_name(model: str) -> str:
    name = model.lower().replace("_", "-").replace(".", "-")
    if not is_dns1123_label(name):
        raise InputError(f"model name {model!r} does not make a DNS-1123 rollout name")
    return name


def promote(
    client: KubeClient,
    namespace: str,
    ref_text: str,
    *,
    steps: tuple[int, ...],
    step_duration_s: float,
    router: str | None,
    skip_validation: bool,
    alias: str,
) -> dict[str, Any]:
    """Create the rollout for ``NAME:vN``, or point the existing one at the new version."""
    ref = parse_versioned_ref(ref_text)
    assert ref.version is not None
    name = rollout_name(ref.name)
    if router is not None:
        check_router(router)
    problems = spec_problems(RolloutSpec(model=ref.name, version=ref.version, steps=steps,
                                         step_duration_s=step_duration_s))
    if problems:
        raise InputError("; ".join(problems))
    try:
        existing = client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name)
    except NotFoundError:
        kind = router or DEFAULT_ROUTER
        router_spec: dict[str, Any] = {"type": kind}
        option = route_option(kind)
        if option:
            router_spec[option] = name
        body = cr_.rollout_manifest(
            name, namespace, ref.name, ref.version, deployment=None if kind == "kserve" else name,
            router=router_spec, steps=steps, step_duration_s=step_duration_s, skip_validation=skip_validation,
            alias=alias,
        )
        return client.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, body)
    phase = (existing.get("status") or {}).get("phase")
    current = cr_.spec_of(existing)
    running = phase is not None and phase not in TERMINAL_PHASES
    if (existing.get("status") or {}).get("version") == current.get("version") and running:
        raise ConflictError(
            f"rollout {namespace}/{name} is still {phase} at {ref.name}:v{current.get('version')}: "
            "wait for it, or abort it first"
        )
    patch: dict[str, Any] = {
        "metadata": {"resourceVersion": existing["metadata"]["resourceVersion"]},
        "spec": {
            "model": ref.name, "version": ref.version, "steps": list(steps), "stepDurationSeconds": step_duration_s,
            "skipValidation": skip_validation, "alias": alias, "paused": False, "abort": False, "rollback": False,
            "stableVersion": None,
        },
    }
    if router is not None and router != cr_.router_type(existing):
        raise InputError(f"rollout {namespace}/{name} uses router {cr_.router_type(existing)!r}; "
                         f"change spec.router with kubectl to switch to {router!r}")
    return client.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name, patch)


def intent(client: KubeClient, namespace: str, model: str, what: str) -> dict[str, Any]:
    """Record ``pause|resume|abort|rollback`` in the rollout's spec; the controller acts on it."""
    name = rollout_name(model)

    def attempt() -> dict[str, Any] | None:
        cr = client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name)
        if (cr.get("status") or {}).get("phase") in TERMINAL_PHASES:
            raise ConflictError(f"rollout {namespace}/{name} has ended ({cr['status']['phase']}): nothing to {what}")
        spec = cr_.spec_of(cr)
        if what == "resume":
            change: dict[str, Any] = {"paused": False, "resumeRequests": int(spec.get("resumeRequests", 0)) + 1}
        elif what in cr_.INTENT_FIELDS:
            field, value = cr_.INTENT_FIELDS[what]
            change = {field: value}
        else:
            raise InputError(f"unknown intent {what!r}")
        patch = {"metadata": {"resourceVersion": cr["metadata"]["resourceVersion"]}, "spec": change}
        try:
            return client.patch_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name, patch)
        except ConflictError:
            return None

    return record_intent(attempt, what, f"{namespace}/{name}")


def read(client: KubeClient, namespace: str, model: str) -> dict[str, Any]:
    """Where the model's rollout stands, from its resource's status (NotFoundError when there is none)."""
    name = rollout_name(model)
    cr = client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name)
    status = dict(cr.get("status") or {})
    return {
        "rollout": f"{namespace}/{name}",
        "model": model,
        "version": status.get("version"),
        "phase": status.get("phase") or "Pending",
        "weight": status.get("weight", 0),
        "step": status.get("stepIndex", status.get("step")),
        "message": status.get("message", ""),
        "observedGeneration": status.get("observedGeneration"),
        "generation": cr["metadata"].get("generation"),
    }


def wait(
    client: KubeClient,
    namespace: str,
    model: str,
    version: int,
    *,
    timeout_s: float | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the rollout until the controller reports an end for ``version``; its status.
    ``TimedOut`` after ``timeout_s`` seconds (None: no limit)."""
    name = rollout_name(model)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while deadline is None or time.monotonic() < deadline:
        status = dict(client.get_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, namespace, name).get("status") or {})
        if status != last and on_change is not None:
            on_change(status)
        last = status
        if status.get("version") == version and status.get("phase") in TERMINAL_PHASES:
            return status
        sleep(1.0)
    raise TimedOut(f"rollout {namespace}/{name} did not finish within {timeout_s:g}s")
