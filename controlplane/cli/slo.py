"""`ctl slo validate FILE` and `ctl slo rules FILE`: check an SLO spec; generate its Prometheus rules."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, emit, handle_errors, print_table
from controlplane.errors import CheckFailed, NotAvailableError


def register(app: typer.Typer) -> None:
    slo_app = typer.Typer(help="SLO specs: validation and Prometheus rule generation.", no_args_is_help=True)
    app.add_typer(slo_app, name="slo")

    @slo_app.command("validate")
    @handle_errors
    def validate_cmd(
        file: Path = typer.Argument(..., help="SLO file (YAML)."),
        step_duration: str = typer.Option("30s", "--step-duration", help="Rollout step the burn windows scale to."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Validate an SLO file; print its objectives, canary burn windows and alert thresholds."""
        from controlplane.analysis.slo import load_slo
        from controlplane.cli.parsing import parse_duration

        slo = load_slo(file)
        data = describe(slo, parse_duration(step_duration, "--step-duration"))
        emit(output, data, lambda: _render(data))

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
            },
        },
        "alerts": alerts,
    }


def _render(data: dict[str, Any]) -> None:
    print(f"{data['source']}: valid SLO for model {data['model']} (period {data['period']})")
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
