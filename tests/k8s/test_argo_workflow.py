"""``--engine argo`` against the real API server with Argo's full upstream CRDs.

There is no Argo workflow-controller here (and no container runtime for its pods: kwok nodes
only fake them), so after a Workflow is accepted the tests write its status themselves, as the
workflow-controller does: an update of the whole object (the Workflow CRD has no status
subresource), validated by the API server against Argo's own status schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.adapters.kube import KubeClient
from controlplane.errors import InputError
from controlplane.ports import CheckOutcome
from controlplane.workflows import VALIDATION_DAG, LocalEngine, request_from_ref, state_to_dict, validate_with_engine
from controlplane.workflows.argo_engine import GROUP, VERSION, WORKFLOWS, ArgoEngine
from controlplane.workflows.results import CHECK_KEYS, RESULT_KEYS
from tests.cluster.harness import Cluster

pytestmark = pytest.mark.k8s
TEMPLATE = Path(__file__).resolve().parents[2] / "workflows" / "validation-template.yaml"
MLFLOW = "http://mlflow.mlops.svc:5000"


@pytest.fixture()
def kube(k8s_cluster: Cluster) -> Iterator[KubeClient]:
    client = KubeClient(str(k8s_cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture()
def engine(k8s_cluster: Cluster, kube: KubeClient, k8s_namespace: str) -> ArgoEngine:
    k8s_cluster.kubectl("apply", "--server-side", "-n", k8s_namespace, "-f", str(TEMPLATE))
    return ArgoEngine(kube, mlflow_tracking_uri=MLFLOW, namespace=k8s_namespace, poll_interval_s=0.2)


def _workflows(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    return kube.list_custom(GROUP, VERSION, WORKFLOWS, namespace)


def test_template_passes_server_side_validation(k8s_cluster: Cluster, k8s_namespace: str) -> None:
    result = k8s_cluster.kubectl("apply", "--dry-run=server", "-n", k8s_namespace, "-f", str(TEMPLATE), check=False)
    assert result.returncode == 0, result.stderr
    broken = TEMPLATE.read_text().replace("entrypoint: validate", "entrypoint: {bad: 1}")
    result = k8s_cluster.kubectl("apply", "--dry-run=server", "-n", k8s_namespace, "-f", "-", input=broken, check=False)
    assert result.returncode != 0 and "entrypoint" in result.stderr


def test_submitted_workflow_is_accepted_and_resubmission_is_idempotent(engine: ArgoEngine, kube: KubeClient) -> None:
    request = request_from_ref("minilm:v2", "tokenizer-parity,long-seq-memory", VALIDATION_DAG)
    handle = engine.submit(request)
    assert engine.submit(request) == handle
    [workflow] = _workflows(kube, engine.namespace)
    assert f"{engine.namespace}/{workflow['metadata']['name']}" == handle
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "attention-model-validation"}
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert params["model"] == "minilm:v2" and params["mlflow-tracking-uri"] == MLFLOW
    assert params["run-quantization-accuracy"] == "false" and params["run-long-seq-memory"] == "true"
    state = engine.poll(handle)
    assert state.phase == "Pending" and [o.status for o in state.checks] == ["pending", "pending"]


@pytest.mark.parametrize(
    ("ref", "checks", "template"),
    [("minilm:v2", "nope", None), ("minilm", None, None), ("minilm:v2", None, "missing-template")],
)
def test_bad_input_is_refused_before_anything_is_created(
    kube: KubeClient, k8s_namespace: str, engine: ArgoEngine, ref: str, checks: str | None, template: str | None
) -> None:
    target = engine if template is None else ArgoEngine(kube, mlflow_tracking_uri=MLFLOW, namespace=k8s_namespace,
                                                       template=template)
    with pytest.raises(InputError):
        target.submit(request_from_ref(ref, checks, VALIDATION_DAG))
    assert _workflows(kube, k8s_namespace) == []


def _result(check: str, status: str, metric: float) -> str:
    """What the step's `ctl validate NAME:vN --checks CHECK -o json` prints (its local engine's result)."""
    phase = "Succeeded" if status in ("passed", "warning") else "Failed"
    return json.dumps({"ref": "minilm:v2", "engine": "local", "handle": "local/validate-minilm-v2-0", "phase": phase,
                       "message": "", "checks": [{"check": check, "status": status, "summary": f"{check} says {status}",
                                                  "metrics": {"score": metric}, "run_id": f"run-{check}"}]})


def _pod_node(wf: str, check: str, phase: str, status: str | None, exit_code: str, result: str | None) -> dict[str, Any]:
    """A task's Retry node and its Pod child, with the fields the workflow-controller fills in."""
    outputs: dict[str, Any] = {"exitCode": exit_code}
    if status is not None:
        outputs["parameters"] = [{"name": "status", "value": status,
                                  "valueFrom": {"path": "/tmp/ctl-validate/status", "default": "error"}}]
    if result is not None:
        outputs["result"] = result
    times = {"startedAt": "2026-11-23T10:00:00Z", "finishedAt": "2026-11-23T10:01:00Z"}
    retry = {"id": f"{wf}-{check}", "name": f"{wf}.{check}", "displayName": check, "type": "Retry",
             "templateName": check, "phase": phase, "boundaryID": wf, "children": [f"{wf}-{check}-0"],
             "outputs": outputs, **times}
    pod = {"id": f"{wf}-{check}-0", "name": f"{wf}.{check}(0)", "displayName": f"{check}(0)", "type": "Pod",
           "templateName": check, "phase": phase, "boundaryID": wf, "outputs": outputs, "hostNodeName": "kwok-node-0",
           **times}
    return {retry["id"]: retry, pod["id"]: pod}


