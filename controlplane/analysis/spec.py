"""The SLO spec's value types and defaults: objectives, their PromQL, the canary burn policy and the
baseline comparison. ``controlplane.analysis.slo`` parses YAML into these; ``default_slo(model)`` is the
spec used when none is given.

Query templates are PromQL that count events over a window; ``${selector}`` becomes the label matchers of
one version (``model="m",version=~"v?3",role="canary"``) and ``${window}`` a range such as ``30s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.analysis.burn import DAY, WORKBOOK_ALERTS, AlertWindow, burn_threshold
from controlplane.analysis.presets import MetricSet, build_queries, resolve

DEFAULT_STEP_DURATION_S = 30.0


# ---- value types -----------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One SLI/SLO. ``kind`` availability counts errors; latency counts requests faster than ``threshold_s``.

    Both carry a ``total_query``; availability has ``errors_query``, latency ``good_query``.
    """

    kind: str  # availability | latency
    target: float  # a ratio: 0.999
    total_query: str
    errors_query: str | None = None
    good_query: str | None = None
    threshold_s: float | None = None

    @property
    def name(self) -> str:
        """The SLO's name in rules and evidence (Sloth's ``sloth_slo``)."""
        return f"requests-{self.kind}"

    @property
    def budget(self) -> float:
        return 1.0 - self.target

    @property
    def failure_mode(self) -> str:
        return "slo-burn-errors" if self.kind == "availability" else "slo-burn-latency"


@dataclass(frozen=True)
class BurnPolicy:
    """A canary burn-rate alert: fail when the long AND short windows both burn faster than ``burn``.

    Windows are absolute (``long_s``/``short_s``) or scaled to the rollout: ``long_steps`` * step duration,
    short = long / 12 (never below the canary's ``min_window_s``).
    """

    burn: float
    long_s: float | None = None
    short_s: float | None = None
    long_steps: float = 1.0
    severity: str = "page"

    def resolve(self, step_duration_s: float, min_window_s: float) -> BurnWindow:
        long_s = self.long_s if self.long_s is not None else self.long_steps * step_duration_s
        long_s = max(long_s, min_window_s)
        short_s = self.short_s if self.short_s is not None else max(long_s / 12.0, min_window_s)
        return BurnWindow(self.burn, long_s, min(short_s, long_s), self.severity)


@dataclass(frozen=True)
class BurnWindow:
    """A burn policy with its windows resolved to seconds."""

    burn: float
    long_s: float
    short_s: float
    severity: str


#: The Workbook's two page-level alerts (14.4 over 1 h & 5 m, 6 over 6 h & 30 m) scaled so that one
#: hour becomes one rollout step: 14.4 over a step and a twelfth of it, 6 over six steps and half a step.
DEFAULT_BURN_POLICIES: tuple[BurnPolicy, ...] = (BurnPolicy(14.4, long_steps=1.0), BurnPolicy(6.0, long_steps=6.0))


@dataclass(frozen=True)
class CompareSettings:
    """Canary vs stable (Kayenta-style): one-sided Mann-Whitney U per metric over the same sub-intervals.

    A metric regresses when the test is significant at ``confidence`` AND the canary's mean is worse than
    the stable's by more than ``tolerance`` (relative; the stable's mean is floored at ``latency_floor_ms``
    for latency and at the error budget for error ratios, so noise around zero is not an effect).
    """

    enabled: bool = True
    confidence: float = 0.98
    tolerance: float = 0.25
    min_points: int = 8
    min_requests: float = 100.0  # stable requests over the window before a comparison counts
    interval_s: float | None = None  # sub-interval; default: the first burn policy's short window
    latency_statistic: str = "p95"
    latency_floor_ms: float = 1.0


@dataclass(frozen=True)
class CanaryPolicy:
    step_duration_s: float | None = None  # default long window; the rollout's step duration wins when given
    min_window_s: float = 3.0  # shortest window ever queried (≥ 2-3 scrape intervals)
    min_requests: float = 100.0  # canary requests over the long window before any verdict
    burn_policies: tuple[BurnPolicy, ...] = DEFAULT_BURN_POLICIES
    compare: CompareSettings = field(default_factory=CompareSettings)


@dataclass(frozen=True)
class SLOSpec:
    model: str
    availability: Objective | None
    latency: Objective | None
    period_s: float = 30 * DAY
    metrics: MetricSet = field(default_factory=resolve)
    canary: CanaryPolicy = field(default_factory=CanaryPolicy)
    alerts: tuple[AlertWindow, ...] = WORKBOOK_ALERTS
    source: str = "<default>"

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return tuple(o for o in (self.availability, self.latency) if o is not None)

    def step_duration(self, step_duration_s: float | None = None) -> float:
        """The rollout's step duration when given, else the spec's, else 30 s."""
        if step_duration_s is not None and step_duration_s > 0:
            return float(step_duration_s)
        return self.canary.step_duration_s or DEFAULT_STEP_DURATION_S

    def burn_windows(self, step_duration_s: float | None = None) -> tuple[BurnWindow, ...]:
        step = self.step_duration(step_duration_s)
        return tuple(p.resolve(step, self.canary.min_window_s) for p in self.canary.burn_policies)

    def analysis_window(self, step_duration_s: float | None = None) -> float:
        """Length of the primary window: the first burn policy's long window (one step by default)."""
        return self.burn_windows(step_duration_s)[0].long_s

    def compare_interval(self, step_duration_s: float | None = None) -> float:
        configured = self.canary.compare.interval_s
        if configured is not None:
            return configured
        return self.burn_windows(step_duration_s)[0].short_s

    def not_judged(self) -> tuple[str, ...]:
        """What the metric set cannot judge and the file does not ask for (said in validate and evidence)."""
        notes = []
        if self.availability is None and self.metrics.errors is None:
            notes.append(f"errors: {self.metrics.errors_note}")
        if self.metrics.histogram is None:
            notes.append(f"latency SLO and percentiles: {self.metrics.latency_note}")
        return tuple(notes)

    def empty_errors_are_zero(self) -> bool:
        """An empty error count reads as 0 errors (no failure yet), except for a server that creates its error
        series with the model: there an empty result means a wrong name or selector (NaN, never a pass)."""
        availability = self.availability
        own = availability is not None and availability.errors_query == build_queries(self.metrics).errors
        return not (self.metrics.errors_eager and own)

    def alert_thresholds(self) -> tuple[tuple[AlertWindow, float], ...]:
        return tuple((a, burn_threshold(a.budget_fraction, self.period_s, a.long_s)) for a in self.alerts)


# ---- defaults --------------------------------------------------------------------------


def default_availability(metrics: MetricSet, target: float = 0.999) -> Objective:
    """Availability from the metric set's error counter; ``errors_query`` None when it has none."""
    queries = build_queries(metrics)
    return Objective(kind="availability", target=target, total_query=queries.total, errors_query=queries.errors)


def default_latency(metrics: MetricSet, target: float = 0.95, threshold_s: float = 0.2) -> Objective:
    """Latency from the metric set's histogram; ``good_query`` None when it has none (no threshold SLO)."""
    queries = build_queries(metrics, threshold_s)
    return Objective(
        kind="latency",
        target=target,
        threshold_s=threshold_s,
        total_query=queries.latency_total or queries.total,
        good_query=queries.latency_good,
    )


def default_slo(model: str) -> SLOSpec:
    """99.9 % availability and 95 % of requests under 200 ms, with the default canary policy."""
    metrics = resolve()
    return SLOSpec(model=model, availability=default_availability(metrics), latency=default_latency(metrics))
