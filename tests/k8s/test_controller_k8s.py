"""The controller (``ctl controller run``, a real process) against the real API server:
full rollouts through each router with the weight read back at every step, rollback,
SIGKILL at several points, two replicas with leader election, bad specs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from controlplane.adapters.routers import make_router
from controlplane.app import kube_commands
from controlplane.app import kube_rollout as cr_
from controlplane.app.controller_lease import parse_time
from controlplane.errors import InputError, NotFoundError
from controlplane.ports import RouteTarget
from tests.k8s.conftest import (
    ControllerProcess,
    apply,
    get_rollout,
    http_route,
    inference_service,
    phase_is,
    rollout,
    stable_objects,
    virtual_service,
    wait_for,
)

pytestmark = pytest.mark.k8s
ROUTE_OBJECTS = {"gateway-api": http_route, "istio": virtual_service, "kserve": inference_service}


def route_target(ns: str, router: str, stable: int, canary: int) -> RouteTarget:
    options = {"gateway-api": {"httpRoute": "minilm"}, "istio": {"virtualService": "minilm"},
               "kserve": {"inferenceService": "minilm"}, "replica-ratio": {}}[router]
    return RouteTarget(ns, "minilm", "minilm", stable, canary, options={"deployment": "minilm", **options})


def follow(kube: KubeClient, ns: str, router: str, version: int, timeout: float = 120) -> list[tuple[int, int]]:
    """(planned weight from the status, weight read back from the data plane) while progressing."""
    seen: list[tuple[int, int]] = []
    probe = make_router(router, kube)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_rollout(kube, ns).get("status") or {}
        if status.get("version") == version and status.get("phase") in ("Promoted", "RolledBack", "Failed", "Aborted"):
            return seen
        if status.get("phase") == "Progressing":
            pair = (status["weight"], probe.get_weight(route_target(ns, router, 2, version)))
            if not seen or seen[-1] != pair:
                seen.append(pair)
        time.sleep(0.1)
    raise AssertionError(f"rollout did not finish; seen {seen}; status {get_rollout(kube, ns).get('status')}")


def finalized(kube: KubeClient, ns: str, name: str = "minilm") -> dict[str, Any] | None:
    cr = get_rollout(kube, ns, name)
    return cr if "finalizing" not in (cr.get("status") or {}) else None


def steps_started(cr: dict[str, Any]) -> list[int]:
    return [e["stepIndex"] for e in cr["status"]["history"] if e["kind"] == "StepStarted"]


@pytest.mark.parametrize("router", ["gateway-api", "istio", "kserve", "replica-ratio"])
def test_full_rollout_through_each_router(
    router: str, k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any],
    tmp_path: Path,
) -> None:
    ns = k8s_namespace
    objects = [inference_service(ns)] if router == "kserve" else stable_objects(ns)
    if router in ("gateway-api", "istio"):
        objects.append(ROUTE_OBJECTS[router](ns))
    apply(k8s_cluster, *objects)
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path))
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, router, steps=(25, 50, 100), step_s=1.5))
    seen = follow(kube, ns, router, 3)
    cr = wait_for(lambda: finalized(kube, ns), 60, "promotion finalized")
    assert cr["status"]["phase"] == "Promoted", (cr["status"], controllers[0].output())
    # every planned weight was read back from the API server, in order, and only those
    matched = [planned for planned, observed in seen if planned == observed]
    assert [w for i, w in enumerate(matched) if i == 0 or matched[i - 1] != w] == [25, 50, 100], seen
    assert steps_started(cr) == [0, 1, 2]
    final = make_router(router, kube).get_weight(route_target(ns, router, 3, 3))
    if router == "kserve":
        predictor = kube.get_custom("serving.kserve.io", "v1beta1", "inferenceservices", ns, "minilm")["spec"][
            "predictor"]
        assert predictor["model"]["storageUri"] == "models:/minilm/3" and "canaryTrafficPercent" not in predictor
        assert final == 100  # the latest revision (v3) takes everything
    else:
        assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/3"
        assert kube.get_deployment(ns, "minilm")["spec"]["replicas"] == 4
        assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
        assert final == 0  # all traffic on stable, which now serves v3
        owners = kube.get_deployment(ns, "minilm-canary")["metadata"]["ownerReferences"]
        assert owners[0]["kind"] == "ModelRollout" and owners[0]["uid"] == cr["metadata"]["uid"]
    reasons = {e["reason"] for e in kube.list_events(ns, "involvedObject.kind=ModelRollout")}
    assert {"StepStarted", "Promoted"} <= reasons


def test_rollback_returns_everything_to_stable(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path))
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, "gateway-api", steps=(25, 50, 100),
                                                                        step_s=600))
    wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("weight") == 25, 60, "canary at 25%")
    router = make_router("gateway-api", kube)
    assert router.get_weight(route_target(ns, "gateway-api", 2, 3)) == 25
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 4
    kube_commands.intent(kube, ns, "minilm", "rollback")
    cr = wait_for(phase_is(kube, ns, "RolledBack"), 60, "RolledBack")
    assert cr["status"]["weight"] == 0
    assert router.get_weight(route_target(ns, "gateway-api", 2, 3)) == 0
    assert kube.get_deployment(ns, "minilm-canary")["spec"]["replicas"] == 0
    assert served_uri(kube.get_deployment(ns, "minilm")) == "models:/minilm/2"  # stable untouched
    assert steps_started(cr) == [0]


# (rollout watched, the step whose StepStarted entry triggers the kill): each controller is killed with
# SIGKILL as soon as that entry is in the resource's history, at different points of different rollouts.
KILL_POINTS = (("minilm", 1), ("second", 2), ("third", 3), ("minilm", 4))


def _history(kube: KubeClient, ns: str, name: str) -> list[dict[str, Any]]:
    return list((get_rollout(kube, ns, name).get("status") or {}).get("history") or [])


def _started_since(kube: KubeClient, ns: str, name: str, after: int, step: int) -> bool:
    """Whether an entry past the first ``after`` of ``name``'s history started step ``step`` or a later one."""
    return any(e["kind"] == "StepStarted" and e["stepIndex"] >= step for e in _history(kube, ns, name)[after:])


