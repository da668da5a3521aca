"""Small ports: the Protocols that adapters implement.

Each external system has exactly one adapter module that imports its client
(mlflow: adapters/mlflow_registry.py, kubernetes: adapters/kube.py, SQLAlchemy:
store/, Prometheus over httpx: adapters/prometheus.py). The application layer
depends only on these Protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from controlplane.engine.types import TERMINAL_PHASES

# ---- model registry --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    source_uri: str  # models:/NAME/N
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    created_at: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


@dataclass(frozen=True)
class NewVersion:
    """Files and metadata for registering a version. ``files`` maps artifact names
    (e.g. "model.onnx", "tokenizer.json", "config.json") to local paths."""

    name: str
    files: Mapping[str, Path]
    tags: Mapping[str, str]
    params: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


@runtime_checkable
class ModelRegistry(Protocol):
    def register(self, new: NewVersion) -> ModelVersion: ...
    def get_version(self, name: str, version: int) -> ModelVersion: ...
    def get_alias(self, name: str, alias: str) -> ModelVersion | None: ...
    def set_alias(self, name: str, alias: str, version: int) -> None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None: ...
    def list_models(self) -> list[str]: ...
    def list_versions(self, name: str) -> list[ModelVersion]: ...
    def fetch(self, name: str, version: int) -> Path:
        """A local directory holding the version's artifacts (cached)."""
        ...

    def log_run(
        self,
        name: str,
        version: int,
        run_name: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: Sequence[Path],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Log a run linked to the version (params, metrics, artifact files); return its id."""
        ...


# ---- traffic routing -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteTarget:
    """Identifies what a router acts on for one rollout."""

    namespace: str
    name: str  # the rollout name
    model: str
    stable_version: int | None
    canary_version: int
    options: Mapping[str, Any] = field(default_factory=dict)  # router-specific (route name, etc.)


class TrafficRouter(Protocol):
    name: str

    def set_weight(self, target: RouteTarget, canary_weight: int) -> None: ...
    def get_weight(self, target: RouteTarget) -> int:
        """Read back the canary weight (0-100) the data plane is actually configured with."""
        ...

    def reset(self, target: RouteTarget) -> None:
        """All traffic to stable; remove what the router manages."""
        ...


# ---- metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSample:
    """Counts and latencies observed for one version over one interval."""

    requests: float
    errors: float
    latency_good: float  # requests faster than the latency objective's threshold
    latencies_ms: tuple[float, ...] = ()  # per-interval latency values (e.g. p95 per sub-interval)
    error_ratios: tuple[float, ...] = ()  # per-interval error ratios


@dataclass(frozen=True)
class MetricWindow:
    start: float
    end: float


@dataclass(frozen=True)
class MetricObservation:
    """Canary and stable samples over one window; ``error`` is set when the source failed."""

    window: MetricWindow
    canary: VersionSample | None
    stable: VersionSample | None
    queries: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


class MetricProvider(Protocol):
    name: str

    def observe(
        self, model: str, canary_version: int, stable_version: int | None, window: MetricWindow
    ) -> MetricObservation:
        """Must be idempotent; source failures are returned as data (``error``), not raised."""
        ...


# ---- workflow engine (validation) ------------------------------------------------------


@dataclass(frozen=True)
class ValidationRequest:
    model: str
    version: int
    checks: tuple[str, ...]
    baseline: str | None = None  # a model ref
    device: str = "auto"


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    status: str  # passed | failed | warning | error | pending | running | skipped
    summary: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str = ""  # the MLflow run the check logged, when it ran
    seconds: float | None = None  # how long the check (the Argo step) took, once it ended
    input_error: bool = False  # an error caused by bad input (missing artifact, absent device), not by the model


@dataclass(frozen=True)
class WorkflowState:
    handle: str
    phase: str  # Pending | Running | Succeeded | Failed | Error
    checks: tuple[CheckOutcome, ...] = ()
    message: str = ""


class WorkflowEngine(Protocol):
    name: str

    def handle_for(self, request: ValidationRequest) -> str: ...  # the run's handle, no I/O
    def submit(self, request: ValidationRequest) -> str: ...  # idempotent; returns handle_for(request)
    def poll(self, handle: str) -> WorkflowState: ...
    def terminate(self, handle: str) -> None: ...


# ---- state store -----------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    model: str
    version: int
    spec: dict[str, Any]  # RolloutSpec.to_dict()
    status: dict[str, Any]  # RolloutStatus.to_dict()
    revision: int  # bumped on every write; optimistic concurrency
    created_at: float
    updated_at: float

    @property
    def active(self) -> bool:
        return self.status.get("phase") not in TERMINAL_PHASES


@dataclass(frozen=True)
class EventRecord:
    id: int
    rollout_id: int
    at: float
    kind: str
    message: str
    evidence: dict[str, Any]
    phase: str


@dataclass(frozen=True)
class IncidentRecord:
    id: int
    rollout_id: int | None
    model: str
    version: int | None
    failure_mode: str
    severity: str
    summary: str
    evidence: dict[str, Any]
    runbook: str
    state: str  # open | acknowledged | resolved
    opened_at: float
    updated_at: float


@dataclass(frozen=True)
class ValidationRecord:
    id: int
    model: str
    version: int
    check: str
    status: str
    metrics: dict[str, Any]
    findings: list[str]
    thresholds: dict[str, Any]
    run_id: str | None
    created_at: float


@dataclass(frozen=True)
class AnalysisRecord:
    id: int
    rollout_id: int
    step_index: int
    weight: int
    verdict: str
    reason: str
    evidence: dict[str, Any]
    at: float


class Store(Protocol):
    """The durable record. Every mutating call is one transaction."""

    def create_rollout(self, spec: dict[str, Any], status: dict[str, Any], now: float) -> RolloutRecord:
        """Raise ConflictError (and write nothing) if the model already has an active rollout."""
        ...

    def get_rollout(self, rollout_id: int) -> RolloutRecord: ...
    def active_rollout(self, model: str) -> RolloutRecord | None: ...
    def list_rollouts(self, model: str | None = None, active_only: bool = False) -> list[RolloutRecord]: ...

    def save_rollout(
        self,
        rollout_id: int,
        expected_revision: int,
        spec: dict[str, Any],
        status: dict[str, Any],
        events: Sequence[tuple[str, str, dict[str, Any]]],
        now: float,
    ) -> RolloutRecord:
        """Write spec+status and append events atomically. Raise ConflictError when the
        stored revision differs from ``expected_revision`` (a concurrent writer)."""
        ...

    def list_events(self, rollout_id: int) -> list[EventRecord]: ...

    def add_analysis(
        self,
        rollout_id: int,
        step_index: int,
        weight: int,
        verdict: str,
        reason: str,
        evidence: dict[str, Any],
        now: float,
    ) -> AnalysisRecord: ...
    def list_analysis(self, rollout_id: int) -> list[AnalysisRecord]: ...

    def add_validation(
        self,
        model: str,
        version: int,
        check: str,
        status: str,
        metrics: dict[str, Any],
        findings: list[str],
        thresholds: dict[str, Any],
        run_id: str | None,
        now: float,
    ) -> ValidationRecord: ...
    def list_validations(self, model: str, version: int | None = None) -> list[ValidationRecord]: ...

    def open_incident(
        self,
        rollout_id: int | None,
        model: str,
        version: int | None,
        failure_mode: str,
        severity: str,
        summary: str,
        evidence: dict[str, Any],
        runbook: str,
        now: float,
    ) -> IncidentRecord: ...
    def get_incident(self, incident_id: int) -> IncidentRecord: ...
    def list_incidents(self, model: str | None = None, state: str | None = None) -> list[IncidentRecord]: ...
    def set_incident_state(self, incident_id: int, state: str, now: float) -> IncidentRecord: ...


# ---- workloads (what serves stable and canary) -----------------------------------------


class Workloads(Protocol):
    """Creates and retires the canary; moves stable to a new version on promotion."""

    def ensure_canary(self, target: RouteTarget) -> None:
        """Canary workload serving ``target.canary_version`` exists and is scaled up (idempotent)."""
        ...

    def promote_stable(self, target: RouteTarget) -> None:
        """Stable moved to the canary's version at full size (idempotent). The canary is left as it
        is: traffic returns to stable once ``stable_ready``, then the canary is retired."""
        ...

    def stable_ready(self, target: RouteTarget) -> bool:
        """Stable serves the canary's version and is available (can take all the traffic)."""
        ...

    def retire_canary(self, target: RouteTarget) -> None:
        """Canary scaled to zero; stable untouched (idempotent)."""
        ...
