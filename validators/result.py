"""The structured result every check returns, and the report the runner builds from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    ERROR = "error"


# Worst first: the report's overall status is the worst of its checks.
SEVERITY = {Status.PASSED: 0, Status.WARNING: 1, Status.FAILED: 2, Status.ERROR: 3}


@dataclass(frozen=True)
class ModelUnderTest:
    """A registered version materialised on disk (what ``ModelRegistry.fetch`` returns)."""

    ref: str  # NAME:vN
    model_dir: Path  # HF-format files: config.json, tokenizer.json, weights
    onnx_path: Path
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    check: str  # e.g. "tokenizer-parity"
    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": str(self.status),
            "metrics": self.metrics,
            "thresholds": self.thresholds,
            "findings": self.findings,
            "artifacts": [str(p) for p in self.artifacts],
            "details": self.details,
        }


@dataclass
class ValidationReport:
    ref: str
    baseline_ref: str | None
    results: list[CheckResult]
    device: str = "cpu"
    run_id: str | None = None

    @property
    def status(self) -> Status:
        if not self.results:
            return Status.ERROR
        return max((r.status for r in self.results), key=SEVERITY.__getitem__)

    @property
    def passed(self) -> bool:
        return self.status in (Status.PASSED, Status.WARNING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "baseline": self.baseline_ref,
            "device": self.device,
            "status": str(self.status),
            "run_id": self.run_id,
            "results": [r.to_dict() for r in self.results],
        }
