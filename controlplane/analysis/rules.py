"""Prometheus recording and alerting rules for an SLO, in the spirit of Sloth.

Per objective (``sloth_slo`` = ``requests-availability`` / ``requests-latency``):

- ``slo:sli_error:ratio_rate<window>`` for every alert window, plus the period (averaged over time);
- ``slo:objective:ratio``, ``slo:error_budget:ratio``, ``slo:time_period:days``,
  ``slo:current_burn_rate:ratio``, ``slo:period_burn_rate:ratio``, ``slo:period_error_budget_remaining:ratio``;
- a page alert and a ticket alert, each firing when a long AND a short window burn faster than
  budget fraction * period / long window (14.4, 6 / 3, 1 for 30 days).

All series carry ``sloth_id``, ``sloth_service`` and ``sloth_slo``; the SLIs also ``sloth_window``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from controlplane.analysis.burn import AlertWindow
from controlplane.analysis.durations import format_duration
from controlplane.analysis.queries import Selectors, escape_label_value, render, selector
from controlplane.analysis.slo import Objective, SLOSpec

CURRENT_WINDOW_S = 300.0  # slo:current_burn_rate:ratio uses the 5 m SLI, as Sloth does


def sli_error_query(objective: Objective, sel: Selectors, window_s: float) -> str:
    """PromQL for the objective's bad-event ratio over ``window_s``."""
    total = render(objective.total_query, sel, window_s)
    if objective.kind == "availability":
        # "or vector(0)": with no error series yet the ratio is 0, not missing
        return f"(({render(objective.errors_query or '', sel, window_s)}) or vector(0))\n/\n({total})"
    return f"1 - (\n({render(objective.good_query or '', sel, window_s)})\n/\n({total})\n)"


def _labels(slo: SLOSpec, objective: Objective) -> dict[str, str]:
    return {
        "sloth_id": f"{slo.model}-{objective.name}",
        "sloth_service": slo.model,
        "sloth_slo": objective.name,
    }


def _matchers(labels: dict[str, str]) -> str:
    return ", ".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())


def _alert_name(slo: SLOSpec, objective: Objective, severity: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", f"{slo.model} {objective.kind} slo burn {severity}")
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    return name if re.match(r"^[A-Za-z_]", name) else f"SLO{name}"


def recorded_windows(slo: SLOSpec) -> list[float]:
    """The windows (seconds) every objective's SLI is recorded over: the 5 m one and each alert's two."""
    lengths = {CURRENT_WINDOW_S}
    for alert in slo.alerts:
        lengths.update((alert.long_s, alert.short_s))
    return sorted(lengths)


def _sli_group(slo: SLOSpec, objective: Objective) -> dict[str, Any]:
    labels = _labels(slo, objective)
    sel = selector(slo.metrics, slo.model)
    rules: list[dict[str, Any]] = []
    for window in recorded_windows(slo):
        name = format_duration(window)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{name}",
                "expr": sli_error_query(objective, sel, window),
                "labels": {**labels, "sloth_window": name},
            }
        )
    period = format_duration(slo.period_s)
    base = f"slo:sli_error:ratio_rate{format_duration(CURRENT_WINDOW_S)}{{{_matchers(labels)}}}"
    rules.append(
        {
            "record": f"slo:sli_error:ratio_rate{period}",
            "expr": f"sum_over_time({base}[{period}])\n/ ignoring (sloth_window)\ncount_over_time({base}[{period}])",
            "labels": {**labels, "sloth_window": period},
        }
    )
    return {"name": f"sloth-slo-sli-recordings-{labels['sloth_id']}", "rules": rules}


def _meta_group(slo: SLOSpec, objective: Objective) -> dict[str, Any]:
    labels = _labels(slo, objective)
    m = _matchers(labels)
    on = "on(sloth_id, sloth_slo, sloth_service) group_left"
    current = format_duration(CURRENT_WINDOW_S)
    period = format_duration(slo.period_s)
    rules = [
        {"record": "slo:objective:ratio", "expr": f"vector({objective.target!r})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1 - {objective.target!r})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({slo.period_s / 86400:g})", "labels": labels},
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate{current}{{{m}}}\n/ {on}\nslo:error_budget:ratio{{{m}}}",
            "labels": labels,
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate{period}{{{m}}}\n/ {on}\nslo:error_budget:ratio{{{m}}}",
            "labels": labels,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{{{m}}}",
            "labels": labels,
        },
        {
            "record": "sloth_slo_info",
            "expr": "vector(1)",
            "labels": {**labels, "sloth_mode": "controlplane", "sloth_objective": f"{objective.target * 100:g}"},
        },
    ]
    return {"name": f"sloth-slo-meta-recordings-{labels['sloth_id']}", "rules": rules}


def _condition(labels: dict[str, str], alert: AlertWindow, threshold: float, objective: Objective) -> str:
    m = _matchers(labels)
    factor = f"({threshold:.6g} * {1 - objective.target:.6g})"
    parts = [
        f"max(slo:sli_error:ratio_rate{format_duration(w)}{{{m}}} > {factor}) without (sloth_window)"
        for w in (alert.short_s, alert.long_s)
    ]
    return "(\n    " + "\n    and\n    ".join(parts) + "\n)"


def _alert_group(slo: SLOSpec, objective: Objective, runbooks: dict[str, str]) -> dict[str, Any] | None:
    labels = _labels(slo, objective)
    rules: list[dict[str, Any]] = []
    thresholds = slo.alert_thresholds()
    for severity in ("page", "ticket"):
        chosen: Sequence[tuple[AlertWindow, float]] = [(a, t) for a, t in thresholds if a.severity == severity]
        if not chosen:
            continue
        expr = "\nor\n".join(_condition(labels, a, t, objective) for a, t in chosen)
        burns = ", ".join(f"{t:.4g}x over {format_duration(a.long_s)}&{format_duration(a.short_s)}" for a, t in chosen)
        what = "errors" if objective.kind == "availability" else "slow requests"
        rule: dict[str, Any] = {
            "alert": _alert_name(slo, objective, severity),
            "expr": expr,
            "labels": {"sloth_severity": severity, "severity": severity, **labels},
            "annotations": {
                "summary": f"{slo.model}: {what} are burning the {objective.target * 100:g}% SLO error budget",
                "description": f"Multi-window burn rate above {burns} ({severity}).",
                "runbook": runbooks.get(objective.failure_mode, objective.failure_mode),
            },
        }
        rules.append(rule)
    if not rules:
        return None
    return {"name": f"sloth-slo-alerts-{labels['sloth_id']}", "rules": rules}


def generate_rules(slo: SLOSpec, runbooks: dict[str, str] | None = None) -> dict[str, Any]:
    """The rule groups as a mapping (``{"groups": [...]}``) ready for a Prometheus rule file.

    ``runbooks`` maps failure modes to runbook ids for the alerts' ``runbook`` annotation.
    """
    groups: list[dict[str, Any]] = []
    for objective in slo.objectives:
        groups.append(_sli_group(slo, objective))
        groups.append(_meta_group(slo, objective))
        alerts = _alert_group(slo, objective, runbooks or {})
        if alerts is not None:
            groups.append(alerts)
    return {"groups": groups}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors: rule files are read by people


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def render_rules(slo: SLOSpec, runbooks: dict[str, str] | None = None) -> str:
    """The rule file's YAML text."""
    header = f"# Generated by `ctl slo rules` for model {slo.model} ({slo.source}). Do not edit.\n"
    body = yaml.dump(generate_rules(slo, runbooks), Dumper=_Dumper, sort_keys=False, width=120)
    return header + "---\n" + body