def _write_status(kube: KubeClient, handle: str, phase: str, nodes: dict[str, Any], message: str = "") -> None:
    namespace, name = handle.split("/")
    workflow = kube.get_custom(GROUP, VERSION, WORKFLOWS, namespace, name)
    root = {name: {"id": name, "name": name, "displayName": name, "type": "DAG", "templateName": "validate",
                   "phase": phase, "children": [n for n in nodes if n.endswith(("parity", "accuracy", "collapse",
                                                                                "memory"))]}}
    workflow["metadata"].setdefault("labels", {})["workflows.argoproj.io/phase"] = phase
    workflow["status"] = {"phase": phase, "startedAt": "2026-11-23T10:00:00Z", "nodes": {**root, **nodes},
                          **({"message": message} if message else {}),
                          **({"finishedAt": "2026-11-23T10:05:00Z"} if phase in ("Succeeded", "Failed", "Error") else {})}
    kube.replace_custom(GROUP, VERSION, WORKFLOWS, namespace, name, workflow)  # stale resourceVersion: 409


def test_statuses_written_like_the_workflow_controller_map_to_check_results(engine: ArgoEngine, kube: KubeClient) -> None:
    handle = engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG))
    wf = handle.split("/")[1]
    running = _pod_node(wf, "tokenizer-parity", "Running", None, "", None)
    _write_status(kube, handle, "Running", running)
    assert [o.status for o in engine.poll(handle).checks] == ["running", "pending", "pending", "pending"]

    nodes = {
        **_pod_node(wf, "tokenizer-parity", "Succeeded", "passed", "0", _result("tokenizer-parity", "passed", 1.0)),
        **_pod_node(wf, "quantization-accuracy", "Failed", "failed", "1",
                    _result("quantization-accuracy", "failed", 0.71)),
        **_pod_node(wf, "head-collapse", "Succeeded", "warning", "0", _result("head-collapse", "warning", 0.93)),
    }
    nodes[f"{wf}-long-seq-memory"] = {"id": f"{wf}-long-seq-memory", "name": f"{wf}.long-seq-memory",
                                      "displayName": "long-seq-memory", "type": "Skipped", "phase": "Omitted",
                                      "message": "omitted: depends condition not met", "boundaryID": wf}
    _write_status(kube, handle, "Failed", nodes, "child 'quantization-accuracy' failed")
    state = engine.wait(handle, timeout=10)
    assert state.phase == "Failed"
    by = {o.check: o for o in state.checks}
    assert [o.check for o in state.checks] == list(VALIDATION_DAG.names)
    assert by["tokenizer-parity"] == CheckOutcome("tokenizer-parity", "passed", "tokenizer-parity says passed",
                                                  {"score": 1.0}, run_id="run-tokenizer-parity", seconds=60.0)
    assert by["quantization-accuracy"].status == "failed" and by["quantization-accuracy"].metrics == {"score": 0.71}
    assert by["head-collapse"].status == "warning"
    assert by["long-seq-memory"].status == "skipped"


