"""The SLO spec of one model: objectives, their PromQL, the canary burn policy and the baseline comparison.

A spec is written in YAML (see docs/slo.md) and validated into frozen dataclasses; every problem is one
``InputError`` line naming the file and the field. ``default_slo(model)`` is the spec used when none is given.

Query templates are PromQL that count events over a window; ``${selector}`` becomes the label matchers of
one version (``model="m",version=~"v?3",role="canary"``) and ``${window}`` a range such as ``30s``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from controlplane.analysis.burn import DAY, WORKBOOK_ALERTS, AlertWindow, burn_threshold
from controlplane.analysis.durations import parse_duration
from controlplane.errors import InputError

DEFAULT_STEP_DURATION_S = 30.0
SEVERITIES = ("page", "ticket")
LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PLACEHOLDERS = ("${selector}", "${window}")


# ---- value types -----------------------------------------------------------------------


@dataclass(frozen=True)
class MetricNames:
    """Names of the exported metrics and their labels (docs/ARCHITECTURE.md)."""

    requests: str = "model_requests_total"
    duration: str = "model_request_duration_seconds"
    model_label: str = "model"
    version_label: str = "version"
    role_label: str = "role"
    outcome_label: str = "outcome"
    error_outcome: str = "error"


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
    metrics: MetricNames = field(default_factory=MetricNames)
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

    def alert_thresholds(self) -> tuple[tuple[AlertWindow, float], ...]:
        return tuple((a, burn_threshold(a.budget_fraction, self.period_s, a.long_s)) for a in self.alerts)


# ---- defaults --------------------------------------------------------------------------


def format_le(threshold_s: float) -> str:
    """A bucket bound as Prometheus clients write the ``le`` label (0.2 → "0.2", 1 → "1.0")."""
    return repr(float(threshold_s))


def default_availability(metrics: MetricNames, target: float = 0.999) -> Objective:
    m = metrics
    return Objective(
        kind="availability",
        target=target,
        total_query=f"sum(increase({m.requests}{{${{selector}}}}[${{window}}]))",
        errors_query=(
            f'sum(increase({m.requests}{{${{selector}},{m.outcome_label}="{m.error_outcome}"}}[${{window}}]))'
        ),
    )


def default_latency(metrics: MetricNames, target: float = 0.95, threshold_s: float = 0.2) -> Objective:
    m = metrics
    return Objective(
        kind="latency",
        target=target,
        threshold_s=threshold_s,
        total_query=f"sum(increase({m.requests}{{${{selector}}}}[${{window}}]))",
        good_query=f'sum(increase({m.duration}_bucket{{${{selector}},le="{format_le(threshold_s)}"}}[${{window}}]))',
    )


def default_slo(model: str) -> SLOSpec:
    """99.9 % availability and 95 % of requests under 200 ms, with the default canary policy."""
    metrics = MetricNames()
    return SLOSpec(model=model, availability=default_availability(metrics), latency=default_latency(metrics))


# ---- parsing ---------------------------------------------------------------------------


_MISSING: Any = object()


class _Section:
    """A mapping being read; remembers its path for messages and rejects unknown keys."""

    def __init__(self, data: object, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise self.error(path, f"expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.seen: set[str] = set()

    def error(self, path: str, problem: str) -> InputError:
        return InputError(f"{self.source}: {path or 'spec'}: {problem}")

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.seen.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if default is _MISSING:
            raise self.error(self.field(key), "required field is missing")
        return default

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def section(self, key: str) -> _Section:
        return _Section(self.get(key, {}), self.field(key), self.source)

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(self.field(key), f"expected a number, got {value!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise self.error(self.field(key), f"must be {'>' if low_open else '>='} {low:g}, got {value!r}")
        if high is not None and value > high:
            raise self.error(self.field(key), f"must be <= {high:g}, got {value!r}")
        return float(value)

    def duration(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is default and default is not _MISSING:
            return value  # type: ignore[no-any-return]
        try:
            return parse_duration(value, self.field(key))
        except InputError as exc:
            raise InputError(f"{self.source}: {exc}") from None

    def text(self, key: str, default: Any = _MISSING, pattern: re.Pattern[str] | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(self.field(key), f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.error(self.field(key), f"invalid name {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(self.field(key), f"expected true or false, got {value!r}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.error(self.field(unknown[0]), f"unknown field (allowed: {', '.join(sorted(self.seen))})")


def _percent(section: _Section, key: str) -> float:
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


def _template(section: _Section, key: str, default: str) -> str:
    value = section.text(key, default)
    missing = [p for p in _PLACEHOLDERS if p not in value]
    if missing:
        raise section.error(section.field(key), f"query template must contain {' and '.join(missing)}")
    return value


def _metrics(section: _Section) -> MetricNames:
    d = MetricNames()
    labels = section.section("labels")
    metrics = MetricNames(
        requests=section.text("requests", d.requests, _METRIC_RE),
        duration=section.text("duration", d.duration, _METRIC_RE),
        model_label=labels.text("model", d.model_label, _LABEL_RE),
        version_label=labels.text("version", d.version_label, _LABEL_RE),
        role_label=labels.text("role", d.role_label, _LABEL_RE),
        outcome_label=labels.text("outcome", d.outcome_label, _LABEL_RE),
        error_outcome=section.text("error_outcome", d.error_outcome),
    )
    labels.done()
    section.done()
    return metrics


def _availability(section: _Section, metrics: MetricNames) -> Objective:
    base = default_availability(metrics, _percent(section, "target"))
    objective = replace(
        base,
        total_query=_template(section, "total_query", base.total_query),
        errors_query=_template(section, "errors_query", base.errors_query or ""),
    )
    section.done()
    return objective


def _latency(section: _Section, metrics: MetricNames) -> Objective:
    target = _percent(section, "target")
    threshold = section.duration("threshold", 0.2)
    base = default_latency(metrics, target, threshold)
    objective = replace(
        base,
        total_query=_template(section, "total_query", base.total_query),
        good_query=_template(section, "good_query", base.good_query or ""),
    )
    section.done()
    return objective


def _burn_policies(section: _Section, key: str) -> tuple[BurnPolicy, ...]:
    raw = section.get(key, None)
    if raw is None:
        return DEFAULT_BURN_POLICIES
    where = section.field(key)
    if not isinstance(raw, list) or not raw:
        raise section.error(where, "expected a non-empty list of {burn, long, short} entries")
    policies = []
    for i, item in enumerate(raw):
        entry = _Section(item, f"{where}[{i}]", section.source)
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


def _compare(section: _Section, min_requests: float) -> CompareSettings:
    d = CompareSettings()
    statistic = section.text("latency", d.latency_statistic)
    if statistic not in LATENCY_STATISTICS:
        raise section.error(section.field("latency"), f"must be one of {', '.join(LATENCY_STATISTICS)}")
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


def _canary(section: _Section) -> CanaryPolicy:
    d = CanaryPolicy()
    min_requests = section.number("min_requests", d.min_requests, low=1.0)
    policy = CanaryPolicy(
        step_duration_s=section.duration("step_duration", None),
        min_window_s=section.duration("min_window", d.min_window_s),
        min_requests=min_requests,
        burn_policies=_burn_policies(section, "burn_rates"),
        compare=_compare(section.section("compare"), min_requests),
    )
    section.done()
    return policy


def _alerts(section: _Section, key: str) -> tuple[AlertWindow, ...]:
    raw = section.get(key, None)
    if raw is None:
        return WORKBOOK_ALERTS
    where = section.field(key)
    if not isinstance(raw, list) or not raw:
        raise section.error(where, "expected a non-empty list of {budget, long, short, severity} entries")
    alerts = []
    for i, item in enumerate(raw):
        entry = _Section(item, f"{where}[{i}]", section.source)
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
    root = _Section(data, "", source)
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
    canary = _canary(root.section("canary"))
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
    except OSError as exc:
        raise InputError(f"cannot read SLO file {p}: {exc.strerror}") from None
    return parse_slo_yaml(text, p.name)