@pytest.mark.postgres
def test_sigkill_mid_rollout_converges_without_skipping_or_repeating(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
    pg_fresh_url: str,
) -> None:
    """Four controllers in turn, each SIGKILLed once its watched rollout has started a given step; every
    kill lands mid-rollout and after progress of its own. A fifth finishes: every rollout promoted with
    each step started exactly once, and the audit mirrored into PostgreSQL (--audit-db) without a gap."""
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    names = ["minilm", "second", "third"]
    for name in names[1:]:
        apply(k8s_cluster, *stable_objects(ns, name=name), http_route(ns, name=name))
    for name in names:
        kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns,
                           rollout(ns, "gateway-api", steps=(10, 20, 40, 60, 80, 100), step_s=1.0, name=name,
                                   model=name))
    audit_db = pg_fresh_url
    for kills, (watched, step) in enumerate(KILL_POINTS):
        seen = len(_history(kube, ns, watched))
        proc = ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, ident=f"k{kills}", audit_db=audit_db)
        controllers.append(proc)
        # the trigger is an entry this controller wrote: a step at or past `step` started after it came up
        wait_for(lambda: _started_since(kube, ns, watched, seen, step), 120,  # noqa: B023 (called at once)
                 f"{watched} at step {step} (kill {kills})")
        proc.kill()
        cr = get_rollout(kube, ns, watched)
        assert cr["status"]["phase"] == "Progressing", (kills, cr["status"])  # the kill landed mid-rollout
        assert len(cr["status"]["history"]) > seen and "Promoted" not in [e["kind"] for e in cr["status"]["history"]]
    final = ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, ident="final", audit_db=audit_db)
    controllers.append(final)
    crs = {}
    for name in names:
        wait_for(phase_is(kube, ns, "Promoted", name=name), 120, f"{name} promoted")
        # and finalized (traffic back on the new stable): its last history entry is written by then
        cr = wait_for(lambda: finalized(kube, ns, name), 60, f"{name} finalized")  # noqa: B023 (called at once)
        assert steps_started(cr) == [0, 1, 2, 3, 4, 5], cr["status"]["history"]
        kinds = [e["kind"] for e in cr["status"]["history"]]
        assert kinds.count("Promoted") == 1
        assert [e["seq"] for e in cr["status"]["history"]] == list(range(len(kinds)))
        assert served_uri(kube.get_deployment(ns, name)) == f"models:/{name}/3"
        crs[cr["metadata"]["uid"]] = cr
    assert final.terminate() == 0
    # the PostgreSQL audit log mirrors every transition, with no gap and nothing twice
    from controlplane.store import open_store
    from tests.servers import pg_query

    store = open_store(audit_db)
    records = [r for r in store.list_rollouts() if r.spec.get("kubernetes", {}).get("uid") in crs]
    assert len(records) == len(names)
    for record in records:
        history = crs[record.spec["kubernetes"]["uid"]]["status"]["history"]
        events = store.list_events(record.id)
        assert [e.evidence["seq"] for e in events] == [h["seq"] for h in history]
        assert [e.kind for e in events] == [h["kind"] for h in history]
        assert record.status["phase"] == "Promoted"
        rows = pg_query(audit_db, f"SELECT kind, evidence->>'seq' FROM rollout_events WHERE rollout_id = {record.id} "
                                  "ORDER BY id")  # what the server holds, read without the store
        assert rows == [(h["kind"], str(h["seq"])) for h in history]


