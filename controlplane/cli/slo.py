"""`ctl slo validate FILE`, `ctl slo rules FILE`, `ctl slo dashboards FILE`: check an SLO spec; generate its
Prometheus rules and its Grafana dashboards."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, emit, handle_errors, print_table
from controlplane.errors import CheckFailed, InputError, NotAvailableError


def register(app: typer.Typer) -> None:
    slo_app = typer.Typer(help="SLO specs: validation and Prometheus rule generation.", no_args_is_help=True)
    app.add_typer(slo_app, name="slo")

    @slo_app.command("validate")
    @handle_errors
    def validate_cmd(
        file: Path = typer.Argument(..., help="SLO file (YAML)."),
        step_duration: str = typer.Option("30s", "--step-duration", help="Rollout step the burn windows scale to."),
        prometheus_url: str = typer.Option(
            None, "--prometheus-url", help="Also run every query against this Prometheus (needs --canary)."
        ),
        canary: int = typer.Option(None, "--canary", help="Canary version whose series must exist (live check)."),
        stable: int = typer.Option(None, "--stable", help="Stable version whose series must exist (live check)."),
        window: str = typer.Option("5m", "--window", help="Window the live check counts over."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Validate an SLO file; print what is judged (preset, queries), burn windows and alert thresholds.

        With --prometheus-url: exit 1 when a required query is empty (or NaN) for the canary or the stable
        version, 2 when Prometheus rejects a query or cannot be reached."""
        from controlplane.analysis.slo import load_slo
        from controlplane.cli.parsing import parse_duration

        slo = load_slo(file)
        step_s = parse_duration(step_duration, "--step-duration")
        data = describe(slo, step_s)
        if prometheus_url is None:
            if canary is not None or stable is not None:
                raise InputError("--canary/--stable need --prometheus-url")
            emit(output, data, lambda: _render(data))
            return
        if canary is None:
            raise InputError("--prometheus-url needs --canary VERSION (and --stable VERSION when there is one)")
        data["live"] = live_check(slo, prometheus_url, canary, stable, parse_duration(window, "--window"), step_s)
        emit(output, data, lambda: (_render(data), _render_live(data["live"])))
        live = data["live"]
        if live["rejected"]:
            raise InputError(f"Prometheus rejected {len(live['rejected'])} queries: {live['rejected'][0]}")
        if live["missing"]:
            raise CheckFailed(f"required queries without data: {', '.join(live['missing'])}")

    @slo_app.command("rules")
    @handle_errors
    def rules_cmd(
        file: Path = typer.Argument(..., help="SLO file (YAML)."),
        out: Path = typer.Option(None, "--out", help="Write the rules here instead of stdout."),
        check: bool = typer.Option(False, "--check", help="Also run `promtool check rules` on the result."),
    ) -> None:
        """Prometheus recording and alerting rules for the SLO (Sloth-style multi-window burn alerts)."""
        from controlplane.analysis.rules import render_rules
        from controlplane.analysis.slo import load_slo
        from controlplane.app.runbooks import runbook_link

        slo = load_slo(file)
        links = {o.failure_mode: runbook_link(o.failure_mode) for o in slo.objectives}
        text = render_rules(slo, links)
        if check:
            promtool_check(text)
        if out is not None:
            out.write_text(text, encoding="utf-8")
        else:
            typer.echo(text, nl=False)

    @slo_app.command("dashboards")
    @handle_errors
    def dashboards_cmd(
        file: Path = typer.Argument(..., help="SLO file (YAML)."),
        out: Path = typer.Option(Path("."), "--out", help="Folder the dashboards are written to (created if missing)."),
    ) -> None:
        """Grafana dashboards (executive, on-call, debug) as JSON, querying the rules of `ctl slo rules`."""
        from controlplane.extras import require

        require("grafana", "ctl slo dashboards")
        from controlplane.analysis.slo import load_slo

        slo = load_slo(file)
        for path in write_dashboards(slo, out):
            typer.echo(str(path))


