"""The validation template run by Argo's real workflow-controller (built from its Go module).

The controller validates the Workflow against the template, walks the DAG, creates the step pods
(scheduled by the real kube-scheduler onto kwok nodes, the GPU step onto the GPU node) and writes
the Workflow status. What cannot run here is inside the pods: kwok nodes have no container
runtime, so the test plays argoexec and the kubelet for each step: it writes the step's
WorkflowTaskResult (outputs) and then the pod's terminated container statuses."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.adapters.kube_workloads import served_uri
from controlplane.app import kube_commands
from controlplane.app import kube_rollout as cr_
from controlplane.workflows import VALIDATION_DAG, request_from_ref
from controlplane.workflows.argo_engine import GROUP, VERSION, WORKFLOWS, ArgoEngine
from tests.cluster import binaries
from tests.cluster.harness import Cluster
from tests.cluster.procs import die_with_parent
from tests.k8s.conftest import (
    ControllerProcess,
    apply,
    get_rollout,
    http_route,
    phase_is,
    rollout,
    stable_objects,
    wait_for,
)

pytestmark = [pytest.mark.k8s, pytest.mark.slow]
TEMPLATE = Path(__file__).resolve().parents[2] / "workflows" / "validation-template.yaml"
MLFLOW = "http://mlflow.mlops.svc:5000"


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def argo_crds(k8s_cluster: Cluster) -> None:
    """The rest of Argo's CRDs, which the controller's informers watch."""
    files = binaries.extra_crds("argo-workflows")
    if not files:
        pytest.skip("Argo's extra CRDs are not fetched: run `make cluster-build`")
    for file in files:
        result = k8s_cluster.kubectl("create", "-f", str(file), check=False)
        assert result.returncode == 0 or "AlreadyExists" in result.stderr, result.stderr
    k8s_cluster.kubectl("wait", "--for=condition=Established", "--timeout=120s", "crd", "--all")


@pytest.fixture()
def controller(k8s_cluster: Cluster, argo_crds: None, k8s_namespace: str, tmp_path: Path) -> Iterator[str]:
    binary = binaries.argo_controller()
    if not binary.is_file():
        pytest.skip("Argo's workflow-controller is not built: run `make cluster-build`")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "workflow-controller-configmap"},
              "data": {"metricsConfig": "{enabled: false}", "telemetryConfig": "{enabled: false}"}}
    k8s_cluster.kubectl("apply", "-n", k8s_namespace, "-f", "-", input=json.dumps(config))
    k8s_cluster.kubectl("apply", "--server-side", "-n", k8s_namespace, "-f", str(TEMPLATE))
    kubeconfig = json.loads(k8s_cluster.kubeconfig.read_text())
    kubeconfig["contexts"][0]["context"]["namespace"] = k8s_namespace
    path = tmp_path / "argo.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    log = (tmp_path / "workflow-controller.log").open("wb")
    env = {**os.environ, "LEADER_ELECTION_DISABLE": "true"}
    proc = subprocess.Popen(
        [str(binary), f"--kubeconfig={path}", "--namespaced", f"--managed-namespace={k8s_namespace}",
         "--executor-image=quay.io/argoproj/argoexec:v3.7.12", "--workflow-workers=4"],
        stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent,
    )
    try:
        time.sleep(3)
        assert proc.poll() is None, (tmp_path / "workflow-controller.log").read_text()[-2000:]
        yield k8s_namespace
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _pods(kube: KubeClient, namespace: str, workflow: str) -> list[dict[str, Any]]:
    items = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                         query={"labelSelector": f"workflows.argoproj.io/workflow={workflow}"}, verb="list")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _scheduled(kube: KubeClient, namespace: str, workflow: str, done: set[str], at_least: int) -> list[dict[str, Any]]:
    """The workflow's scheduled pods not in ``done``, once there are ``at_least`` of them (else [])."""
    pods = [p for p in _pods(kube, namespace, workflow)
            if p["metadata"]["name"] not in done and p.get("spec", {}).get("nodeName")]
    return pods if len(pods) >= at_least else []