def test_error_phase_and_lost_pod_map_to_error(engine: ArgoEngine, kube: KubeClient) -> None:
    handle = engine.submit(request_from_ref("minilm:v3", "tokenizer-parity", VALIDATION_DAG))
    wf = handle.split("/")[1]
    nodes = _pod_node(wf, "tokenizer-parity", "Error", None, "", None)
    nodes[f"{wf}-tokenizer-parity"]["message"] = "pod deleted"
    _write_status(kube, handle, "Error", nodes, "pod deleted")
    state = engine.poll(handle)
    assert state.phase == "Error"
    assert state.checks == (CheckOutcome("tokenizer-parity", "error", "pod deleted", seconds=60.0),)


def test_succeeded_workflow_has_the_same_result_shape_as_the_local_engine(engine: ArgoEngine, kube: KubeClient) -> None:
    request = request_from_ref("minilm:v2", "tokenizer-parity,head-collapse", VALIDATION_DAG)
    handle = engine.submit(request)
    wf = handle.split("/")[1]
    nodes = {**_pod_node(wf, "tokenizer-parity", "Succeeded", "passed", "0", _result("tokenizer-parity", "passed", 1.0)),
             **_pod_node(wf, "head-collapse", "Succeeded", "passed", "0", _result("head-collapse", "passed", 0.5))}
    _write_status(kube, handle, "Succeeded", nodes)
    argo = state_to_dict(engine.wait(handle, timeout=10))

    def runner(_: Any, check: str) -> CheckOutcome:
        return CheckOutcome(check, "passed", f"{check} says passed", {"score": 1.0 if check == "tokenizer-parity" else 0.5},
                            run_id=f"run-{check}")

    local_engine = LocalEngine(runner)
    local = state_to_dict(local_engine.wait(local_engine.submit(request), timeout=10))
    assert argo["phase"] == local["phase"] == "Succeeded"
    assert [c.pop("seconds") for c in argo["checks"]] == [60.0, 60.0]  # the nodes' finishedAt - startedAt
    assert all(c.pop("seconds") >= 0 for c in local["checks"])
    assert argo["checks"] == local["checks"]
    assert set(argo) == set(local)


