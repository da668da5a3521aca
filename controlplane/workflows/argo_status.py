"""Pure mapping of an Argo ``Workflow`` object (a dict, as the API server returns it) to the
engines' result structure. No I/O: the Argo adapter fetches, this reads.

What the workflow-controller writes and what is read here:
``status.phase`` (Pending | Running | Succeeded | Failed | Error), ``status.message``,
``status.nodes`` (or gzip+base64 ``status.compressedNodes``): per node ``displayName`` (the
DAG task, i.e. the check), ``templateName``, ``type`` (Pod, Retry, Skipped, ...), ``phase``,
``message`` and ``outputs`` (``parameters`` with the step's ``status``; ``result``: the
step's stdout, the JSON of ``ctl validate -o json``).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.ports import CheckOutcome, WorkflowState
from controlplane.workflows.dag import ValidationDag
from controlplane.workflows.params import run_param
from controlplane.workflows.results import FAILING, PASSING, TERMINAL_PHASES, numeric_metrics
from controlplane.workflows.template import STATUS_PARAM

WORKFLOW_PHASES = frozenset({"Pending", "Running"}) | TERMINAL_PHASES
_NODE_PREFERENCE = {"Retry": 0, "Pod": 1, "Skipped": 2}
# The workflow-controller's message for a step whose pod it did not create because the Workflow was
# shutting down (v3.7 workflowpod.go: "workflow shutdown with strategy: Terminate"); a pod it
# killed gets "workflow shutdown with strategy:  Terminate" (two spaces, exec_control.go).
_NOT_CREATED = re.compile(r"^workflow shutdown with strategy: \S")


def parse_result(text: str | None, check: str) -> dict[str, Any]:
    """The entry for ``check`` in ``ctl validate -o json`` output: ``status``, ``summary``,
    ``metrics``, ``run_id`` (each only when present). Unparseable output gives ``{}``."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    item = _find_check(data, check)
    if item is None:
        return {}
    result: dict[str, Any] = {}
    status = item.get("status")
    if isinstance(status, str) and status in PASSING | FAILING:
        result["status"] = status
    summary = item.get("summary") or item.get("message")
    findings = item.get("findings")
    if not summary and isinstance(findings, list) and findings:
        summary = "; ".join(str(f) for f in findings[:2])
    if summary:
        result["summary"] = " ".join(str(summary).split())
    metrics = item.get("metrics")
    if isinstance(metrics, Mapping):
        result["metrics"] = numeric_metrics(metrics)
    run_id = item.get("run_id") or (data.get("run_id") if isinstance(data, Mapping) else None)
    if isinstance(run_id, str) and run_id:
        result["run_id"] = run_id
    return result


def _find_check(data: Any, check: str) -> Mapping[str, Any] | None:
    if isinstance(data, Mapping):
        if data.get("check") == check:
            return data
        for key in ("results", "checks"):
            found = _find_check(data.get(key), check)
            if found is not None:
                return found
        value = data.get(check)
        return value if isinstance(value, Mapping) else None
    if isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping) and item.get("check") == check:
                return item
    return None


def step_status(check: str, exit_code: int, output: str | None) -> str:
    """The status a step reports: its exit code (0 ok, 1 failed check, else error),
    refined by the check's own status in the JSON (e.g. ``warning``)."""
    reported = parse_result(output, check).get("status")
    if exit_code == 0:
        return reported if reported in PASSING else "passed"
    if exit_code == 1:
        return reported if reported in FAILING else "failed"
    return "error"


def workflow_nodes(status: Mapping[str, Any]) -> dict[str, Any]:
    nodes = status.get("nodes")
    if isinstance(nodes, Mapping):
        return dict(nodes)
    compressed = status.get("compressedNodes")
    if isinstance(compressed, str) and compressed:
        try:
            return dict(json.loads(gzip.decompress(base64.b64decode(compressed))))
        except (ValueError, OSError, TypeError):
            return {}
    return {}


def selected_checks(workflow: Mapping[str, Any], dag: ValidationDag) -> tuple[str, ...]:
    """The checks this Workflow runs, read back from its ``run-<check>`` parameters."""
    params = {
        p.get("name"): p.get("value")
        for p in ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
        if isinstance(p, Mapping)
    }
    return tuple(n for n in dag.names if str(params.get(run_param(n), "true")).lower() == "true")


