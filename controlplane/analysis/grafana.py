"""Grafana dashboards for an SLO, built with grafana-foundation-sdk (the ``grafana`` extra): executive, on-call, debug.

Every panel queries either the recording rules ``ctl slo rules`` writes (``controlplane.analysis.rules``: the
``slo:*`` series, selected by ``sloth_service="$model"``), the alerts those rules define (Prometheus' own
``ALERTS`` series), or the metrics this project's model server exports (``controlplane.serving_metrics``,
selected by ``model="$model",version=~"$version"``). ``$model``, ``$version`` and ``$datasource`` are dashboard
variables. What has no metric source (per-head similarity, attention distributions, incidents' evidence) is a
text panel saying where it is, never an invented metric.

Pure: builds JSON-ready dicts; writing files is the caller's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom_model
from grafana_foundation_sdk.models import text as text_model

from controlplane.analysis.durations import format_duration
from controlplane.analysis.rules import recorded_windows
from controlplane.analysis.slo import SLOSpec
from controlplane.serving_metrics import DURATION, REQUESTS

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SLO = 'sloth_service="$model"'  # the recording rules' series of this model
SERVED = 'model="$model",version=~"$version"'  # the serving metrics of the chosen versions
BY = "version, role"
RATE = "$__rate_interval"
TOTAL = f"{REQUESTS}_total"
ERROR = 'outcome="error"'
NO_SOURCE = (
    "**Per-head similarity and attention distributions have no Prometheus metric.** The validators compute "
    "them before a rollout (`ctl validate`; head-collapse and quantization checks) and store them with the "
    "validation evidence: see them on the rollout's page of `ctl dashboard`, or `ctl history MODEL -o json`."
)
INCIDENTS = (
    "Incidents, with their evidence and runbook, live in the control plane's store, not in Prometheus: "
    "`ctl incident list`, `ctl incident show ID`, or the rollout page of `ctl dashboard`. The panels beside "
    "this one show the SLO alerts Prometheus fires from the rules of `ctl slo rules`."
)


@dataclass(frozen=True)
class Query:
    """One panel target: PromQL (with dashboard variables), its legend, instant or range."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    """A panel before it is built: kind (timeseries, stat, table, text), title, queries, unit, size."""

    kind: str
    title: str
    description: str
    queries: tuple[Query, ...] = ()
    unit: str = ""
    width: int = 12
    height: int = 8
    content: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()


def _budget_burn(window: str) -> str:
    """Burn rate over one recorded window: the SLI error ratio over the error budget."""
    return (
        f"slo:sli_error:ratio_rate{window}{{{SLO}}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left()\n"
        f"slo:error_budget:ratio{{{SLO}}}"
    )


def _rate(metric: str, matchers: str = "", by: str = BY) -> str:
    extra = f",{matchers}" if matchers else ""
    return f"sum by ({by}) (rate({metric}{{{SERVED}{extra}}}[{RATE}]))"


def _quantile(q: float, metric: str = DURATION) -> str:
    return f"histogram_quantile({q:g}, sum by (le, {BY}) (rate({metric}_bucket{{{SERVED}}}[{RATE}])))"


def executive(slo: SLOSpec) -> list[PanelSpec]:
    page = [t for a, t in slo.alert_thresholds() if a.severity == "page"]
    ticket = [t for a, t in slo.alert_thresholds() if a.severity == "ticket"]
    steps = ((0.0, "green"), *([(min(ticket), "orange")] if ticket else []), *([(min(page), "red")] if page else []))
    burns = tuple(Query(_budget_burn(w), f"{{{{sloth_slo}}}} {w}") for w in (format_duration(s) for s in recorded_windows(slo)))
    return [
        PanelSpec(
            "stat",
            "Error budget remaining",
            f"Share of the {format_duration(slo.period_s)} error budget left, per SLO (slo:period_error_budget_remaining:ratio).",
            (Query(f"slo:period_error_budget_remaining:ratio{{{SLO}}}", "{{sloth_slo}}", instant=True),),
            unit="percentunit",
            width=8,
            thresholds=((0.0, "red"), (0.25, "orange"), (0.5, "green")),
        ),
        PanelSpec(
            "stat",
            "Firing SLO alerts",
            "Page and ticket burn-rate alerts firing now (ALERTS from the rules).",
            (Query(f'count(ALERTS{{alertstate="firing",{SLO}}}) or vector(0)', "firing", instant=True),),
            width=4,
            thresholds=((0.0, "green"), (1.0, "red")),
        ),
        PanelSpec(
            "table",
            "Active deployments",
            "Versions answering requests now, by role, and their share of traffic.",
            (Query(f"{_rate(TOTAL)}\n/ ignoring({BY}) group_left()\nsum(rate({TOTAL}{{{SERVED}}}[{RATE}]))", instant=True),),
            unit="percentunit",
            width=12,
        ),
        PanelSpec(
            "timeseries",
            "SLO burn rate (5m) against the alert thresholds",
            "slo:current_burn_rate:ratio; the lines turn orange at the ticket and red at the page threshold.",
            (Query(f"slo:current_burn_rate:ratio{{{SLO}}}", "{{sloth_slo}}"),),
            width=12,
            thresholds=steps,
        ),
        PanelSpec(
            "timeseries",
            "Burn rate per alert window",
            "Each window the alerts combine (long AND short).",
            burns,
            width=12,
            thresholds=steps,
        ),
        PanelSpec(
            "table",
            "SLO alerts (incidents)",
            "The burn alerts pending or firing, with severity.",
            (Query(f"sum by (alertname, sloth_slo, severity, alertstate) (ALERTS{{{SLO}}})", instant=True),),
            width=12,
        ),
        PanelSpec("text", "Incidents", "Where the incidents are.", content=INCIDENTS, width=12, height=4),
        PanelSpec(
            "timeseries",
            "Traffic by version",
            "Requests per second per version and role.",
            (Query(_rate(TOTAL), "v{{version}} {{role}}"),),
            unit="reqps",
            width=12,
        ),
    ]


def oncall(slo: SLOSpec) -> list[PanelSpec]:
    latency = slo.latency
    bound = ((0.0, "green"), (latency.threshold_s, "red")) if latency is not None and latency.threshold_s else ()
    errors = f"{_rate(TOTAL, ERROR)}\n/\n{_rate(TOTAL)}"
    return [
        PanelSpec(
            "timeseries",
            "Latency p95 and p99 by version",
            f"From the {DURATION} histogram; red above the latency SLO's threshold.",
            (Query(_quantile(0.95), "p95 v{{version}} {{role}}"), Query(_quantile(0.99), "p99 v{{version}} {{role}}")),
            unit="s",
            thresholds=bound,
        ),
        PanelSpec(
            "timeseries",
            "Error ratio by version",
            'Failed requests (outcome="error") over all requests.',
            (Query(errors, "v{{version}} {{role}}"),),
            unit="percentunit",
        ),
        PanelSpec(
            "timeseries",
            "Out-of-memory errors",
            "onnxruntime allocation failures answered 503, per second.",
            (Query(_rate("model_inference_errors_total", 'kind="out_of_memory"'), "v{{version}} {{role}}"),),
            unit="reqps",
            width=8,
        ),
        PanelSpec(
            "timeseries",
            "Failures by kind",
            "model_inference_errors_total by kind (out_of_memory, bad_input, internal).",
            (Query(_rate("model_inference_errors_total", by=f"{BY}, kind"), "v{{version}} {{role}} {{kind}}"),),
            unit="reqps",
            width=8,
        ),
        PanelSpec(
            "timeseries",
            "Load: in-flight requests and queued texts",
            "No memory metric is exported (see docs/grafana.md); the queue is what fills before memory does.",
            (
                Query(f"sum by ({BY}) (model_inflight_requests{{{SERVED}}})", "in flight v{{version}} {{role}}"),
                Query(f"sum by ({BY}) (model_queue_texts{{{SERVED}}})", "queued v{{version}} {{role}}"),
            ),
            width=8,
        ),
        PanelSpec(
            "table",
            "Recent deploys",
            "Versions that started serving in the dashboard's range, with the seconds from start to ready (model_load_seconds).",
            (Query(f"max by ({BY}) (max_over_time(model_load_seconds{{{SERVED}}}[$__range]))", instant=True),),
            unit="s",
        ),
        PanelSpec(
            "table",
            "Top offenders by model version",
            "Failed requests per version over the dashboard's range.",
            (Query(f"topk(5, sum by ({BY}) (increase({TOTAL}{{{SERVED},{ERROR}}}[$__range])))", instant=True),),
        ),
    ]


def debug(slo: SLOSpec) -> list[PanelSpec]:
    return [
        PanelSpec(
            "timeseries",
            "Tokenization errors",
            "Texts the tokenizer could not encode (answered 400).",
            (Query(_rate("model_tokenization_errors_total"), "v{{version}} {{role}}"),),
            unit="reqps",
            width=8,
        ),
        PanelSpec(
            "timeseries",
            "Truncations",
            "Texts cut to the model's maximum length.",
            (Query(_rate("model_truncations_total"), "v{{version}} {{role}}"),),
            unit="reqps",
            width=8,
        ),
        PanelSpec(
            "timeseries",
            "Unhealthy outputs",
            "Embeddings not finite or of zero norm, by reason.",
            (Query(_rate("model_output_unhealthy_total", by=f"{BY}, reason"), "v{{version}} {{role}} {{reason}}"),),
            unit="reqps",
            width=8,
        ),
        PanelSpec(
            "timeseries",
            "Tokens per text (p50, p95)",
            "The sequence-length mix (model_request_tokens).",
            (
                Query(_quantile(0.5, "model_request_tokens"), "p50 v{{version}} {{role}}"),
                Query(_quantile(0.95, "model_request_tokens"), "p95 v{{version}} {{role}}"),
            ),
        ),
        PanelSpec(
            "timeseries",
            "Batch size and queue wait (p95)",
            "Texts per onnxruntime call; time queued.",
            (
                Query(_quantile(0.95, "model_batch_size"), "batch p95 v{{version}} {{role}}"),
                Query(_quantile(0.95, "model_queue_wait_seconds"), "wait p95 (s) v{{version}} {{role}}"),
            ),
        ),
        PanelSpec(
            "text", "Per-head similarity and attention distributions", "No metric source.", content=NO_SOURCE, width=24, height=4
        ),
    ]


TITLES: dict[str, tuple[str, Callable[[SLOSpec], list[PanelSpec]]]] = {
    "executive": ("executive: SLO burn, deployments, incidents", executive),
    "oncall": ("on-call: latency, errors, OOMs, deploys", oncall),
    "debug": ("debug: tokenization, outputs, batching", debug),
}
KINDS = tuple(TITLES)


def _threshold_config(steps: Sequence[tuple[float, str]]) -> dash.ThresholdsConfig:
    values = [model.Threshold(value=None if i == 0 else v, color=c) for i, (v, c) in enumerate(steps)]
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(values)


def _build_panel(spec: PanelSpec) -> Any:
    builders = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel, "text": text.Panel}
    panel = builders[spec.kind]().title(spec.title).description(spec.description).span(spec.width).height(spec.height)
    if spec.kind == "text":
        return panel.mode(text_model.TextMode.MARKDOWN).content(spec.content)
    panel = panel.datasource(DATASOURCE)
    for i, q in enumerate(spec.queries):
        target = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).legend_format(q.legend or "__auto")
        if q.instant:
            target = target.instant().format(prom_model.PromQueryFormat.TABLE)
        panel = panel.with_target(target.datasource(DATASOURCE))
    if spec.unit:
        panel = panel.unit(spec.unit)
    if spec.thresholds:
        panel = panel.thresholds(_threshold_config(spec.thresholds))
    if spec.kind == "timeseries" and spec.thresholds:
        panel = panel.thresholds_style(_line_style())
    return panel


def _line_style() -> common_builders.GraphThresholdsStyleConfig:
    return common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)


def _variables(slo: SLOSpec) -> list[Any]:
    name = model.VariableOption(selected=True, text=slo.model, value=slo.model)
    return [
        dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        dash.QueryVariable("model")
        .label("model")
        .datasource(DATASOURCE)
        .current(name)
        .query(f"label_values({TOTAL}, model)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED),
        dash.QueryVariable("version")
        .label("version")
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .query(f'label_values({TOTAL}{{model="$model"}}, version)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED),
    ]


def uid(slo: SLOSpec, kind: str) -> str:
    """A stable dashboard uid (Grafana allows 40 characters of [A-Za-z0-9_-])."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{slo.model}-{kind}")[-40:]


def build(slo: SLOSpec, kind: str) -> dict[str, Any]:
    """One dashboard (``kind`` in KINDS) as the JSON object Grafana imports."""
    title, panels = TITLES[kind]
    board = (
        dash.Dashboard(f"{slo.model} {title}")
        .uid(uid(slo, kind))
        .tags(["attn-controlplane", slo.model, kind])
        .description(f"Generated by `ctl slo dashboards` from {slo.source}. Do not edit: regenerate.")
        .time("now-1h", "now")
        .refresh("30s")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in _variables(slo):
        board = board.with_variable(variable)
    for spec in panels(slo):
        board = board.with_panel(_build_panel(spec))
    return json.loads(JSONEncoder(sort_keys=True).encode(board.build()))


def build_all(slo: SLOSpec) -> dict[str, dict[str, Any]]:
    return {kind: build(slo, kind) for kind in KINDS}


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of a built dashboard."""
    return [(p["title"], t["expr"]) for p in board.get("panels", []) for t in p.get("targets", [])]


def load(board: dict[str, Any]) -> model.Dashboard:
    """Decode a dashboard's JSON through the SDK's model (its panel plugins registered)."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    return model.Dashboard.from_json(board)
