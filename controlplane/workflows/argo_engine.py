"""``--engine argo``: validation as an Argo Workflow, through the Kubernetes API.

The Workflow references the WorkflowTemplate rendered from ``controlplane.workflows.template``
(``workflowTemplateRef``) and carries the request as parameters; it is created as a custom
resource with ``KubeClient`` (no Argo Server). Its name is derived from the request, so a
resubmission finds the run already there and reuses it. ``terminate`` sets
``spec.shutdown: Terminate``, as ``argo terminate`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from controlplane.errors import ConflictError, InputError, NotFoundError, TemporaryError
from controlplane.ports import ValidationRequest, WorkflowState
from controlplane.workflows.argo_status import workflow_state
from controlplane.workflows.dag import ValidationDag
from controlplane.workflows.params import (
    PARAM_IMAGE,
    PARAM_MLFLOW,
    check_namespace,
    check_settable,
    normalize_request,
    request_hash,
    workflow_name,
    workflow_parameters,
)
from controlplane.workflows.results import TERMINAL_PHASES, TERMINATED_MESSAGE
from controlplane.workflows.template import TEMPLATE_NAME, VALIDATION_DAG

GROUP = "argoproj.io"
VERSION = "v1alpha1"
WORKFLOWS = "workflows"
WORKFLOW_TEMPLATES = "workflowtemplates"
MANAGED_BY = "attn-controlplane"
HASH_LABEL = "attn-controlplane/request-hash"
MODEL_ANNOTATION = "attn-controlplane/model"
CHECKS_ANNOTATION = "attn-controlplane/checks"
DEFAULT_TIMEOUT_S = 3600.0


class KubeApi(Protocol):
    """The part of ``controlplane.adapters.kube.KubeClient`` this engine uses."""

    def get_custom(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any]: ...

    def create_custom(
        self, group: str, version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]: ...

    def patch_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]: ...


class ArgoEngine:
    """Implements ``ports.WorkflowEngine`` on Argo Workflows. Handles are ``NAMESPACE/NAME``.

    Bad settings (namespace, MLflow URI, image, timeout) raise InputError here; a bad
    request, a missing WorkflowTemplate or one whose parameters differ raise InputError in
    ``submit`` before anything is created."""

    name = "argo"

    def __init__(
        self,
        kube: KubeApi,
        *,
        mlflow_tracking_uri: str,
        namespace: str = "default",
        template: str = TEMPLATE_NAME,
        image: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        service_account: str | None = None,
        dag: ValidationDag = VALIDATION_DAG,
        poll_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kube = kube
        self.namespace = check_namespace(namespace)
        self.template = check_namespace(template)  # a DNS-1123 name, like a namespace
        settable = {PARAM_MLFLOW: mlflow_tracking_uri}
        if image is not None:
            settable[PARAM_IMAGE] = image
        self.settable = check_settable(settable)
        if not timeout_s > 0:
            raise InputError(f"invalid workflow timeout {timeout_s!r}: must be positive")
        self.timeout_s = float(timeout_s)
        if service_account is not None:
            check_namespace(service_account)
        self.service_account = service_account
        self.dag = dag
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.sleep = sleep

    # ---- WorkflowEngine ---------------------------------------------------------------

    def handle_for(self, request: ValidationRequest) -> str:
        request = normalize_request(request, self.dag)
        params = workflow_parameters(request, self.dag, self.settable)
        return f"{self.namespace}/{workflow_name(request, self.template, params)}"

    def submit(self, request: ValidationRequest) -> str:
        request = normalize_request(request, self.dag)
        params = workflow_parameters(request, self.dag, self.settable)
        name = workflow_name(request, self.template, params)
        self._check_template(params)
        body = self.manifest(request, name, params)
        try:
            self.kube.create_custom(GROUP, VERSION, WORKFLOWS, self.namespace, body)
        except ConflictError:  # AlreadyExists: the same request was submitted before
            existing = self.kube.get_custom(GROUP, VERSION, WORKFLOWS, self.namespace, name)
            labels = (existing.get("metadata") or {}).get("labels") or {}
            if labels.get(HASH_LABEL) != body["metadata"]["labels"][HASH_LABEL]:
                raise ConflictError(
                    f"Workflow {self.namespace}/{name} exists but was not created for this request"
                ) from None
        return f"{self.namespace}/{name}"

    def poll(self, handle: str) -> WorkflowState:
        namespace, name = split_handle(handle)
        workflow = self.kube.get_custom(GROUP, VERSION, WORKFLOWS, namespace, name)
        return workflow_state(workflow, self.dag, handle)

    def terminate(self, handle: str) -> None:
        """Stop the Workflow (``spec.shutdown: Terminate``); a finished or missing one is left alone."""
        namespace, name = split_handle(handle)
        try:
            workflow = self.kube.get_custom(GROUP, VERSION, WORKFLOWS, namespace, name)
        except NotFoundError:
            return
        if ((workflow.get("status") or {}).get("phase") or "") in TERMINAL_PHASES:
            return
        self.kube.patch_custom(GROUP, VERSION, WORKFLOWS, namespace, name, {"spec": {"shutdown": "Terminate"}})

    # ---- conveniences -------------------------------------------------------------------

    def wait(self, handle: str, timeout: float | None = None) -> WorkflowState:
        """Follow the Workflow (a watch when the client has one, else polling) until it ends
        or ``timeout`` seconds (default: the engine's) pass; then it is terminated and a
        Failed state is returned."""
        limit = self.timeout_s if timeout is None else timeout
        deadline = self.clock() + limit
        namespace, name = split_handle(handle)
        state: WorkflowState | None = None
        while True:
            try:
                workflow = self.kube.get_custom(GROUP, VERSION, WORKFLOWS, namespace, name)
                state = workflow_state(workflow, self.dag, handle)
                if state.phase in TERMINAL_PHASES:
                    return state
                version = (workflow.get("metadata") or {}).get("resourceVersion")
                followed = self._follow(handle, version, deadline)
                if followed is not None:
                    state = followed
                    if state.phase in TERMINAL_PHASES:
                        return state
                delay = self.poll_interval_s
            except TemporaryError as exc:
                delay = exc.delay
            remaining = deadline - self.clock()
            if remaining <= 0:
                return self._timed_out(handle, limit, state)
            self.sleep(min(max(delay, 0.0), remaining))

    def _follow(self, handle: str, resource_version: str | None, deadline: float) -> WorkflowState | None:
        """Watch the namespace's Workflows for changes to ours until it ends, the stream
        closes or the deadline nears; the last state seen (None without a watch)."""
        watch = getattr(self.kube, "watch_custom", None)
        seconds = int(deadline - self.clock())
        if watch is None or not resource_version or seconds < 1:
            return None
        namespace, name = split_handle(handle)
        state = None
        for event in watch(GROUP, VERSION, WORKFLOWS, namespace, resource_version, min(seconds, 60)):
            obj = event.get("object") or {}
            if event.get("type") in ("ERROR", "DELETED") and (obj.get("metadata") or {}).get("name") in (name, None):
                break
            if (obj.get("metadata") or {}).get("name") != name:
                continue
            state = workflow_state(obj, self.dag, handle)
            if state.phase in TERMINAL_PHASES or self.clock() >= deadline:
                break
        return state

    def _timed_out(self, handle: str, limit: float, last: WorkflowState | None) -> WorkflowState:
        self.terminate(handle)
        message = f"timed out after {limit:g} s; {TERMINATED_MESSAGE}"
        checks = last.checks if last is not None else ()
        return WorkflowState(handle, "Failed", checks, message)

    def manifest(self, request: ValidationRequest, name: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The Workflow object for a (normalized) request."""
        spec: dict[str, Any] = {
            "workflowTemplateRef": {"name": self.template},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in params.items()]},
            # Argo enforces the deadline itself, even when nobody is polling any more.
            "activeDeadlineSeconds": max(1, int(self.timeout_s)),
        }
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Workflow",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": MANAGED_BY,
                    "workflows.argoproj.io/workflow-template": self.template,
                    HASH_LABEL: request_hash(self.template, params),
                },
                "annotations": {
                    MODEL_ANNOTATION: f"{request.model}:v{request.version}",
                    CHECKS_ANNOTATION: ",".join(request.checks),
                },
            },
            "spec": spec,
        }

    def _check_template(self, params: Mapping[str, str]) -> None:
        try:
            template = self.kube.get_custom(GROUP, VERSION, WORKFLOW_TEMPLATES, self.namespace, self.template)
        except NotFoundError:
            raise InputError(
                f"WorkflowTemplate {self.namespace}/{self.template} not found: "
                "kubectl apply -n {ns} -f workflows/validation-template.yaml".format(ns=self.namespace)
            ) from None
        declared = {
            p.get("name")
            for p in ((template.get("spec") or {}).get("arguments") or {}).get("parameters") or []
            if isinstance(p, Mapping)
        }
        missing = sorted(set(params) - declared)
        if missing:
            raise InputError(
                f"WorkflowTemplate {self.namespace}/{self.template} lacks parameter(s) {', '.join(missing)}: "
                "it is out of date, re-apply workflows/validation-template.yaml"
            )


def split_handle(handle: str) -> tuple[str, str]:
    namespace, sep, name = handle.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise InputError(f"invalid Argo workflow handle {handle!r}: expected NAMESPACE/NAME")
    return namespace, name