def write_dashboards(slo: Any, out: Path) -> list[Path]:
    """Build all three dashboards, then write ``<model>-<kind>.json`` files into ``out`` (nothing on error)."""
    import json

    from controlplane.analysis.grafana import build_all

    boards = build_all(slo)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--out {out}: {err.strerror}") from err
    paths = []
    for board in boards.values():
        path = out / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def promtool_check(text: str) -> str:
    """Run the real `promtool check rules` on ``text``; CheckFailed with its message when it rejects it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise NotAvailableError("promtool not found on PATH (apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="slo-rules-") as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CheckFailed(f"promtool check rules failed: {(proc.stdout + proc.stderr).strip()}")
    return proc.stdout


def describe(slo: Any, step_duration_s: float) -> dict[str, Any]:
    from controlplane.analysis.burn import budget_consumed
    from controlplane.analysis.durations import format_duration

    objectives = [
        {
            "name": o.name,
            "kind": o.kind,
            "target": o.target,
            "error_budget": o.budget,
            "threshold_s": o.threshold_s,
            "failure_mode": o.failure_mode,
            "queries": {
                k: v
                for k, v in {"total": o.total_query, "errors": o.errors_query, "good": o.good_query}.items()
                if v is not None
            },
        }
        for o in slo.objectives
    ]
    windows = [
        {"burn": w.burn, "long": format_duration(w.long_s), "short": format_duration(w.short_s), "severity": w.severity}
        for w in slo.burn_windows(step_duration_s)
    ]
    alerts = [
        {
            "severity": a.severity,
            "long": format_duration(a.long_s),
            "short": format_duration(a.short_s),
            "burn_threshold": round(t, 4),
            "budget_consumed": round(budget_consumed(t, a.long_s, slo.period_s), 4),
        }
        for a, t in slo.alert_thresholds()
    ]
    return {
        "model": slo.model,
        "source": slo.source,
        "period": format_duration(slo.period_s),
        "metrics": judged(slo),
        "objectives": objectives,
        "canary": {
            "step_duration": format_duration(step_duration_s),
            "min_requests": slo.canary.min_requests,
            "burn_windows": windows,
            "compare": {
                "enabled": slo.canary.compare.enabled,
                "confidence": slo.canary.compare.confidence,
                "tolerance": slo.canary.compare.tolerance,
                "interval": format_duration(slo.compare_interval(step_duration_s)),
                "latency": slo.canary.compare.latency_statistic,
            },
        },
        "alerts": alerts,
    }


def _render(data: dict[str, Any]) -> None:
    print(f"{data['source']}: valid SLO for model {data['model']} (period {data['period']})")
    metrics = data["metrics"]
    print(f"metrics: preset {metrics['preset']} ({metrics['server']}), identify {metrics['identify']}")
    for line in metrics["judged"]:
        print(f"  judged: {line}")
    for line in metrics["not_judged"]:
        print(f"  NOT judged: {line}")
    print_table(
        "objectives",
        ["name", "target", "budget", "threshold"],
        [[o["name"], f"{o['target']:.4%}", f"{o['error_budget']:.4%}", o["threshold_s"] or ""] for o in data["objectives"]],
    )
    canary = data["canary"]
    print_table(
        f"canary burn windows (step {canary['step_duration']}, min {canary['min_requests']:g} requests)",
        ["burn", "long", "short", "severity"],
        [[w["burn"], w["long"], w["short"], w["severity"]] for w in canary["burn_windows"]],
    )
    print_table(
        "alerts (rules)",
        ["severity", "long", "short", "burn threshold", "budget consumed"],
        [[a["severity"], a["long"], a["short"], a["burn_threshold"], f"{a['budget_consumed']:.1%}"] for a in data["alerts"]],
    )


_IDENTIFY = {
    "pod-labels": "the pods' relabelled labels {pod_version} (version) and {role} (role)",
    "version-label": "the server's own version label {version} (must hold the registry version number)",
    "both": "the server's version label {version} and the role label {role}",
}


def judged(slo: Any) -> dict[str, Any]:
    """What the judge reads and decides for this SLO: preset, how versions are told apart, each SLI."""
    from controlplane.analysis.queries import selector

    m = slo.metrics
    labels = m.labels
    identify = _IDENTIFY[m.identify].format(pod_version=labels.pod_version, role=labels.role, version=labels.version)
    sel = selector(m, slo.model, 3, "canary")
    lines = [f"canary vs stable: {identify}; canary v3 selects {{{sel.model}}}"]
    if sel.pod is not None and m.has_pod_families():
        lines.append(f"series without a model label select {{{sel.pod}}}")
    availability, latency = slo.availability, slo.latency
    if availability is not None:
        lines.append(f"errors: {m.errors_note}")
    elif m.errors is not None:
        lines.append("errors: NOT judged (no availability objective)")
    if latency is not None:
        lines.append(f"latency SLO: share faster than {latency.threshold_s:g}s; {m.latency_note}")
        if m.buckets is not None and latency.threshold_s not in m.buckets:
            bounds = ", ".join(f"{b:g}" for b in m.buckets)
            lines.append(
                f"WARNING: {latency.threshold_s:g}s is not one of the server's default bucket bounds ({bounds}): "
                "its good-events count is empty (NaN, inconclusive) unless the server was given that bucket"
            )
    elif m.histogram is not None:
        lines.append(f"latency SLO: NOT judged (no latency objective); {m.latency_note}")
    statistic = slo.canary.compare.latency_statistic
    lines.append(f"comparison: latency {statistic}" + (", error ratio" if availability is not None else ""))
    if not slo.empty_errors_are_zero():
        lines.append("an empty error count is NaN (this server always exports it): never a pass")
    return {
        "preset": m.preset,
        "server": m.server,
        "identify": m.identify,
        "judged": lines,
        "not_judged": list(slo.not_judged()),
    }


def live_check(slo: Any, url: str, canary: int, stable: int | None, window_s: float, step_s: float) -> dict[str, Any]:
    import time

    from controlplane.app.slo_analyzer import check_queries

    versions = {"canary": canary, **({"stable": stable} if stable is not None else {})}
    interval = slo.compare_interval(step_s)
    checks = check_queries(slo, url, versions, window_s=window_s, interval_s=interval, now=time.time())
    return {
        "url": url,
        "window": window_s,
        "queries": [
            {
                "role": c.role,
                "name": c.name,
                "query": c.query,
                "required": c.required,
                "status": c.status,
                "series": c.series,
                **({"error": c.rejected} if c.rejected else {}),
            }
            for c in checks
        ],
        "rejected": [f"{c.role} {c.name}: {c.rejected}" for c in checks if c.rejected is not None],
        "missing": [f"{c.role} {c.name} ({c.status})" for c in checks if c.rejected is None and not c.usable],
        "empty_optional": [f"{c.role} {c.name}" for c in checks if c.status == "empty" and not c.required],
    }


def _render_live(live: dict[str, Any]) -> None:
    print_table(
        f"live check against {live['url']}",
        ["version", "query", "required", "status", "series"],
        [[q["role"], q["name"], "yes" if q["required"] else "no", q["status"], q["series"]] for q in live["queries"]],
    )
    for item in live["missing"]:
        print(f"EMPTY (required): {item}")
    for item in live["empty_optional"]:
        print(f"empty (read as 0: no failed request yet, or a wrong name): {item}")
    for item in live["rejected"]:
        print(f"REJECTED: {item}")
