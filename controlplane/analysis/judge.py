"""Judge one canary analysis: SLO burn (multi-window, multi-burn-rate) and canary vs stable.

``judge`` is pure: it reads MetricObservations and returns the engine's AnalysisVerdict.

- FAIL ``slo-burn-errors`` / ``slo-burn-latency``: for some burn policy the canary's error (or slow-request)
  ratio burns the objective's budget faster than the policy's rate over the long AND the short window.
- FAIL ``baseline-regression``: the canary is significantly and materially worse than stable
  (Mann-Whitney U on per-sub-interval latency and error ratio), even when the absolute SLO holds.
- INCONCLUSIVE ``prometheus-unavailable``: the metric source failed. INCONCLUSIVE ``canary-inconclusive``:
  too few canary requests or sub-intervals, NaN, empty or partial data. Never PASS on missing canary data.
- A stable version with too little traffic to compare with (the 100 % step sends it none) skips the
  comparison, noted in the evidence (``comparison_note``); the canary's own SLO burn still decides.
- PASS otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.analysis.burn import burn_rate
from controlplane.analysis.compare import INSUFFICIENT, REGRESSION, Comparison, compare_samples
from controlplane.analysis.durations import format_duration
from controlplane.analysis.slo import BurnWindow, Objective, SLOSpec
from controlplane.engine.types import AnalysisVerdict, Verdict
from controlplane.ports import MetricObservation, MetricProvider, MetricWindow, VersionSample

SLO_BURN_ERRORS = "slo-burn-errors"
SLO_BURN_LATENCY = "slo-burn-latency"
BASELINE_REGRESSION = "baseline-regression"
PROMETHEUS_UNAVAILABLE = "prometheus-unavailable"
CANARY_INCONCLUSIVE = "canary-inconclusive"

#: Every failure mode the judge can report.
FAILURE_MODES = (SLO_BURN_ERRORS, SLO_BURN_LATENCY, BASELINE_REGRESSION, PROMETHEUS_UNAVAILABLE, CANARY_INCONCLUSIVE)

FIRED = "fired"
OK = "ok"
UNKNOWN = "unknown"


def required_windows(slo: SLOSpec, now: float, step_duration_s: float | None = None) -> tuple[MetricWindow, ...]:
    """The windows, all ending at ``now``, an analysis observes: the primary (first long window) first."""
    lengths: list[float] = [slo.analysis_window(step_duration_s)]
    for w in slo.burn_windows(step_duration_s):
        for length in (w.long_s, w.short_s):
            if all(abs(length - seen) > 1e-3 for seen in lengths):
                lengths.append(length)
    return tuple(MetricWindow(now - length, now) for length in lengths)


def analyze(
    slo: SLOSpec,
    provider: MetricProvider,
    model: str,
    canary_version: int,
    stable_version: int | None,
    *,
    now: float,
    step_duration_s: float | None = None,
) -> AnalysisVerdict:
    """Observe every window ``required_windows`` names through ``provider`` and judge them.

    The primary window is observed for canary and stable (with sub-interval series); the others for the
    canary only. A provider that raises despite its contract is treated as a failed source.
    """
    windows = required_windows(slo, now, step_duration_s)
    primary = _observe(provider, model, canary_version, stable_version, windows[0])
    others: list[MetricObservation] = []
    if primary.error is None:
        for window in windows[1:]:
            obs = _observe(provider, model, canary_version, None, window)
            others.append(obs)
            if obs.error is not None:
                break
    return judge(slo, primary, others=others, step_duration_s=step_duration_s)


def _observe(
    provider: MetricProvider, model: str, canary: int, stable: int | None, window: MetricWindow
) -> MetricObservation:
    try:
        return provider.observe(model, canary, stable, window)
    except Exception as exc:  # the port says: failures are data
        return MetricObservation(window=window, canary=None, stable=None, error=f"{type(exc).__name__}: {exc}")


# ---- judging ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BurnCheck:
    objective: str
    failure_mode: str
    window: BurnWindow
    status: str  # fired | ok | unknown
    long_ratio: float | None
    short_ratio: float | None
    long_burn: float | None
    short_burn: float | None
    reason: str

    def to_evidence(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "status": self.status,
            "burn_threshold": self.window.burn,
            "severity": self.window.severity,
            "long_window_s": self.window.long_s,
            "short_window_s": self.window.short_s,
            "long_ratio": _num(self.long_ratio),
            "short_ratio": _num(self.short_ratio),
            "long_burn": _num(self.long_burn),
            "short_burn": _num(self.short_burn),
            "reason": self.reason,
        }


def judge(
    slo: SLOSpec,
    observation: MetricObservation,
    *,
    others: Sequence[MetricObservation] = (),
    step_duration_s: float | None = None,
) -> AnalysisVerdict:
    """The verdict for one analysis. ``observation`` is the primary window (canary, stable and sub-interval
    series); ``others`` are canary observations of the remaining burn windows, matched by window length."""
    evidence = _base_evidence(slo, observation, others, step_duration_s)
    if observation.error is not None:
        return _verdict(
            Verdict.INCONCLUSIVE, PROMETHEUS_UNAVAILABLE, f"metric source failed: {observation.error}", evidence
        )
    canary = observation.canary
    if canary is None:
        return _verdict(Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE, "no canary data in the window", evidence)
    if not (_finite(canary.requests) and _finite(canary.errors)):
        return _verdict(
            Verdict.INCONCLUSIVE,
            CANARY_INCONCLUSIVE,
            f"canary counts are not numbers (requests={canary.requests}, errors={canary.errors})",
            evidence,
        )
    min_requests = slo.canary.min_requests
    if canary.requests < min_requests:
        # Early certainty: if the bad events already burn above a rate even when every missing request up
        # to min_requests would succeed, more data can only confirm it (the ratio is bad / max(n, min)).
        early = [
            _burn_check(o, w, observation, others, floor=min_requests)
            for w in slo.burn_windows(step_duration_s)
            for o in slo.objectives
        ]
        fired_early = [c for c in early if c.status == FIRED]
        if fired_early:
            evidence["burn"] = [c.to_evidence() for c in early]
            first = max(fired_early, key=lambda c: (c.failure_mode == SLO_BURN_ERRORS, c.long_burn or 0.0))
            reason = f"{first.reason}; certain before {min_requests:.0f} requests (ratios over max(requests, min))"
            return _verdict(Verdict.FAIL, first.failure_mode, reason, evidence)
        got = f"{canary.requests:.0f} canary requests in {_span(observation)}"
        reason = f"too little data: {got}, need {min_requests:.0f}"
        return _verdict(Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE, reason, evidence)

    checks = [_burn_check(o, w, observation, others) for w in slo.burn_windows(step_duration_s) for o in slo.objectives]
    evidence["burn"] = [c.to_evidence() for c in checks]
    comparisons, compare_note = _compare(slo, observation)
    evidence["comparison"] = [c.to_evidence() for c in comparisons]
    if compare_note:
        evidence["comparison_note"] = compare_note

    fired = [c for c in checks if c.status == FIRED]
    if fired:
        first = max(fired, key=lambda c: (c.failure_mode == SLO_BURN_ERRORS, c.long_burn or 0.0))
        return _verdict(Verdict.FAIL, first.failure_mode, first.reason, evidence)
    regressions = [c for c in comparisons if c.status == REGRESSION]
    if regressions:
        return _verdict(Verdict.FAIL, BASELINE_REGRESSION, "; ".join(c.reason for c in regressions), evidence)
    unknown = [c for c in checks if c.status == UNKNOWN]
    if unknown:
        source_failed = any(o.error is not None for o in others)
        mode = PROMETHEUS_UNAVAILABLE if source_failed else CANARY_INCONCLUSIVE
        return _verdict(Verdict.INCONCLUSIVE, mode, unknown[0].reason, evidence)
    insufficient = [c for c in comparisons if c.status == INSUFFICIENT]
    if insufficient:
        return _verdict(Verdict.INCONCLUSIVE, CANARY_INCONCLUSIVE, "; ".join(c.reason for c in insufficient), evidence)
    return _verdict(Verdict.PASS, None, _pass_reason(checks, comparisons, observation, slo.not_judged()), evidence)


def _verdict(verdict: Verdict, mode: str | None, reason: str, evidence: dict[str, Any]) -> AnalysisVerdict:
    evidence["verdict"] = verdict.value
    if mode is not None:
        evidence["failure_mode"] = mode
    return AnalysisVerdict(verdict=verdict, reason=reason, failure_mode=mode, evidence=evidence)


def _bad_ratio(objective: Objective, sample: VersionSample, floor: float = 0.0) -> float | None:
    """The objective's bad-event ratio for a sample, over max(requests, ``floor``); None when it cannot be
    computed (no requests, NaN)."""
    if not _finite(sample.requests) or sample.requests <= 0:
        return None
    bad = sample.errors if objective.kind == "availability" else sample.requests - sample.latency_good
    if not _finite(bad):
        return None
    return min(max(bad / max(sample.requests, floor), 0.0), 1.0)


def _find(length: float, primary: MetricObservation, others: Sequence[MetricObservation]) -> MetricObservation | None:
    for obs in (primary, *others):
        if abs((obs.window.end - obs.window.start) - length) <= 1e-3:
            return obs
    return None


def _burn_check(
    objective: Objective,
    window: BurnWindow,
    primary: MetricObservation,
    others: Sequence[MetricObservation],
    floor: float = 0.0,
) -> BurnCheck:
    """``floor``: a minimum request count over the long window (scaled to the short one) for the ratios."""
    label = f"{objective.kind} {window.burn:g}x over {format_duration(window.long_s)}&{format_duration(window.short_s)}"

    def unknown(reason: str, long_ratio: float | None = None) -> BurnCheck:
        long_burn = burn_rate(long_ratio, objective.target) if long_ratio is not None else None
        return BurnCheck(
            objective.kind,
            objective.failure_mode,
            window,
            UNKNOWN,
            long_ratio,
            None,
            long_burn,
            None,
            f"{label}: {reason}",
        )

    long_obs, short_obs = _find(window.long_s, primary, others), _find(window.short_s, primary, others)
    for name, obs in (("long", long_obs), ("short", short_obs)):
        if obs is None:
            return unknown(f"the {name} window was not observed")
        if obs.error is not None:
            return unknown(f"the {name} window's query failed: {obs.error}")
        if obs.canary is None:
            return unknown(f"no canary data in the {name} window")
    assert long_obs is not None and short_obs is not None and long_obs.canary and short_obs.canary
    long_ratio = _bad_ratio(objective, long_obs.canary, floor)
    if long_ratio is None:
        return unknown(f"the canary's {objective.kind} ratio over the long window is not a number")
    long_burn = burn_rate(long_ratio, objective.target)
    short_ratio = _bad_ratio(objective, short_obs.canary, floor * window.short_s / window.long_s)
    if short_ratio is None:
        if _finite(short_obs.canary.requests) and short_obs.canary.requests <= 0:
            short_ratio = 0.0  # no canary request in the short window: nothing is burning right now
        else:
            return unknown(f"the canary's {objective.kind} ratio over the short window is not a number", long_ratio)
    short_burn = burn_rate(short_ratio, objective.target)
    fires = long_burn > window.burn and short_burn > window.burn
    what = "error ratio" if objective.kind == "availability" else f"share slower than {objective.threshold_s:g}s"
    detail = (
        f"canary {what} {long_ratio:.2%} over {format_duration(window.long_s)} and {short_ratio:.2%} over "
        f"{format_duration(window.short_s)}: burn {long_burn:.1f}x and {short_burn:.1f}x of the "
        f"{objective.target:.4g} objective's budget (threshold {window.burn:g}x)"
    )
    return BurnCheck(
        objective.kind,
        objective.failure_mode,
        window,
        FIRED if fires else OK,
        long_ratio,
        short_ratio,
        long_burn,
        short_burn,
        detail,
    )


def _compare(slo: SLOSpec, observation: MetricObservation) -> tuple[list[Comparison], str | None]:
    settings = slo.canary.compare
    canary, stable = observation.canary, observation.stable
    if not settings.enabled:
        return [], "baseline comparison disabled"
    if stable is None:
        return [], "no stable version to compare with"
    if canary is None:
        return [], "no canary data"
    if not _finite(stable.requests) or stable.requests < settings.min_requests:
        return [], f"too little stable data: {stable.requests:.0f} requests, need {settings.min_requests:.0f}"
    common = {"confidence": settings.confidence, "tolerance": settings.tolerance, "min_points": settings.min_points}
    results = [
        compare_samples(
            "latency_ms", canary.latencies_ms, stable.latencies_ms, floor=settings.latency_floor_ms, **common
        )
    ]
    if slo.availability is not None:
        results.append(
            compare_samples(
                "error_ratio", canary.error_ratios, stable.error_ratios, floor=slo.availability.budget, **common
            )
        )
    return results, None


def _pass_reason(
    checks: Sequence[BurnCheck], comparisons: Sequence[Comparison], obs: MetricObservation, not_judged: Sequence[str]
) -> str:
    burns = []
    for kind in dict.fromkeys(c.objective for c in checks):
        worst = max((c.long_burn or 0.0) for c in checks if c.objective == kind)
        burns.append(f"{kind} burn {worst:.2f}x")
    compared = "no regression vs stable" if comparisons else "no stable comparison"
    unjudged = "".join(f"; NOT judged: {note.split(':')[0]}" for note in not_judged)
    return f"canary within SLO over {_span(obs)}: {', '.join(burns)}; {compared}{unjudged}"


# ---- evidence --------------------------------------------------------------------------


def _base_evidence(
    slo: SLOSpec, obs: MetricObservation, others: Sequence[MetricObservation], step_duration_s: float | None
) -> dict[str, Any]:
    queries: dict[str, str] = {}
    for o in (obs, *others):
        prefix = format_duration(max(o.window.end - o.window.start, 0.001))
        for name, query in o.queries.items():
            queries[f"{prefix} {name}"] = query
    windows = {
        format_duration(max(o.window.end - o.window.start, 0.001)): {
            "start": o.window.start,
            "end": o.window.end,
            "canary": _sample_evidence(o.canary),
            **({"error": o.error} if o.error else {}),
        }
        for o in others
    }
    return {
        "model": slo.model,
        "window": {"start": obs.window.start, "end": obs.window.end, "seconds": obs.window.end - obs.window.start},
        "canary": _sample_evidence(obs.canary, series=True),
        "stable": _sample_evidence(obs.stable, series=True),
        "other_windows": windows,
        "queries": queries,
        "metrics": {"preset": slo.metrics.preset, "identify": slo.metrics.identify},
        "not_judged": list(slo.not_judged()),
        "thresholds": {
            "objectives": {o.kind: o.target for o in slo.objectives},
            "latency_threshold_s": slo.latency.threshold_s if slo.latency else None,
            "min_requests": slo.canary.min_requests,
            "burn_policies": [
                {"burn": w.burn, "long_s": w.long_s, "short_s": w.short_s, "severity": w.severity}
                for w in slo.burn_windows(step_duration_s)
            ],
            "compare": {
                "enabled": slo.canary.compare.enabled,
                "confidence": slo.canary.compare.confidence,
                "tolerance": slo.canary.compare.tolerance,
                "min_points": slo.canary.compare.min_points,
                "interval_s": slo.compare_interval(step_duration_s),
                "latency_statistic": slo.canary.compare.latency_statistic,
            },
        },
        **({"error": obs.error} if obs.error else {}),
    }


def _sample_evidence(sample: VersionSample | None, series: bool = False) -> dict[str, Any] | None:
    if sample is None:
        return None
    data: dict[str, Any] = {
        "requests": _num(sample.requests),
        "errors": _num(sample.errors),
        "latency_good": _num(sample.latency_good),
    }
    if series:
        data["latencies_ms"] = [_num(v, 4) for v in sample.latencies_ms]
        data["error_ratios"] = [_num(v, 6) for v in sample.error_ratios]
    return data


def _num(value: float | None, digits: int | None = None) -> float | None:
    """JSON-safe: NaN and infinities become None."""
    if value is None or not _finite(value):
        return None
    return round(float(value), digits) if digits is not None else float(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def _span(obs: MetricObservation) -> str:
    return format_duration(max(obs.window.end - obs.window.start, 0.001))