def _check_of(pod: dict[str, Any]) -> str:
    return next(e["value"] for c in pod["spec"]["containers"] if c["name"] == "main" for e in c["env"]
                if e["name"] == "CHECK")


def _run_step(kube: KubeClient, pod: dict[str, Any], workflow: str, status: str, exit_code: int) -> None:
    """What argoexec and the kubelet would write for a finished step."""
    ns, check = pod["metadata"]["namespace"], _check_of(pod)
    node_id = pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"]
    result = json.dumps({"ref": "minilm:v2", "engine": "local", "handle": "local/x", "message": "",  # ctl validate -o json
                         "phase": "Succeeded" if exit_code == 0 else "Failed",
                         "checks": [{"check": check, "status": status, "metrics": {"score": 0.9},
                                     "summary": f"{check}: {status}", "run_id": f"run-{check}"}]})
    kube.create_custom(GROUP, VERSION, "workflowtaskresults", ns, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowTaskResult",
        "metadata": {"name": node_id, "labels": {"workflows.argoproj.io/workflow": workflow,
                                                 "workflows.argoproj.io/report-outputs-completed": "true"}},
        "outputs": {"parameters": [{"name": "status", "value": status}], "result": result,
                    "exitCode": str(exit_code)},
    })
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}
    failed = {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed",
                             "startedAt": now, "finishedAt": now}}
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
                 "state": failed if c["name"] == "main" else done} for c in pod["spec"]["containers"]]
    inits = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0, "state": done}
             for c in pod["spec"].get("initContainers") or []]
    phase = "Succeeded" if exit_code == 0 else "Failed"
    kube.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status",
                 body={"status": {"phase": phase, "containerStatuses": statuses, "initContainerStatuses": inits}},
                 content_type="application/merge-patch+json")


def test_real_controller_runs_the_dag_in_order_and_the_engine_maps_its_status(
    controller: str, k8s_cluster: Cluster
) -> None:
    kube = KubeClient(str(k8s_cluster.kubeconfig))
    engine = ArgoEngine(kube, mlflow_tracking_uri=MLFLOW, namespace=controller, poll_interval_s=0.3)
    handle = engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG))
    workflow = handle.split("/")[1]
    done: set[str] = set()
    order: list[set[str]] = []
    # tokenizer-parity; then the two middle checks together; then long-seq-memory. Each wave is awaited
    # until as many pods as it has are scheduled: a pod of a later wave appearing early shows in `order`.
    for size in (1, 2, 1):
        pods = _wait(lambda: _scheduled(kube, controller, workflow, done, size), 90,  # noqa: B023 (called at once)
                     f"{size} step pod(s) of the next wave, scheduled")
        order.append({_check_of(p) for p in pods})
        for pod in pods:
            check = _check_of(pod)
            if check == "long-seq-memory":
                assert pod["spec"]["nodeName"] == "kwok-gpu-0"
                limits = next(c for c in pod["spec"]["containers"] if c["name"] == "main")["resources"]["limits"]
                assert limits["nvidia.com/gpu"] == "1"
            status = "warning" if check == "head-collapse" else "passed"
            _run_step(kube, pod, workflow, status, 0)
            done.add(pod["metadata"]["name"])
    assert order == [{"tokenizer-parity"}, {"quantization-accuracy", "head-collapse"}, {"long-seq-memory"}]
    state = engine.wait(handle, timeout=90)
    assert state.phase == "Succeeded", (state, kube.get_custom(GROUP, VERSION, WORKFLOWS, controller, workflow)["status"])
    assert [(o.check, o.status) for o in state.checks] == [
        ("tokenizer-parity", "passed"), ("quantization-accuracy", "passed"), ("head-collapse", "warning"),
        ("long-seq-memory", "passed")]
    assert all(o.metrics == {"score": 0.9} for o in state.checks)


