"""The SLO analysis of a rollout step: the pure judge fed by a metric provider."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controlplane.analysis.judge import analyze
from controlplane.analysis.queries import count_queries, selector, series_queries
from controlplane.analysis.slo import SLOSpec, default_slo, load_slo, parse_slo
from controlplane.engine import AnalysisVerdict, RolloutSpec, RolloutStatus
from controlplane.errors import InputError, PermanentError, TemporaryError
from controlplane.ports import MetricProvider

DEFAULT_LATENCY_THRESHOLD_S = 0.2


def load_slo_file(path: Path) -> dict[str, Any]:
    """Validate an SLO file; return the document to keep in the rollout's spec."""
    import yaml

    load_slo(path)  # one-line InputError naming the field when invalid
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def load_rollout_slo(spec: RolloutSpec, *, default_min_requests: float | None = None) -> SLOSpec:
    """The rollout's SLO: its own document, else the default one. A target with little traffic (the
    local target serves ~40 req/s, so a 5 % canary sees ~2 req/s) lowers the default evidence floor."""
    if spec.slo is not None:
        slo = parse_slo(spec.slo, "rollout SLO")
    else:
        slo = default_slo(spec.model)
        if default_min_requests is not None:
            canary = replace(
                slo.canary,
                min_requests=default_min_requests,
                compare=replace(slo.canary.compare, min_requests=default_min_requests * 5, min_points=4),
            )
            slo = replace(slo, canary=canary)
    if slo.model != spec.model:
        raise InputError(f"the SLO is for model {slo.model!r}, not {spec.model!r}")
    return slo


def latency_threshold(slo: SLOSpec) -> float:
    if slo.latency is not None and slo.latency.threshold_s is not None:
        return slo.latency.threshold_s
    return DEFAULT_LATENCY_THRESHOLD_S


class SloAnalyzer:
    """A reconcile.Analyzer: judges the canary (and canary vs stable) over windows ending now."""

    def __init__(self, provider: MetricProvider, slo: SLOSpec) -> None:
        self.provider = provider
        self.slo = slo

    def analyze(self, spec: RolloutSpec, status: RolloutStatus, now: float) -> AnalysisVerdict | None:
        return analyze(
            self.slo,
            self.provider,
            spec.model,
            spec.version,
            spec.stable_version,
            now=now,
            step_duration_s=step_window(spec, status, now),
        )


def step_window(spec: RolloutSpec, status: RolloutStatus, now: float) -> float:
    """The analysis window: the step's duration, growing with the step when it is extended for lack of
    data (so an extension really gathers more evidence instead of re-reading the same span)."""
    if status.step_started_at is None:
        return spec.step_duration_s
    return max(spec.step_duration_s, now - status.step_started_at)


# ---- checking an SLO's queries against a live Prometheus (`ctl slo validate --prometheus-url`) ----------


@dataclass(frozen=True)
class QueryCheck:
    """One query of one version run once against Prometheus: how many series (and NaN ones) came back."""

    role: str
    name: str
    query: str
    required: bool
    series: int = 0
    nan: int = 0
    rejected: str | None = None

    @property
    def status(self) -> str:
        if self.rejected is not None:
            return "rejected"
        if self.series == 0:
            return "empty"
        return "nan" if self.nan == self.series else "ok"

    @property
    def usable(self) -> bool:
        return self.status == "ok" or not self.required


def check_queries(
    slo: SLOSpec,
    url: str,
    versions: dict[str, int],
    *,
    window_s: float,
    interval_s: float,
    now: float,
) -> list[QueryCheck]:
    """Run every count and series query of ``slo`` for each role's version (``{"canary": 3, "stable": 2}``).

    Required: the request total, the latency SLI's counts and the comparison's latency series (and the error
    count of a server that always exports one). An empty error count is otherwise read as 0 errors.
    A query Prometheus rejects is recorded; an unreachable Prometheus raises ExternalError."""
    from controlplane.adapters.prometheus import PrometheusProvider

    checks: list[QueryCheck] = []
    required = {"total", "latency_total", "latency_good", "latency_ms"}
    if not slo.empty_errors_are_zero():
        required.add("errors")
    with PrometheusProvider(url, slo, attempts=2) as provider:
        for role, version in versions.items():
            sel = selector(slo.metrics, slo.model, version, role)
            queries = {**count_queries(slo, sel, window_s).items(), **series_queries(slo, sel, interval_s).items()}
            for name, expr in queries.items():
                check = QueryCheck(role, name, expr, name in required)
                try:
                    values = provider.instant_series(expr, now)
                except PermanentError as exc:
                    checks.append(replace(check, rejected=str(exc)))
                    continue
                except TemporaryError as exc:
                    raise TemporaryError(f"Prometheus {url}: {exc}", exc.delay) from None
                nan = sum(1 for v in values if not math.isfinite(v))
                checks.append(replace(check, series=len(values), nan=nan))
    return checks