def find_node(nodes: Mapping[str, Any], check: str) -> Mapping[str, Any] | None:
    """The node of a check's DAG task: by displayName (the Retry node when retried), else a
    pod node of the check's template."""
    by_name = [n for n in nodes.values() if isinstance(n, Mapping) and n.get("displayName") == check]
    if by_name:
        return min(by_name, key=lambda n: _NODE_PREFERENCE.get(str(n.get("type")), 9))
    pods = [
        n
        for n in nodes.values()
        if isinstance(n, Mapping) and n.get("templateName") == check and n.get("type") == "Pod"
    ]
    return max(pods, key=lambda n: str(n.get("startedAt") or "")) if pods else None


def _output_param(node: Mapping[str, Any], name: str) -> str | None:
    for param in (node.get("outputs") or {}).get("parameters") or []:
        if isinstance(param, Mapping) and param.get("name") == name:
            value = param.get("value")
            return None if value is None else str(value)
    return None


def never_started(node: Mapping[str, Any], nodes: Mapping[str, Any]) -> bool:
    """A step the controller failed without creating its pod, because the Workflow was being shut
    down when the DAG reached it (``workflow shutdown with strategy: Terminate`` on each attempt)."""
    if node.get("type") == "Retry":
        attempts = [nodes.get(c) for c in node.get("children") or []]
        attempts = [a for a in attempts if isinstance(a, Mapping)]
    else:
        attempts = [node]
    return all(_NOT_CREATED.match(str(a.get("message") or "")) for a in attempts)


def node_outcome(
    check: str, node: Mapping[str, Any] | None, workflow_done: bool, nodes: Mapping[str, Any] | None = None
) -> CheckOutcome:
    if node is None:
        return CheckOutcome(check, "skipped", "not run") if workflow_done else CheckOutcome(check, "pending")
    phase = str(node.get("phase") or "Pending")
    message = " ".join(str(node.get("message") or "").split())
    if phase in ("Failed", "Error") and never_started(node, nodes or {}):
        return CheckOutcome(check, "skipped", f"not run: {message or 'workflow shut down'}")
    outputs = node.get("outputs") or {}
    parsed = parse_result(outputs.get("result"), check)
    reported = _output_param(node, STATUS_PARAM)
    if phase == "Succeeded":
        status = reported if reported in PASSING else parsed.get("status", "passed")
        status = status if status in PASSING else "passed"
    elif phase == "Failed":
        status = reported if reported in FAILING else ("failed" if parsed.get("status") == "failed" else "error")
    elif phase == "Error":
        status = "error"
    elif phase in ("Skipped", "Omitted"):
        return CheckOutcome(check, "skipped", message or "not run")
    elif phase == "Running":
        status = "running" if not workflow_done else "error"
    else:
        status = "pending" if not workflow_done else "skipped"
    summary = parsed.get("summary") or message
    return CheckOutcome(check, status, summary, parsed.get("metrics", {}), run_id=parsed.get("run_id", ""),
                        seconds=node_seconds(node) if status not in ("pending", "running") else None)


def node_seconds(node: Mapping[str, Any]) -> float | None:
    """``finishedAt - startedAt`` of a node (RFC 3339, as the controller writes them), or None."""
    try:
        started = datetime.fromisoformat(str(node["startedAt"]).replace("Z", "+00:00"))
        finished = datetime.fromisoformat(str(node["finishedAt"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, (finished - started).total_seconds())


def workflow_state(workflow: Mapping[str, Any], dag: ValidationDag, handle: str) -> WorkflowState:
    """Map a Workflow to the engines' result: phase, and one outcome per selected check in DAG order."""
    status = workflow.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    if phase not in WORKFLOW_PHASES:
        phase = "Pending"
    done = phase in TERMINAL_PHASES
    nodes = workflow_nodes(status)
    outcomes = tuple(node_outcome(c, find_node(nodes, c), done, nodes) for c in selected_checks(workflow, dag))
    message = " ".join(str(status.get("message") or "").split())
    return WorkflowState(handle, phase, outcomes, message)
