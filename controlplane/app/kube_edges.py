"""What the controller observes besides the cluster: step analysis and the validation gate.

Analysis: with a Prometheus URL, the SLO judge reads the model servers' metrics
(``model_requests_total``/``model_request_duration_seconds``). Without one, ``TimedSteps``
passes each step when its duration is over, as Argo Rollouts does for a canary without an
AnalysisTemplate; every such pass is recorded with ``analysis: none`` in its evidence, so
the history never claims a metric check that did not happen.

Validation: with ``--validation argo`` the gates run as an Argo Workflow (``ArgoEngine``);
(``controlplane.app.gate.EngineGate``); otherwise a rollout must say ``skipValidation: true`` or it is refused.
"""

from __future__ import annotations

from typing import Any

from controlplane.engine import AnalysisVerdict, RolloutSpec, RolloutStatus, Verdict
from controlplane.engine.types import ValidationState

NO_ANALYSIS_REASON = "no metric provider configured: the step passes when its duration is over"


class TimedSteps:
    """A rollout.observe.Analyzer that judges nothing: every step passes on time alone."""

    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None:
        return AnalysisVerdict(Verdict.PASS, NO_ANALYSIS_REASON, evidence={"analysis": "none"})


class PrometheusAnalyzer:
    """The SLO judge over a Prometheus server; one provider per rollout's SLO."""

    def __init__(self, url: str) -> None:
        self.url = url

    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None:
        from controlplane.adapters.prometheus import PrometheusProvider
        from controlplane.app.slo_analyzer import SloAnalyzer, load_rollout_slo

        slo = load_rollout_slo(spec)
        with PrometheusProvider(self.url, slo, step_duration_s=spec.step_duration_s) as provider:
            return SloAnalyzer(provider, slo).analyze(spec, status, now)


class NoGate:
    """Validation not configured on this controller (rollouts must skip it)."""

    def start(self, model: str, version: int) -> None:
        return

    def state(self) -> tuple[ValidationState | None, dict[str, Any]]:
        return ValidationState.ERROR, {"summary": "this controller has no validation engine (--validation argo)"}

    def terminate(self) -> None:
        return