def test_abort_terminates_the_workflow(engine: ArgoEngine, kube: KubeClient) -> None:
    handle = engine.submit(request_from_ref("minilm:v2", None, VALIDATION_DAG))
    wf = handle.split("/")[1]
    _write_status(kube, handle, "Running", _pod_node(wf, "tokenizer-parity", "Running", None, "", None))
    engine.terminate(handle)
    workflow = kube.get_custom(GROUP, VERSION, WORKFLOWS, engine.namespace, wf)
    assert workflow["spec"]["shutdown"] == "Terminate"

    # what the controller then writes: the running step's pod killed, and the steps the DAG reaches
    # afterwards (their dependency finished) failed without a pod; those never ran: skipped, not error
    nodes = _pod_node(wf, "tokenizer-parity", "Failed", None, "143", None)
    nodes[f"{wf}-tokenizer-parity"]["message"] = "Stopped with strategy 'Terminate'"
    nodes[f"{wf}-tokenizer-parity-0"]["message"] = "workflow shutdown with strategy:  Terminate"  # sic, 2 spaces
    for check in ("quantization-accuracy", "head-collapse"):
        never = _pod_node(wf, check, "Failed", None, "", None)
        never[f"{wf}-{check}"]["message"] = "Stopped with strategy 'Terminate'"
        never[f"{wf}-{check}-0"].update(message="workflow shutdown with strategy: Terminate", hostNodeName=None)
        nodes.update(never)
    _write_status(kube, handle, "Failed", nodes, "Stopped with strategy 'Terminate'")
    state = engine.poll(handle)
    assert [(o.check, o.status) for o in state.checks] == [
        ("tokenizer-parity", "error"), ("quantization-accuracy", "skipped"), ("head-collapse", "skipped"),
        ("long-seq-memory", "skipped")]
    assert state.checks[1].summary.startswith("not run")


def test_wait_past_the_deadline_terminates_and_fails(engine: ArgoEngine, kube: KubeClient) -> None:
    handle = engine.submit(request_from_ref("minilm:v4", "head-collapse", VALIDATION_DAG))
    state = engine.wait(handle, timeout=1.0)
    assert state.phase == "Failed" and "timed out" in state.message
    workflow = kube.get_custom(GROUP, VERSION, WORKFLOWS, engine.namespace, handle.split("/")[1])
    assert workflow["spec"]["shutdown"] == "Terminate"


def test_validate_with_engine_argo_submits_follows_and_times_out(engine: ArgoEngine, kube: KubeClient) -> None:
    result, passed = validate_with_engine("minilm:v5", "tokenizer-parity", engine="argo", kube=kube,
                                          namespace=engine.namespace, mlflow_tracking_uri=MLFLOW, timeout_s=1.0)
    assert not passed and result["phase"] == "Failed" and "timed out" in result["message"]
    [workflow] = _workflows(kube, engine.namespace)
    assert workflow["spec"]["shutdown"] == "Terminate" and workflow["spec"]["activeDeadlineSeconds"] == 1


def _ctl(*args: str, env: dict[str, str]) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "controlplane.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_ctl_validate_engines_print_the_same_shape(engine: ArgoEngine, k8s_cluster: Cluster, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "KUBECONFIG": str(k8s_cluster.kubeconfig), "MLFLOW_TRACKING_URI": MLFLOW,
           "CONTROLPLANE_HOME": str(tmp_path / "home")}
    argo = _ctl("validate", "minilm:v7", "--checks", "tokenizer-parity", "--engine", "argo", "--namespace",
                engine.namespace, "--timeout", "1", "-o", "json", env=env)
    assert argo.returncode == 1, argo.stderr
    assert len(argo.stderr.strip().splitlines()) == 1 and "timed out" in argo.stderr
    a = json.loads(argo.stdout)  # the local engine's CLI output has these keys too (tests/validators/test_validate_cli.py)
    assert set(a) == RESULT_KEYS and [set(c) for c in a["checks"]] == [CHECK_KEYS]
    assert a["phase"] == "Failed" and a["engine"] == "argo" and a["ref"] == "minilm:v7"
    env.pop("MLFLOW_TRACKING_URI")  # local: the project's own store under CONTROLPLANE_HOME (no such model there)
    local = _ctl("validate", "minilm:v7", "--checks", "tokenizer-parity", "-o", "json", env=env)
    assert local.returncode == 2 and "not found" in local.stderr and len(local.stderr.strip().splitlines()) == 1
    bad = _ctl("validate", "minilm:v7", "--checks", "nope", "--engine", "argo", "--namespace", engine.namespace, env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