def test_real_controller_fails_the_run_on_a_failed_check_and_honours_terminate(
    controller: str, k8s_cluster: Cluster
) -> None:
    kube = KubeClient(str(k8s_cluster.kubeconfig))
    engine = ArgoEngine(kube, mlflow_tracking_uri=MLFLOW, namespace=controller, poll_interval_s=0.3)
    failing = engine.submit(request_from_ref("minilm:v3", "tokenizer-parity,head-collapse", VALIDATION_DAG))
    wf = failing.split("/")[1]
    [pod] = _wait(lambda: [p for p in _pods(kube, controller, wf) if p["spec"].get("nodeName")], 90, "first pod")
    _run_step(kube, pod, wf, "failed", 1)
    # the failed check's dependent still runs (depends on completion, failFast: false) and reports its verdict
    [pod] = _wait(lambda: [p for p in _pods(kube, controller, wf) if p["spec"].get("nodeName")
                           and _check_of(p) == "head-collapse"], 90, "the dependent's pod after a failure")
    _run_step(kube, pod, wf, "passed", 0)
    state = engine.wait(failing, timeout=90)
    assert state.phase == "Failed"
    assert [(o.check, o.status) for o in state.checks] == [("tokenizer-parity", "failed"), ("head-collapse", "passed")]
    assert [o.run_id for o in state.checks] == ["run-tokenizer-parity", "run-head-collapse"]

    aborted = engine.submit(request_from_ref("minilm:v4", None, VALIDATION_DAG))
    wf = aborted.split("/")[1]
    _wait(lambda: _pods(kube, controller, wf), 90, "first pod")
    engine.terminate(aborted)
    state = engine.wait(aborted, timeout=90)
    assert state.phase == "Failed"
    assert state.checks[0].status in ("error", "failed") and state.checks[-1].status == "skipped"


# ---- the Validating phase of a ModelRollout, on `ctl controller run --validation argo` --------------------------


def _workflow_of(kube: KubeClient, namespace: str, model: str) -> str | None:
    items = kube.request("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{WORKFLOWS}", verb="list")["items"]
    names = [w["metadata"]["name"] for w in items if (w["spec"].get("arguments") or {}).get("parameters") and any(
        p["name"] == "model" and p["value"].startswith(f"{model}:v") for p in w["spec"]["arguments"]["parameters"])]
    return names[0] if names else None


def _play(kube: KubeClient, namespace: str, workflow: str, statuses: dict[str, str]) -> None:
    """Finish each step of ``workflow`` as its pod appears, with the status given for its check."""
    done: set[str] = set()
    while len(done) < len(statuses):
        pods = _wait(lambda: [p for p in _pods(kube, namespace, workflow) if p["metadata"]["name"] not in done
                              and p.get("spec", {}).get("nodeName")], 90, f"a step pod of {workflow}")
        for pod in pods:
            status = statuses[_check_of(pod)]
            _run_step(kube, pod, workflow, status, 0 if status in ("passed", "warning") else 1)
            done.add(pod["metadata"]["name"])
        if any(s not in ("passed", "warning") for s in statuses.values()):
            return  # the gate fails fast: it terminates the run after a failed step


