"""Metric presets: what each model server exports, and the PromQL templates the judge runs on it.

``PRESETS`` is the one table (one ``Preset`` per server); ``resolve`` applies an SLO file's overrides to a
preset and gives the ``MetricSet`` an SLOSpec carries; ``build_queries`` is the one function that turns a
MetricSet into query templates (``${selector}``/``${pod_selector}`` and ``${window}``, see queries.py).

How canary and stable are told apart (``identify``):

- ``pod-labels``: by the pod's labels, copied onto every series by Prometheus' relabelling (docs/slo.md):
  ``rollout_model``, ``rollout_version``, ``rollout_role``. Works for every server.
- ``version-label``: by the version label the server itself exports (Triton ``version``); no relabelling,
  but only when that label holds the registry version number, and only for series that carry it.
- ``both``: the server's version label and the pod's role label (this project's server exports both).

A metric family is ``model``-scoped (it carries the server's model label, and its version label when the
server has one) or ``pod``-scoped (no model label, e.g. an HTTP-status counter): pod-scoped series are only
told apart by relabelled pod labels, so they need ``pod-labels`` or ``both``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

POD_LABELS = "pod-labels"
VERSION_LABEL = "version-label"
BOTH = "both"
IDENTIFY_MODES = (POD_LABELS, VERSION_LABEL, BOTH)

MODEL = "model"  # the family carries the server's model (and version) labels
POD = "pod"  # the family carries only what relabelling adds

DEFAULT_PRESET = "controlplane"
PROMETHEUS_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class Family:
    """One counter (or several, ``a|b``, matched by ``__name__``) with extra label matchers."""

    name: str
    scope: str = MODEL
    matchers: str = ""


@dataclass(frozen=True)
class Mean:
    """A mean latency from cumulative sums: ``to_ms`` * increase(sum) / increase(count)."""

    sum: Family
    count: Family
    to_ms: float


@dataclass(frozen=True)
class Labels:
    model: str  # the server's model label (model-scoped families)
    version: str | None  # the server's own version label, if any
    role: str = "rollout_role"  # the role label (relabelled from the pod; this project's server exports it)
    pod_model: str = "rollout_model"  # relabelled pod labels, for pod-scoped families
    pod_version: str = "rollout_version"


@dataclass(frozen=True)
class Preset:
    """One server's metrics. ``histogram`` is a seconds histogram (buckets: a threshold SLO and percentiles);
    ``mean`` the sum/count the baseline comparison may use when there is no histogram."""

    name: str
    server: str
    source: str  # where the names come from
    labels: Labels
    identify: str  # the default
    total: Family
    errors: Family | None
    errors_eager: bool  # the error series exists once the model served a request: absent means broken
    errors_note: str
    latency_note: str
    histogram: Family | None = None
    latency_total: Family | None = None  # the histogram's population when it is not ``total``
    mean: Mean | None = None  # None: from the histogram's _sum/_count (seconds)
    buckets: tuple[float, ...] | None = None  # default bucket bounds, when the server fixes them
    error_sources: dict[str, tuple[Family, Family]] = field(default_factory=dict)  # name: (total, errors)
    outcome_label: str | None = None  # this project's server: errors are total{outcome="error"}


_KNATIVE = (
    Family("revision_app_request_count", POD),
    Family("revision_app_request_count", POD, 'response_code_class="5xx"'),
)
_ISTIO = (
    Family("istio_requests_total", POD, 'reporter="destination"'),
    Family("istio_requests_total", POD, 'reporter="destination",response_code=~"5.."'),
)

#: BentoML counts its health probes (kubelet's /livez, /readyz) with the API calls: judge the APIs only.
_BENTOML_APIS = 'endpoint!~"/(livez|readyz|healthz|metrics)"'

#: The one table of presets.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="controlplane",
            server="this project's model server",
            source="docs/ARCHITECTURE.md (model_requests_total, model_request_duration_seconds)",
            labels=Labels("model", "version", role="role"),
            identify=BOTH,
            total=Family("model_requests_total"),
            errors=Family("model_requests_total", MODEL, 'outcome="error"'),
            errors_eager=False,
            errors_note='model_requests_total{outcome="error"}; no error series yet reads as 0 errors',
            latency_note="histogram model_request_duration_seconds: threshold SLO, percentiles and mean",
            histogram=Family("model_request_duration_seconds"),
            outcome_label="outcome",
        ),
        Preset(
            name="kserve",
            server="KServe Python ModelServer",
            source="kserve/metrics.py: request_{preprocess,predict,postprocess,explain}_seconds{model_name}",
            labels=Labels("model_name", None),
            identify=POD_LABELS,
            total=Family("request_predict_seconds_count"),
            errors=None,
            errors_eager=False,
            errors_note=(
                "the ModelServer exports no error counter (failed predicts are timed like good ones): errors "
                "come only from an HTTP-status counter in the same pod (metrics.errors: knative or istio) "
                "or objectives.availability.errors_query"
            ),
            latency_note="histogram request_predict_seconds (predict only, not pre/postprocess)",
            histogram=Family("request_predict_seconds"),
            latency_total=Family("request_predict_seconds_count"),
            buckets=PROMETHEUS_DEFAULT_BUCKETS,
            error_sources={"knative": _KNATIVE, "istio": _ISTIO},
        ),
        Preset(
            name="triton",
            server="NVIDIA Triton Inference Server",
            source="triton-inference-server/server docs/user_guide/metrics.md",
            labels=Labels("model", "version"),
            identify=VERSION_LABEL,
            total=Family("nv_inference_request_success|nv_inference_request_failure"),
            errors=Family("nv_inference_request_failure"),
            errors_eager=True,
            errors_note="nv_inference_request_failure (summed over reason); exists from model load",
            latency_note=(
                "cumulative nv_inference_request_duration_us only (histograms are off by default): mean "
                "latency for the comparison, no threshold SLO, no percentiles"
            ),
            mean=Mean(Family("nv_inference_request_duration_us"), Family("nv_inference_request_success"), 1e-3),
        ),
        Preset(
            name="vllm",
            server="vLLM OpenAI-compatible server",
            source="vllm-project/vllm docs/source/design/v1/metrics.md, vllm/v1/metrics/loggers.py",
            labels=Labels("model_name", None),
            identify=POD_LABELS,
            total=Family("http_requests_total", POD, 'handler=~"/v1/.+"'),
            errors=Family("http_requests_total", POD, 'handler=~"/v1/.+",status="5xx"'),
            errors_eager=False,
            errors_note='http_requests_total{status="5xx"} (no model label: per pod, /v1/ handlers)',
            latency_note="histogram vllm:e2e_request_latency_seconds (finished requests; buckets from 0.3 s)",
            histogram=Family("vllm:e2e_request_latency_seconds"),
            latency_total=Family("vllm:e2e_request_latency_seconds_count"),
            buckets=(0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0),
        ),
        Preset(
            name="mlserver",
            server="Seldon MLServer",
            source="mlserver/handlers/dataplane.py, mlserver/rest/app.py (starlette_exporter, prefix rest_server)",
            labels=Labels("model", "version"),
            identify=POD_LABELS,
            total=Family("model_infer_request_success_total|model_infer_request_failure_total"),
            errors=Family("model_infer_request_failure_total"),
            errors_eager=True,
            errors_note="model_infer_request_failure_total; exists once the model was called",
            latency_note=(
                "summary model_infer_request_duration has no quantiles: mean only; threshold SLO and "
                "percentiles from the REST histogram rest_server_request_duration_seconds (per pod, infer paths)"
            ),
            histogram=Family("rest_server_request_duration_seconds", POD, 'path=~"/v2/models/.+/infer"'),
            latency_total=Family("rest_server_request_duration_seconds_count", POD, 'path=~"/v2/models/.+/infer"'),
            mean=Mean(Family("model_infer_request_duration_sum"), Family("model_infer_request_duration_count"), 1e3),
            buckets=PROMETHEUS_DEFAULT_BUCKETS,
        ),
        Preset(
            name="torchserve",
            server="TorchServe (metrics_mode: prometheus)",
            source="pytorch/serve docs/metrics_api.md, docs/metrics.md",
            labels=Labels("model_name", "model_version"),
            identify=POD_LABELS,
            total=Family("ts_inference_requests_total"),
            errors=Family("Requests5XX", POD),
            errors_eager=False,
            errors_note="Requests5XX (no model label: the pod's 5xx over all its APIs)",
            latency_note=(
                "cumulative ts_inference_latency_microseconds only: mean latency for the comparison, no "
                "threshold SLO, no percentiles"
            ),
            mean=Mean(Family("ts_inference_latency_microseconds"), Family("ts_inference_requests_total"), 1e-3),
        ),
        Preset(
            name="bentoml",
            server="BentoML",
            source="bentoml/_internal/server/http/instruments.py (namespace bentoml_service)",
            labels=Labels("service_name", "service_version"),
            identify=POD_LABELS,
            total=Family("bentoml_service_request_total", MODEL, _BENTOML_APIS),
            errors=Family("bentoml_service_request_total", MODEL, f'{_BENTOML_APIS},http_response_code=~"5.."'),
            errors_eager=False,
            errors_note='bentoml_service_request_total{http_response_code=~"5.."} (API endpoints, not probes)',
            latency_note="histogram bentoml_service_request_duration_seconds: threshold SLO, percentiles, mean",
            histogram=Family("bentoml_service_request_duration_seconds", MODEL, _BENTOML_APIS),
            latency_total=Family("bentoml_service_request_duration_seconds_count", MODEL, _BENTOML_APIS),
        ),
    )
}


@dataclass(frozen=True)
class MetricSet:
    """A preset with an SLO file's overrides applied: what an SLOSpec's queries are built from."""

    preset: str
    identify: str
    labels: Labels
    total: Family
    errors: Family | None
    errors_eager: bool
    errors_note: str
    latency_note: str
    histogram: Family | None
    latency_total: Family | None
    mean: Mean
    buckets: tuple[float, ...] | None  # the histogram's bucket bounds when the server fixes them

    @property
    def server(self) -> str:
        return PRESETS[self.preset].server

    def has_pod_families(self) -> bool:
        families = (self.total, self.errors, self.histogram, self.latency_total)
        return any(f is not None and f.scope == POD for f in families)


def resolve(
    name: str = DEFAULT_PRESET,
    *,
    identify: str | None = None,
    errors_from: str | None = None,
    requests: str | None = None,
    duration: str | None = None,
    error_outcome: str | None = None,
    labels: dict[str, str] | None = None,
) -> MetricSet:
    """The preset ``name`` with overrides; ValueError (a one-line reason) when they do not fit it."""
    preset = PRESETS[name]
    chosen = identify or preset.identify
    if chosen in (VERSION_LABEL, BOTH) and preset.labels.version is None and "version" not in (labels or {}):
        raise ValueError(f"{preset.server} exports no version label: use identify: {POD_LABELS}")
    labels = dict(labels or {})
    outcome = labels.pop("outcome", None)
    label_set = replace(preset.labels, **labels)
    total, errors, errors_eager, errors_note = preset.total, preset.errors, preset.errors_eager, preset.errors_note
    if preset.outcome_label is not None:
        total = replace(total, name=requests or total.name)
        matcher = f'{outcome or preset.outcome_label}="{error_outcome or "error"}"'
        errors = Family(total.name, MODEL, matcher)
    elif requests or outcome or error_outcome:
        raise ValueError(
            f"requests, labels.outcome and error_outcome are for preset {DEFAULT_PRESET}; "
            "override a preset's counts with objectives.*_query"
        )
    if errors_from is not None:
        if errors_from not in preset.error_sources:
            known = ", ".join(preset.error_sources) or "none"
            raise ValueError(f"errors: {errors_from!r} is not an error source of {name} (known: {known})")
        total, errors = preset.error_sources[errors_from]
        errors_eager = False
        errors_note = f"{errors.name}{{{errors.matchers}}} of the pod ({errors_from}, HTTP status)"
    histogram, latency_total, buckets = preset.histogram, preset.latency_total, preset.buckets
    if duration is not None:
        buckets = None
        if histogram is None:
            raise ValueError(f"duration: {preset.server} exports no latency histogram to rename")
        histogram = replace(histogram, name=duration)
        if latency_total is not None:
            latency_total = replace(latency_total, name=f"{duration}_count")
    mean = preset.mean
    if mean is None:
        assert histogram is not None, f"preset {name} has neither a histogram nor a mean"
        mean = Mean(replace(histogram, name=f"{histogram.name}_sum"), replace(histogram, name=f"{histogram.name}_count"), 1e3)
    metric_set = MetricSet(
        preset=name,
        identify=chosen,
        labels=label_set,
        total=total,
        errors=errors,
        errors_eager=errors_eager,
        errors_note=errors_note,
        latency_note=preset.latency_note,
        histogram=histogram,
        latency_total=latency_total,
        mean=mean,
        buckets=buckets,
    )
    if chosen == VERSION_LABEL and metric_set.has_pod_families():
        pods = [f.name for f in (total, errors, histogram) if f is not None and f.scope == POD]
        raise ValueError(f"{', '.join(pods)} carry no model or version label: use identify: {POD_LABELS} or {BOTH}")
    return metric_set


# ---- the one query builder -------------------------------------------------------------


@dataclass(frozen=True)
class PresetQueries:
    """Templates (``${selector}`` or ``${pod_selector}``, ``${window}``) for one MetricSet.

    ``latency_total`` None: the latency SLI counts ``total``'s requests. ``latency_buckets`` None: no
    histogram (no threshold SLO, no percentiles). ``latency_good`` needs a threshold and a histogram."""

    total: str
    errors: str | None
    latency_total: str | None
    latency_good: str | None
    latency_buckets: str | None
    latency_mean_ms: str


def _series(family: Family, suffix: str = "", extra: str = "") -> str:
    placeholder = "${pod_selector}" if family.scope == POD else "${selector}"
    matchers = [placeholder, *(m for m in (family.matchers, extra) if m)]
    return f"{family.name}{suffix}{{{','.join(matchers)}}}"


def _count(family: Family, suffix: str = "", extra: str = "") -> str:
    """Events over the window; a family of several counters (``a|b``) adds them, and is empty only when
    all of them are (``increase`` drops the names, so one ``__name__=~`` selector would collide)."""
    counts = [
        f"sum(increase({_series(replace(family, name=name), suffix, extra)}[${{window}}]))"
        for name in family.name.split("|")
    ]
    if len(counts) == 1:
        return counts[0]
    return f"(({' + '.join(counts)}) or {' or '.join(counts)})"


def format_le(threshold_s: float) -> str:
    """A bucket bound as Prometheus clients write the ``le`` label (0.2 → "0.2", 1 → "1.0")."""
    return repr(float(threshold_s))


def build_queries(metrics: MetricSet, threshold_s: float | None = None) -> PresetQueries:
    """Every query template the judge needs for ``metrics``; the latency good-events count at ``threshold_s``."""
    hist, mean = metrics.histogram, metrics.mean
    good = None
    if hist is not None and threshold_s is not None:
        good = _count(hist, "_bucket", f'le="{format_le(threshold_s)}"')
    return PresetQueries(
        total=_count(metrics.total),
        errors=_count(metrics.errors) if metrics.errors is not None else None,
        latency_total=_count(metrics.latency_total) if metrics.latency_total is not None else None,
        latency_good=good,
        latency_buckets=f"sum by (le) (increase({_series(hist, '_bucket')}[${{window}}]))" if hist else None,
        latency_mean_ms=f"{mean.to_ms:g} * {_count(mean.sum)} / {_count(mean.count)}",
    )