def test_two_replicas_only_the_leader_writes_and_handover(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, *stable_objects(ns), http_route(ns))
    a = ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, ident="a", lease_duration=4)
    b = ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, ident="b", lease_duration=4)
    controllers += [a, b]
    lease = wait_for(lambda: _lease_holder(kube, ns), 30, "a leader")
    leader, standby = (a, b) if lease == "a" else (b, a)
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, "gateway-api",
                                                                        steps=(10, 20, 30, 40, 50, 100), step_s=1.5))
    wait_for(lambda: (get_rollout(kube, ns).get("status") or {}).get("stepIndex", -1) >= 1, 60, "progress")
    assert leader.metrics().get("controlplane_status_writes_total", 0) >= 1
    assert standby.metrics().get("controlplane_status_writes_total", 0) == 0
    assert standby.metrics().get("controlplane_leader", 0) == 0 and standby.get("/readyz") == 200
    leader.kill()
    before = kube.get_lease(ns, "attn-controlplane-controller")["spec"]  # the dead leader's last renewal
    assert before["holderIdentity"] == leader.ident
    wait_for(lambda: _lease_holder(kube, ns) == standby.ident, 60, "handover")
    after = kube.get_lease(ns, "attn-controlplane-controller")["spec"]
    # the standby took over once the lease had expired, never earlier, as one transition
    waited = parse_time(after["acquireTime"]) - parse_time(before["renewTime"])
    assert waited >= before["leaseDurationSeconds"], (before, after)
    assert after["leaseTransitions"] == before["leaseTransitions"] + 1
    cr = wait_for(phase_is(kube, ns, "Promoted"), 120, "promoted by the new leader")
    assert steps_started(cr) == [0, 1, 2, 3, 4, 5]
    assert standby.metrics().get("controlplane_status_writes_total", 0) >= 1
    assert standby.terminate() == 0  # graceful SIGTERM
    assert _lease_holder(kube, ns) == ""  # released on shutdown


def _lease_holder(kube: KubeClient, ns: str) -> str | None:
    try:
        return kube.get_lease(ns, "attn-controlplane-controller")["spec"].get("holderIdentity", "")
    except NotFoundError:
        return None


BAD_SPECS = [
    ({"router": {"type": "linkerd"}}, "Unsupported value: \"linkerd\""),
    ({"steps": [50, 25, 100]}, "steps must be strictly increasing"),
    ({"steps": [5, 150]}, "less than or equal to 100"),
    ({"steps": [5, 50]}, "the last step must be 100"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SPECS)
def test_bad_specs_are_refused_by_the_schema(
    change: dict[str, Any], message: str, k8s_namespace: str, kube: KubeClient, crd: str
) -> None:
    body = rollout(k8s_namespace, "gateway-api")
    body["spec"].update(change)
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, k8s_namespace, body)
    assert kube.list_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, k8s_namespace) == []


def test_bad_name_is_refused(k8s_namespace: str, kube: KubeClient, crd: str) -> None:
    body = rollout(k8s_namespace, "gateway-api")
    body["metadata"]["name"] = "minilm.v3"  # a DNS subdomain, not a DNS-1123 label
    with pytest.raises(InputError, match="DNS-1123 label"):
        kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, k8s_namespace, body)


def test_missing_stable_deployment_fails_and_touches_nothing(
    k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str, controllers: list[Any], tmp_path: Path,
) -> None:
    ns = k8s_namespace
    apply(k8s_cluster, http_route(ns))
    before = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, "minilm")
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path))
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, "gateway-api"))
    cr = wait_for(phase_is(kube, ns, "Failed"), 60, "Failed")
    assert f"stable Deployment {ns}/minilm not found" in cr["status"]["message"]
    after = kube.get_custom("gateway.networking.k8s.io", "v1", "httproutes", ns, "minilm")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    with pytest.raises(NotFoundError):
        kube.get_deployment(ns, "minilm-canary")
    reasons = [e["reason"] for e in kube.list_events(ns, "involvedObject.kind=ModelRollout")]
    assert "Refused" in reasons


def test_an_ended_rollout_is_not_decided_again(k8s_cluster: Any, k8s_namespace: str, kube: KubeClient, crd: str) -> None:
    """The Reconciler in-process: a refused rollout, reconciled again, writes nothing and touches nothing
    (its spec is not even parsed into a rollout context); the history keeps its one Refused entry."""
    from controlplane.app.kube_edges import TimedSteps
    from controlplane.app.kube_events import KubeEvents
    from controlplane.app.kube_reconcile import Reconciler

    ns = k8s_namespace
    reconciler = Reconciler(kube, TimedSteps(), KubeEvents(kube, "test"))
    kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, rollout(ns, "gateway-api"))
    first = reconciler.reconcile(ns, "minilm")
    assert first.wrote and first.requeue_after is None
    again = reconciler.reconcile(ns, "minilm")
    assert (again.wrote, again.requeue_after) == (False, None)
    cr = get_rollout(kube, ns)
    assert cr["status"]["phase"] == "Failed" and [e["kind"] for e in cr["status"]["history"]] == ["Refused"]
    assert cr["metadata"]["resourceVersion"] == first.resource_version
