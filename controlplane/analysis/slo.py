"""Parse and validate an SLO spec written in YAML (see docs/slo.md) into ``controlplane.analysis.spec`` types.

Every problem is one ``InputError`` line naming the file and the field. The value types are re-exported
here, so ``from controlplane.analysis.slo import SLOSpec, default_slo, load_slo`` keeps working.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import yaml

from controlplane.analysis.burn import DAY, WORKBOOK_ALERTS, AlertWindow
from controlplane.analysis.fields import Section
from controlplane.analysis.presets import (
    DEFAULT_PRESET,
    IDENTIFY_MODES,
    PRESETS,
    VERSION_LABEL,
    MetricSet,
    format_le,
    resolve,
)
from controlplane.analysis.spec import (
    DEFAULT_BURN_POLICIES,
    DEFAULT_STEP_DURATION_S,
    BurnPolicy,
    BurnWindow,
    CanaryPolicy,
    CompareSettings,
    Objective,
    SLOSpec,
    default_availability,
    default_latency,
    default_slo,
)
from controlplane.errors import InputError

__all__ = [
    "DEFAULT_BURN_POLICIES",
    "DEFAULT_STEP_DURATION_S",
    "BurnPolicy",
    "BurnWindow",
    "CanaryPolicy",
    "CompareSettings",
    "MetricSet",
    "Objective",
    "SLOSpec",
    "default_availability",
    "default_latency",
    "default_slo",
    "format_le",
    "load_slo",
    "parse_slo",
    "parse_slo_yaml",
]

SEVERITIES = ("page", "ticket")
LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_KEYS = ("model", "version", "role", "outcome", "pod_model", "pod_version")


def _percent(section: Section, key: str) -> float:
    """A target written in percent (99.9 or "99.9%") as a ratio."""
    raw = section.get(key)
    where = section.field(key)
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            raw = float(raw.strip()[:-1])
        except ValueError:
            raise section.error(where, f"expected a percentage such as 99.9, got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise section.error(where, f"expected a percentage such as 99.9, got {raw!r}")
    if not 0 < raw < 100:
        raise section.error(where, f"must be a percentage strictly between 0 and 100, got {raw!r}")
    if raw < 1:
        raise section.error(where, f"{raw!r} looks like a ratio; write the target in percent (e.g. 99.9)")
    return float(raw) / 100.0


def _template(section: Section, key: str, default: str | None, metrics: MetricSet) -> str | None:
    if not section.has(key):
        section.get(key, None)
        return default
    value = section.text(key)
    where = section.field(key)
    if "${window}" not in value or ("${selector}" not in value and "${pod_selector}" not in value):
        problem = "query template must contain ${selector} and ${window} (or ${pod_selector} for pod-scoped series)"
        raise section.error(where, problem)
    if "${pod_selector}" in value and metrics.identify == VERSION_LABEL:
        raise section.error(where, "${pod_selector} needs relabelled pod labels: set metrics.identify: pod-labels")
    return value


def _optional_text(section: Section, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
    if not section.has(key):
        section.get(key, None)
        return None
    return section.text(key, pattern=pattern)


def _metrics(section: Section) -> MetricSet:
    preset = section.text("preset", DEFAULT_PRESET)
    if preset not in PRESETS:
        raise section.error(section.field("preset"), f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    identify = _optional_text(section, "identify")
    if identify is not None and identify not in IDENTIFY_MODES:
        raise section.error(section.field("identify"), f"must be one of {', '.join(IDENTIFY_MODES)}, got {identify!r}")
    labels_section = section.section("labels")
    labels = {k: v for k in _LABEL_KEYS if (v := _optional_text(labels_section, k, _LABEL_RE)) is not None}
    labels_section.done()
    try:
        metrics = resolve(
            preset,
            identify=identify,
            errors_from=_optional_text(section, "errors"),
            requests=_optional_text(section, "requests", _METRIC_RE),
            duration=_optional_text(section, "duration", _METRIC_RE),
            error_outcome=_optional_text(section, "error_outcome"),
            labels=labels,
        )
    except ValueError as exc:
        raise section.error(section.path, f"preset {preset}: {exc}") from None
    section.done()
    return metrics


def _availability(section: Section, metrics: MetricSet) -> Objective:
    base = default_availability(metrics, _percent(section, "target"))
    errors_query = _template(section, "errors_query", base.errors_query, metrics)
    if errors_query is None:
        raise section.error(
            section.path,
            f"preset {metrics.preset} cannot judge errors: {metrics.errors_note}; or remove the availability objective",
        )
    objective = replace(
        base, total_query=_template(section, "total_query", base.total_query, metrics), errors_query=errors_query
    )
    section.done()
    return objective


def _latency(section: Section, metrics: MetricSet) -> Objective:
    target = _percent(section, "target")
    threshold = section.duration("threshold", 0.2)
    base = default_latency(metrics, target, threshold)
    good_query = _template(section, "good_query", base.good_query, metrics)
    if good_query is None:
        raise section.error(
            section.path,
            f"preset {metrics.preset} has no latency histogram for a threshold SLO ({metrics.latency_note}); "
            "remove the latency objective (the comparison still uses the mean) or give good_query",
        )
    objective = replace(
        base, total_query=_template(section, "total_query", base.total_query, metrics), good_query=good_query
    )
    section.done()
    return objective


def _burn_policies(section: Section, key: str) -> tuple[BurnPolicy, ...]:
    raw = section.get(key, None)
    if raw is None:
        return DEFAULT_BURN_POLICIES
    where = section.field(key)
    if not isinstance(raw, list) or not raw:
        raise section.error(where, "expected a non-empty list of {burn, long, short} entries")
    policies = []
    for i, item in enumerate(raw):
        entry = Section(item, f"{where}[{i}]", section.source)
        burn = entry.number("burn", low=1.0, low_open=False)
        long_s = entry.duration("long", None)
        short_s = entry.duration("short", None)
        long_steps = entry.number("long_steps", 1.0, low=0.0, low_open=True)
        if long_s is not None and entry.has("long_steps"):
            raise entry.error(entry.field("long_steps"), "give either long or long_steps, not both")
        severity = entry.text("severity", "page")
        if severity not in SEVERITIES:
            raise entry.error(entry.field("severity"), f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        if long_s is not None and short_s is not None and short_s > long_s:
            raise entry.error(entry.field("short"), "the short window must not be longer than the long window")
        entry.done()
        policies.append(BurnPolicy(burn, long_s, short_s, long_steps, severity))
    return tuple(policies)


def _compare(section: Section, min_requests: float, metrics: MetricSet) -> CompareSettings:
    d = CompareSettings()
    statistic = section.text("latency", d.latency_statistic if metrics.histogram is not None else "mean")
    if statistic not in LATENCY_STATISTICS:
        raise section.error(section.field("latency"), f"must be one of {', '.join(LATENCY_STATISTICS)}")
    if statistic != "mean" and metrics.histogram is None:
        raise section.error(
            section.field("latency"),
            f"{statistic} needs a histogram; preset {metrics.preset}: {metrics.latency_note} (use mean)",
        )
    settings = CompareSettings(
        enabled=section.boolean("enabled", d.enabled),
        confidence=section.number("confidence", d.confidence, low=0.5, high=0.9999),
        tolerance=section.number("tolerance", d.tolerance, low=0.0),
        min_points=int(section.number("min_points", d.min_points, low=3)),
        min_requests=section.number("min_requests", min_requests, low=0.0),
        interval_s=section.duration("interval", None),
        latency_statistic=statistic,
        latency_floor_ms=section.number("latency_floor_ms", d.latency_floor_ms, low=0.0, low_open=True),
    )
    section.done()
    return settings


def _canary(section: Section, metrics: MetricSet) -> CanaryPolicy:
    d = CanaryPolicy()
    min_requests = section.number("min_requests", d.min_requests, low=1.0)
    policy = CanaryPolicy(
        step_duration_s=section.duration("step_duration", None),
        min_window_s=section.duration("min_window", d.min_window_s),
        min_requests=min_requests,
        burn_policies=_burn_policies(section, "burn_rates"),
        compare=_compare(section.section("compare"), min_requests, metrics),
    )
    section.done()
    return policy


def _alerts(section: Section, key: str) -> tuple[AlertWindow, ...]:
    raw = section.get(key, None)
    if raw is None:
        return WORKBOOK_ALERTS
    where = section.field(key)
    if not isinstance(raw, list) or not raw:
        raise section.error(where, "expected a non-empty list of {budget, long, short, severity} entries")
    alerts = []
    for i, item in enumerate(raw):
        entry = Section(item, f"{where}[{i}]", section.source)
        budget_raw = entry.get("budget")
        if isinstance(budget_raw, str) and budget_raw.strip().endswith("%"):
            try:
                budget = float(budget_raw.strip()[:-1]) / 100.0
            except ValueError:
                raise entry.error(entry.field("budget"), f"expected a percentage, got {budget_raw!r}") from None
        else:
            budget = entry.number("budget", low=0.0, low_open=True, high=1.0)
        if not 0 < budget <= 1:
            raise entry.error(entry.field("budget"), f"must be a fraction of the budget in (0, 1], got {budget_raw!r}")
        long_s = entry.duration("long")
        short_s = entry.duration("short")
        if short_s > long_s:
            raise entry.error(entry.field("short"), "the short window must not be longer than the long window")
        severity = entry.text("severity", "page")
        if severity not in SEVERITIES:
            raise entry.error(entry.field("severity"), f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        entry.done()
        alerts.append(AlertWindow(budget, long_s, short_s, severity))
    return tuple(alerts)


def parse_slo(data: object, source: str = "slo") -> SLOSpec:
    """Validate a decoded YAML document into an SLOSpec; InputError (one line, naming the field) otherwise."""
    root = Section(data, "", source)
    root.get("apiVersion", None)
    kind = root.get("kind", "SLO")
    if kind != "SLO":
        raise root.error("kind", f"expected SLO, got {kind!r}")
    model = root.text("model")
    metrics = _metrics(root.section("metrics"))
    objectives = root.section("objectives")
    availability = latency = None
    if objectives.has("availability"):
        availability = _availability(objectives.section("availability"), metrics)
    if objectives.has("latency"):
        latency = _latency(objectives.section("latency"), metrics)
    objectives.get("availability", None)
    objectives.get("latency", None)
    objectives.done()
    if availability is None and latency is None:
        raise root.error("objectives", "at least one of availability or latency is required")
    period = root.duration("period", 30 * DAY)
    canary = _canary(root.section("canary"), metrics)
    alerts = _alerts(root, "alerting")
    for alert in alerts:
        if alert.long_s > period:
            raise root.error("alerting", "an alert's long window is longer than the SLO period")
    root.done()
    return SLOSpec(
        model=model,
        availability=availability,
        latency=latency,
        period_s=period,
        metrics=metrics,
        canary=canary,
        alerts=alerts,
        source=source,
    )


def parse_slo_yaml(text: str, source: str = "slo") -> SLOSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_slo(data, source)


def load_slo(path: str | Path) -> SLOSpec:
    """Read and validate an SLO file (the one file read in this package)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"SLO file not found: {p}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"SLO file {p} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read SLO file {p}: {exc.strerror}") from None
    return parse_slo_yaml(text, p.name)
