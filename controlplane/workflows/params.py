"""What both engines agree on: template parameter names, request validation and the
deterministic run name. No I/O, no Hera."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from controlplane.engine.checks import is_dns1123_label
from controlplane.errors import InputError
from controlplane.ports import ValidationRequest
from controlplane.refs import parse_ref, parse_versioned_ref
from controlplane.workflows.dag import ValidationDag

# ---- template parameters (the WorkflowTemplate declares exactly these) --------------------

PARAM_MODEL = "model"  # NAME:vN
PARAM_BASELINE = "baseline"  # a model ref, or "" for none
PARAM_DEVICE = "device"  # auto | cpu | cuda
PARAM_MLFLOW = "mlflow-tracking-uri"
PARAM_IMAGE = "image"
RUN_PARAM_PREFIX = "run-"  # run-<check>: "true" or "false"

DEVICES = ("auto", "cpu", "cuda")
# Parameters a caller may set besides the ones derived from the request.
SETTABLE_PARAMS = (PARAM_MLFLOW, PARAM_IMAGE)

_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_TRACKING_URI = re.compile(r"^(https?|databricks)(://.+|$)")


def run_param(check: str) -> str:
    return f"{RUN_PARAM_PREFIX}{check}"


# ---- validation ------------------------------------------------------------------------


def normalize_request(request: ValidationRequest, dag: ValidationDag) -> ValidationRequest:
    """Check a request against the DAG and return it with its checks in DAG order.

    Raises InputError (one line) for an unknown check, an empty check list, a bad model
    reference, a bad baseline or an unknown device; nothing is submitted then."""
    parse_versioned_ref(f"{request.model}:v{request.version}")
    if isinstance(request.version, bool) or not isinstance(request.version, int):
        raise InputError(f"invalid model version {request.version!r}: expected a whole number")
    checks = tuple(request.checks)
    if not checks:
        raise InputError(f"no checks selected; choose from: {', '.join(dag.names)}")
    unknown = [c for c in checks if c not in dag.names]
    if unknown:
        raise InputError(f"unknown check(s) {', '.join(map(repr, unknown))}; known: {', '.join(dag.names)}")
    baseline = request.baseline or None
    if baseline is not None:
        parse_ref(baseline)
    if request.device not in DEVICES:
        raise InputError(f"invalid device {request.device!r}; use one of: {', '.join(DEVICES)}")
    return replace(request, checks=dag.order(checks), baseline=baseline)


def parse_checks(text: str | Iterable[str] | None, dag: ValidationDag) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b"]`` (or None/empty: every check) → checks in DAG order."""
    if text is None:
        return dag.names
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        return dag.names
    unknown = [c for c in names if c not in dag.names]
    if unknown:
        raise InputError(f"unknown check(s) {', '.join(map(repr, unknown))}; known: {', '.join(dag.names)}")
    return dag.order(names)


def request_from_ref(
    ref: str,
    checks: str | Iterable[str] | None,
    dag: ValidationDag,
    baseline: str | None = None,
    device: str = "auto",
) -> ValidationRequest:
    """Build and check a request from CLI-style input (``NAME:vN``, ``a,b``)."""
    parsed = parse_versioned_ref(ref)
    assert parsed.version is not None
    request = ValidationRequest(parsed.name, parsed.version, parse_checks(checks, dag), baseline or None, device)
    return normalize_request(request, dag)


def check_settable(parameters: Mapping[str, str]) -> dict[str, str]:
    """Validate the caller-settable template parameters (image, MLflow tracking URI)."""
    result: dict[str, str] = {}
    for key, value in parameters.items():
        if key not in SETTABLE_PARAMS:
            raise InputError(f"unknown workflow parameter {key!r}; settable: {', '.join(SETTABLE_PARAMS)}")
        if not isinstance(value, str) or not value.strip() or any(ch in value for ch in "\r\n\t "):
            raise InputError(f"invalid workflow parameter {key}={value!r}: a non-empty value without spaces")
        if key == PARAM_IMAGE and not _IMAGE.match(value):
            raise InputError(f"invalid image {value!r}")
        if key == PARAM_MLFLOW and not _TRACKING_URI.match(value):
            raise InputError(
                f"invalid {PARAM_MLFLOW} {value!r}: the workflow's pods need an MLflow server they can reach "
                "(http://..., https://... or databricks)"
            )
        result[key] = value
    return result


# ---- parameters and the run's name -----------------------------------------------------


def workflow_parameters(
    request: ValidationRequest, dag: ValidationDag, settable: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every template parameter for this request (the request must be normalized)."""
    params = {
        PARAM_MODEL: f"{request.model}:v{request.version}",
        PARAM_BASELINE: request.baseline or "",
        PARAM_DEVICE: request.device,
    }
    params.update(check_settable(settable or {}))
    for name in dag.names:
        params[run_param(name)] = "true" if name in request.checks else "false"
    return params


def request_hash(template: str, parameters: Mapping[str, str]) -> str:
    canonical = json.dumps({"template": template, "parameters": dict(parameters)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def workflow_name(request: ValidationRequest, template: str, parameters: Mapping[str, str]) -> str:
    """``validate-<model>-v<N>-<hash>``: the same request always gets the same name (at
    most 63 characters, a valid label value), so a resubmission finds the first run."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.model.lower()).strip("-")[:30].strip("-") or "model"
    name = f"validate-{slug}-v{request.version}-{request_hash(template, parameters)}"
    if not is_dns1123_label(name):  # only a huge version number gets here
        name = f"validate-{request_hash(template, parameters)}"
    return name


def check_namespace(namespace: str) -> str:
    if not is_dns1123_label(namespace):
        raise InputError(f"invalid namespace {namespace!r}")
    return namespace
