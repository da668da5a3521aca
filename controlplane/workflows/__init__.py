"""Validation as a DAG of checks, run in-process (``local``) or as Argo Workflows (``argo``).

Public API:
    VALIDATION_DAG, ValidationDag, CheckNode, GpuSettings, Toleration   the DAG definition
    make_engine(name, ...) -> engine with submit/poll/terminate/wait   ``--engine local|argo``
    run_validation(engine, request, timeout_s) -> WorkflowState         submit and follow to the end
    request_from_ref("NAME:vN", "a,b", dag, baseline, device)           CLI input → checked request
    validate_with_engine(ref, checks, engine=..., ...) -> (result dict, passed)   for ctl validate --engine
    LocalEngine(runner, dag); ArgoEngine in controlplane.workflows.argo_engine
"""

from __future__ import annotations

from controlplane.workflows.dag import CheckNode, GpuSettings, Toleration, ValidationDag
from controlplane.workflows.engines import DEFAULT_ENGINE, ENGINES, make_engine, run_validation
from controlplane.workflows.local_engine import CheckRunner, LocalEngine
from controlplane.workflows.params import normalize_request, request_from_ref
from controlplane.workflows.results import state_to_dict
from controlplane.workflows.run import validate_with_engine
from controlplane.workflows.template import TEMPLATE_NAME, VALIDATION_DAG

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "TEMPLATE_NAME",
    "VALIDATION_DAG",
    "CheckNode",
    "CheckRunner",
    "GpuSettings",
    "LocalEngine",
    "Toleration",
    "ValidationDag",
    "make_engine",
    "normalize_request",
    "request_from_ref",
    "run_validation",
    "state_to_dict",
    "validate_with_engine",
]
