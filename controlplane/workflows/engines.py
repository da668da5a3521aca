"""Choosing an engine (``--engine local|argo``) and running one validation to its end."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from controlplane.errors import InputError
from controlplane.ports import ValidationRequest, WorkflowEngine, WorkflowState
from controlplane.workflows.dag import ValidationDag
from controlplane.workflows.local_engine import CheckRunner, LocalEngine
from controlplane.workflows.template import VALIDATION_DAG

if TYPE_CHECKING:
    from controlplane.workflows.argo_engine import KubeApi

ENGINES = ("local", "argo")
DEFAULT_ENGINE = "local"


class WaitingEngine(WorkflowEngine, Protocol):
    def wait(self, handle: str, timeout: float | None = None) -> WorkflowState: ...


def make_engine(
    name: str = DEFAULT_ENGINE,
    *,
    runner: CheckRunner | None = None,
    dag: ValidationDag = VALIDATION_DAG,
    kube: KubeApi | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str = "default",
    mlflow_tracking_uri: str | None = None,
    image: str | None = None,
    timeout_s: float | None = None,
    **argo_options: Any,
) -> WaitingEngine:
    """``local``: the DAG in-process, each check through ``runner`` (the application layer gives the
    validators' runner, ``controlplane.app.validation_checks``). ``argo``: Workflows from the
    WorkflowTemplate, through ``kube`` (default: a ``KubeClient`` for ``kubeconfig``/``context``);
    the pods report to ``mlflow_tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, which must be a
    server the pods can reach).
    Unknown engine or bad settings: InputError."""
    if name not in ENGINES:
        raise InputError(f"unknown workflow engine {name!r}; use one of: {', '.join(ENGINES)}")
    if name == "local":
        if runner is None:
            raise ValueError("the local engine runs each check through a runner: pass runner=")
        return LocalEngine(runner, dag)
    from controlplane.workflows.argo_engine import DEFAULT_TIMEOUT_S, ArgoEngine

    uri = mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise InputError("the argo engine needs an MLflow tracking server for its pods: set MLFLOW_TRACKING_URI")
    if kube is None:
        from controlplane.adapters.kube import KubeClient

        kube = KubeClient(kubeconfig=kubeconfig, context=context)
    return ArgoEngine(
        kube,
        mlflow_tracking_uri=uri,
        namespace=namespace,
        image=image,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
        dag=dag,
        **argo_options,
    )


def run_validation(
    engine: WaitingEngine,
    request: ValidationRequest,
    timeout_s: float | None = None,
    on_submit: Callable[[str], None] | None = None,
) -> WorkflowState:
    """Submit, follow to the end (terminating after ``timeout_s``), return the final state.
    An interrupt (Ctrl-C) terminates the run before propagating."""
    handle = engine.submit(request)
    if on_submit is not None:
        on_submit(handle)
    try:
        return engine.wait(handle, timeout_s)
    except KeyboardInterrupt:
        engine.terminate(handle)
        raise
