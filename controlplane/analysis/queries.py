"""The PromQL an analysis runs, built from an SLO spec: per-version selectors, window counts, sub-interval series.

Pure string building; the Prometheus adapter executes what this module writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

from controlplane.analysis.durations import format_duration
from controlplane.analysis.presets import BOTH, POD_LABELS, VERSION_LABEL, MetricSet, build_queries
from controlplane.analysis.slo import SLOSpec

CANARY = "canary"
STABLE = "stable"

_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class Selectors:
    """Label matchers (without braces) of one version: ``model`` for series carrying the server's model
    label, ``pod`` for series carrying only relabelled pod labels (None: not selectable this way)."""

    model: str
    pod: str | None


def selector(metrics: MetricSet, model: str, version: int | None = None, role: str | None = None) -> Selectors:
    """Matchers for one model, optionally one version (``3`` or ``v3``) and role, as ``metrics.identify`` says."""
    labels = metrics.labels
    name = escape_label_value(model)
    model_parts = [f'{labels.model}="{name}"']
    pod_parts = [f'{labels.pod_model}="{name}"']
    if version is not None:
        pattern = f'=~"v?{int(version)}"'
        if metrics.identify == POD_LABELS:
            model_parts.append(labels.pod_version + pattern)
            pod_parts.append(labels.pod_version + pattern)
        else:
            model_parts.append(f"{labels.version}{pattern}")
    if role is not None and metrics.identify in (POD_LABELS, BOTH):
        role_matcher = f'{labels.role}="{escape_label_value(role)}"'
        model_parts.append(role_matcher)
        pod_parts.append(role_matcher)
    pod = None if metrics.identify == VERSION_LABEL else ",".join(pod_parts)
    return Selectors(",".join(model_parts), pod)


def render(template: str, sel: Selectors, window_s: float) -> str:
    values = {"selector": sel.model, "window": format_duration(window_s)}
    if sel.pod is not None:
        values["pod_selector"] = sel.pod
    return Template(template).substitute(values)


@dataclass(frozen=True)
class CountQueries:
    """Instant queries counting one version's events over one window (evaluated at the window's end)."""

    total: str
    errors: str | None
    latency_total: str | None
    latency_good: str | None

    def items(self) -> dict[str, str]:
        named = {
            "total": self.total,
            "errors": self.errors,
            "latency_total": self.latency_total,
            "latency_good": self.latency_good,
        }
        return {k: v for k, v in named.items() if v is not None}


@dataclass(frozen=True)
class SeriesQueries:
    """Range queries: one value per sub-interval of ``interval_s`` (error ratio, latency in ms)."""

    error_ratio: str | None
    latency_ms: str
    interval_s: float

    def items(self) -> dict[str, str]:
        named = {"error_ratio": self.error_ratio, "latency_ms": self.latency_ms}
        return {k: v for k, v in named.items() if v is not None}


def count_queries(slo: SLOSpec, sel: Selectors, window_s: float) -> CountQueries:
    availability, latency = slo.availability, slo.latency
    total_template = availability.total_query if availability is not None else latency.total_query  # type: ignore[union-attr]
    latency_total = None
    if latency is not None and latency.total_query != total_template:
        latency_total = render(latency.total_query, sel, window_s)
    return CountQueries(
        total=render(total_template, sel, window_s),
        errors=render(availability.errors_query, sel, window_s)
        if availability is not None and availability.errors_query
        else None,
        latency_total=latency_total,
        latency_good=render(latency.good_query, sel, window_s) if latency is not None and latency.good_query else None,
    )


def latency_series_query(slo: SLOSpec, sel: Selectors, interval_s: float) -> str:
    queries = build_queries(slo.metrics)
    statistic = slo.canary.compare.latency_statistic
    if statistic == "mean" or queries.latency_buckets is None:
        return render(queries.latency_mean_ms, sel, interval_s)
    buckets = render(queries.latency_buckets, sel, interval_s)
    return f"1000 * histogram_quantile({_QUANTILES[statistic]}, {buckets})"


def series_queries(slo: SLOSpec, sel: Selectors, interval_s: float) -> SeriesQueries:
    error_ratio = None
    availability = slo.availability
    if availability is not None and availability.errors_query:
        errors = render(availability.errors_query, sel, interval_s)
        total = render(availability.total_query, sel, interval_s)
        # "or vector(0)": a version that never failed may have no error series at all
        error_ratio = f"(({errors}) or vector(0)) / ({total})"
    return SeriesQueries(error_ratio, latency_series_query(slo, sel, interval_s), interval_s)
