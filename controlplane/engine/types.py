"""Value types of the rollout engine. All frozen, all JSON-serialisable via to_dict/from_dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED})


class Verdict(StrEnum):
    """Outcome of judging one analysis window."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # too little data, or the metric source failed


class ValidationState(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


DEFAULT_STEPS: tuple[int, ...] = (5, 25, 50, 100)


@dataclass(frozen=True)
class RolloutSpec:
    """What the user asked for. The intent fields (paused, abort, rollback,
    resume_requests) are set by `ctl pause|resume|abort|rollback` and read by the engine."""

    model: str
    version: int
    stable_version: int | None = None
    steps: tuple[int, ...] = DEFAULT_STEPS
    step_duration_s: float = 30.0
    alias: str = "production"
    target: str = "local"
    router: str = "local"
    skip_validation: bool = False
    checks: tuple[str, ...] = ()  # validation gates to run; empty means all
    slo: dict[str, Any] | None = None  # the SLO document the analysis judges against
    analysis_interval_s: float = 10.0
    max_extensions: int = 2
    timeout_s: float | None = None  # `promote --timeout`: aborted when not ended this long after it started
    paused: bool = False
    abort: bool = False
    rollback: bool = False
    resume_requests: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "checks", tuple(self.checks))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        data["checks"] = list(self.checks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RolloutStatus:
    phase: Phase = Phase.PENDING
    step_index: int = -1
    weight: int = 0
    step_started_at: float | None = None
    extensions: int = 0
    validation: ValidationState | None = None
    resumes_seen: int = 0
    pause_reason: str | None = None
    previous_alias_version: int | None = None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None  # started_at + spec.timeout_s: whoever decides next enforces it
    finalizing: bool = False  # Promoted, but traffic waits for stable to serve the new version (see decide)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phase"] = self.phase.value
        data["validation"] = self.validation.value if self.validation else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["phase"] = Phase(values.get("phase", Phase.PENDING))
        if values.get("validation") is not None:
            values["validation"] = ValidationState(values["validation"])
        return cls(**values)

    def evolve(self, **changes: Any) -> RolloutStatus:
        return replace(self, **changes)


@dataclass(frozen=True)
class AnalysisVerdict:
    """The judged outcome of the analysis of the current step, with its evidence."""

    verdict: Verdict
    reason: str = ""
    failure_mode: str | None = None  # e.g. "slo-burn-errors", "slo-burn-latency", "baseline-regression"
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observations:
    """What the observer (controlplane/rollout/observe.py) saw at the edges just before deciding."""

    validation: ValidationState | None = None
    validation_evidence: dict[str, Any] = field(default_factory=dict)
    analysis: AnalysisVerdict | None = None
    router_weight: int | None = None
    current_alias_version: int | None = None
    stable_ready: bool | None = None  # finalizing: stable serves the new version and is available


# ---- actions: what the interpreter (controlplane/rollout/apply.py) does at the edges -----


@dataclass(frozen=True)
class StartValidation:
    model: str
    version: int


@dataclass(frozen=True)
class SetWeight:
    weight: int


@dataclass(frozen=True)
class ResetTraffic:
    """All traffic back to stable and the canary scaled to zero."""


@dataclass(frozen=True)
class PromoteStable:
    """Stable moved to the candidate's version at full size (idempotent); traffic untouched."""

    version: int


@dataclass(frozen=True)
class FinalizePromotion:
    """Stable serves the candidate: canary traffic reset (all on stable), canary scaled to zero."""

    version: int


@dataclass(frozen=True)
class SetAlias:
    model: str
    alias: str
    version: int


@dataclass(frozen=True)
class RecordEvent:
    kind: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenIncident:
    failure_mode: str
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordAnalysis:
    """Persist the verdict the engine acted on (the analysis_results table)."""

    step_index: int
    weight: int
    verdict: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TerminateValidation:
    """Stop a validation workflow still running (abort during Validating)."""


Action = (
    StartValidation
    | SetWeight
    | ResetTraffic
    | PromoteStable
    | FinalizePromotion
    | SetAlias
    | RecordEvent
    | OpenIncident
    | RecordAnalysis
    | TerminateValidation
)


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    status: RolloutStatus
    requeue_after: float | None  # None: nothing more to do (terminal)