def _registered(tracking_uri: str, name: str, versions: int) -> Any:
    """``name`` v1..vN in the real MLflow server (no artifacts: the controller only moves the alias)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, source=f"s3://unused/{name}")
    return client


@pytest.mark.mlflow_server
def test_rollout_validating_phase_runs_the_workflow_and_follows_its_verdict(
    controller: str, k8s_cluster: Cluster, crd: str, controllers: list[ControllerProcess], tmp_path: Path,
    mlflow_server: str,
) -> None:
    """The controller submits the validation Workflow when a rollout enters Validating, moves no
    traffic until it Succeeded, fails the rollout (stable untouched, incident evidence naming the
    check) when a step failed, and terminates the Workflow when the rollout is aborted. The
    controller's MLFLOW_TRACKING_URI is a real server: the workflow reads it, the promotion moves
    the alias in it."""
    ns = controller
    kube = KubeClient(str(k8s_cluster.kubeconfig))
    checks = ["tokenizer-parity", "head-collapse"]
    registry = _registered(mlflow_server, "good", 3)
    for name in ("good", "bad", "aborted"):
        apply(k8s_cluster, *stable_objects(ns, name=name), http_route(ns, name=name))
    controllers.append(ControllerProcess(k8s_cluster.kubeconfig, ns, tmp_path, extra_args=("--validation=argo",),
                                         extra_env={"MLFLOW_TRACKING_URI": mlflow_server}))
    for name in ("good", "bad", "aborted"):
        body = rollout(ns, "gateway-api", steps=(50, 100), step_s=1.0, name=name, model=name)
        body["spec"].update(skipValidation=False, checks=checks)
        kube.create_custom(cr_.GROUP, cr_.VERSION, cr_.PLURAL, ns, body)

    # good: Validating until both steps passed (weight 0 meanwhile), then the steps, then Promoted
    good = _wait(lambda: _workflow_of(kube, ns, "good"), 60, "the good rollout's workflow")
    assert get_rollout(kube, ns, "good")["status"]["phase"] == "Validating"
    assert (get_rollout(kube, ns, "good")["status"].get("weight") or 0) == 0
    _play(kube, ns, good, {"tokenizer-parity": "passed", "head-collapse": "warning"})
    cr = wait_for(phase_is(kube, ns, "Promoted", name="good"), 120, "good promoted")
    kinds = [e["kind"] for e in cr["status"]["history"]]
    assert kinds.index("ValidationStarted") < kinds.index("ValidationPassed") < kinds.index("StepStarted")
    passed = next(e for e in cr["status"]["history"] if e["kind"] == "ValidationPassed")
    assert passed["evidence"]["workflow"] == f"{ns}/{good}"
    assert passed["evidence"]["checks"] == {"tokenizer-parity": "passed", "head-collapse": "warning"}
    assert registry.get_model_version_by_alias("good", cr["spec"]["alias"]).version == "3"

    # bad: tokenizer-parity fails -> rollout Failed, no traffic moved, stable untouched
    bad = _wait(lambda: _workflow_of(kube, ns, "bad"), 60, "the bad rollout's workflow")
    _play(kube, ns, bad, {"tokenizer-parity": "failed", "head-collapse": "passed"})
    cr = wait_for(phase_is(kube, ns, "Failed", name="bad"), 120, "bad failed")
    failed = next(e for e in cr["status"]["history"] if e["kind"] == "ValidationFailed")
    assert failed["evidence"]["failure_mode"] == "tokenizer-mismatch"
    assert failed["evidence"]["checks"]["tokenizer-parity"] == "failed"
    assert "StepStarted" not in [e["kind"] for e in cr["status"]["history"]]
    assert served_uri(kube.get_deployment(ns, "bad")) == "models:/minilm/2"  # as stable_objects made it
    # the gate failed fast: head-collapse was still to run, and the Workflow was told to terminate
    assert failed["evidence"]["checks"]["head-collapse"] in ("pending", "running"), failed["evidence"]
    workflow = kube.get_custom(GROUP, VERSION, WORKFLOWS, ns, bad)
    assert workflow["spec"].get("shutdown") == "Terminate", workflow["spec"]

    # aborted while validating -> the Workflow is told to terminate
    aborted = _wait(lambda: _workflow_of(kube, ns, "aborted"), 60, "the aborted rollout's workflow")
    kube_commands.intent(kube, ns, "aborted", "abort")
    wait_for(phase_is(kube, ns, "Aborted", name="aborted"), 60, "aborted")
    workflow = kube.get_custom(GROUP, VERSION, WORKFLOWS, ns, aborted)
    assert workflow["spec"].get("shutdown") == "Terminate", workflow["spec"]
    assert controllers[0].terminate() == 0, controllers[0].output()
