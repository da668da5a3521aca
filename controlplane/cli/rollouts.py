"""`ctl promote|status|history|pause|resume|abort|rollback`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from controlplane.cli.common import (
    OutputFormat,
    OutputOpt,
    console,
    emit,
    err_console,
    fail,
    handle_errors,
    print_table,
)
from controlplane.errors import EXIT_FAILED, InputError, TimedOut

TARGETS = ("local", "kubernetes")


def register(app: typer.Typer) -> None:
    @app.command("promote")
    @handle_errors
    def promote_cmd(
        ref: str = typer.Argument(..., help="The version to roll out, NAME:vN."),
        target: str = typer.Option("local", "--target", help="local (embedded onnxruntime) or kubernetes."),
        steps: str = typer.Option("5,25,50,100", "--steps", help="Canary weights, strictly increasing, ending at 100."),
        step_duration: str = typer.Option("30s", "--step-duration", help="Time at each step, e.g. 30s, 2m."),
        analysis_interval: str = typer.Option("5s", "--analysis-interval", help="How often each step is judged."),
        slo: Path = typer.Option(None, "--slo", help="SLO file (YAML); the default SLO when omitted."),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the rollout until it ends."),
        timeout: str = typer.Option(None, "--timeout", help="Abort the rollout (all traffic back to stable) and "
                                    "exit 1 when it has not ended after this long, e.g. 45m (CI). Default: no limit."),
        skip_validation: bool = typer.Option(False, "--skip-validation", help="Skip the gates (recorded, loudly)."),
        checks: str = typer.Option(None, "--checks", help="Validation gates to run (default: all)."),
        alias: str = typer.Option("production", "--alias", help="Registry alias moved on promotion."),
        router: str = typer.Option(None, "--router", help="kubernetes: gateway-api, istio, kserve, replica-ratio."),
        rate: float = typer.Option(40.0, "--rate", help="local: requests per second per traffic worker."),
        metrics_port: int = typer.Option(None, "--metrics-port", help="local: expose /metrics on this port."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        """Validate, then shift traffic step by step; roll back automatically on SLO burn."""
        from controlplane.app.context import open_context
        from controlplane.app.rollouts import start_rollout
        from controlplane.app.slo_analyzer import load_slo_file
        from controlplane.cli.parsing import parse_duration, parse_list, parse_steps

        if target not in TARGETS:
            raise InputError(f"unknown --target {target!r}: use local or kubernetes")
        timeout_s = parse_duration(timeout, "--timeout") if timeout is not None else None
        if target == "kubernetes":
            from controlplane.cli.kube_promote import promote_kubernetes

            promote_kubernetes(ref, steps, step_duration, router, skip_validation, alias, wait, output, timeout_s)
            return
        if router not in (None, "local"):
            raise InputError("--router applies to --target kubernetes; the local target routes in-process")
        ctx = open_context()
        record = start_rollout(
            ctx,
            ref,
            target="local",
            router="local",
            steps=parse_steps(steps),
            step_duration_s=parse_duration(step_duration, "--step-duration"),
            analysis_interval_s=parse_duration(analysis_interval, "--analysis-interval"),
            slo=load_slo_file(slo) if slo else None,
            skip_validation=skip_validation,
            checks=parse_list(checks),
            alias=alias,
            timeout_s=timeout_s,
        )
        if skip_validation:  # on stderr: stdout stays the command's answer (-o json)
            err_console.print("[bold yellow]WARNING: validation gates skipped (--skip-validation); this is recorded.[/]")
        if not wait:
            _spawn_runner(ctx.settings.home, record.id, rate, metrics_port)
            emit(output, {"id": record.id, "ref": ref, "phase": "Pending"}, lambda: print(f"rollout #{record.id} started"))
            return
        _follow(record.id, rate, metrics_port, output, timeout_s)

    @app.command("rollout-runner", hidden=True)
    @handle_errors
    def runner_cmd(rollout_id: int, rate: float = 40.0, metrics_port: int = typer.Option(None)) -> None:
        """Run a local rollout in the background (used by `promote --no-wait` and the intents)."""
        from controlplane.app.context import open_context
        from controlplane.app.local_run import LocalRunOptions, run_local

        run_local(open_context(), rollout_id, LocalRunOptions(rate=rate, metrics_port=metrics_port))

    @app.command("status")
    @handle_errors
    def status_cmd(model: str = typer.Argument(None, help="Model name; all active rollouts when omitted."),
                   target: str = typer.Option("local", "--target", help="local or kubernetes."),
                   output: OutputFormat = OutputOpt) -> None:
        """Where rollouts stand: phase, step, weight."""
        if target not in TARGETS:
            raise InputError(f"unknown --target {target!r}: use local or kubernetes")
        if target == "kubernetes":
            if not model:
                raise InputError("--target kubernetes needs a model name (or use kubectl get modelrollouts)")
            from controlplane.cli.kube_promote import kube_status

            kube_status(model, output)
            return
        from controlplane.app.context import open_context
        from controlplane.app.rollouts import describe, find_rollout

        ctx = open_context()
        records = [find_rollout(ctx, model)] if model else ctx.store.list_rollouts(active_only=True)
        rows = [describe(ctx, r) for r in records]
        emit(output, rows if not model else rows[0], lambda: _status_table(rows))

    @app.command("history")
    @handle_errors
    def history_cmd(model: str, output: OutputFormat = OutputOpt) -> None:
        """Every rollout of a model with its events and evidence (the audit trail)."""
        from controlplane.app.context import open_context
        from controlplane.app.rollouts import history

        data = history(open_context(), model)
        emit(output, data, lambda: _history_table(model, data))

    for intent, doc in (
        ("pause", "Pause the active rollout at its current weight."),
        ("resume", "Resume a paused rollout (also after an inconclusive pause)."),
        ("abort", "Abort the active rollout: all traffic back to stable."),
        ("rollback", "Roll back now, skipping remaining steps: all traffic to stable, canary to zero."),
    ):
        _intent_command(app, intent, doc)


def _intent_command(app: typer.Typer, intent: str, doc: str) -> None:
    @app.command(intent, help=doc)
    @handle_errors
    def command(
        model: str = typer.Argument(..., help="Model name, e.g. minilm."),
        target: str = typer.Option("local", "--target", help="local or kubernetes."),
        output: OutputFormat = OutputOpt,
    ) -> None:
        if target not in TARGETS:
            raise InputError(f"unknown --target {target!r}: use local or kubernetes")
        if target == "kubernetes":
            from controlplane.cli.kube_promote import kube_intent

            kube_intent(model, intent, output)
            return
        from controlplane.app.context import open_context
        from controlplane.app.local_intents import local_intent
        from controlplane.app.rollouts import describe
        from controlplane.refs import check_name

        check_name(model)
        ctx = open_context()
        done = local_intent(ctx, model, intent, lambda rollout_id: _spawn_runner(ctx.settings.home, rollout_id))
        data = {**describe(ctx, done.record), "intent": intent, "recorded": done.result.recorded,
                "note": done.result.note, "runner_started": done.runner_started, "ended_here": done.ended_here}
        emit(output, data, lambda: print(_intent_line(intent, data)))


def _intent_line(intent: str, data: dict[str, Any]) -> str:
    asked = f"{intent} requested on rollout #{data['id']}" if data["recorded"] else \
        f"{intent}: nothing to record on rollout #{data['id']} ({data['note']})"
    state = f"{data['phase']} at {data['weight']}%: {data['message']}"
    runner = "; no runner was driving it: started one in the background" if data["runner_started"] else ""
    return f"{asked}; {state}{runner}"


def _follow(rollout_id: int, rate: float, metrics_port: int | None, output: OutputFormat,
            timeout_s: float | None = None) -> None:
    from rich.progress import BarColumn, Progress, TextColumn

    from controlplane.app.context import open_context
    from controlplane.app.local_run import LocalRunOptions, run_local
    from controlplane.app.rollouts import describe
    from controlplane.engine import timeout_reason

    ctx = open_context()
    quiet = output is OutputFormat.json
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:>3.0f}%"),
                  console=console, disable=quiet, transient=False) as progress:
        task = progress.add_task(f"rollout #{rollout_id}", total=100)

        def on_change(record: Any, outcome: Any) -> None:
            status = record.status
            progress.update(task, completed=status.get("weight", 0), description=f"{status['phase']}: {status['message']}")

        options = LocalRunOptions(rate=rate, metrics_port=metrics_port)
        final = run_local(ctx, rollout_id, options, on_change)
    data = describe(ctx, final)
    emit(output, data, lambda: console.print(f"rollout #{final.id} {data['phase']}: {data['message']}"))
    timed_out = timeout_s is not None and any(
        e.kind == "AbortRequested" and e.evidence.get("reason") == timeout_reason(timeout_s)
        for e in ctx.store.list_events(final.id))
    if timed_out:
        raise TimedOut(f"rollout #{final.id} {timeout_reason(timeout_s)}: {data['phase']}, all traffic back to stable")
    if data["phase"] != "Promoted":
        raise typer.Exit(EXIT_FAILED)


def _spawn_runner(home: Path, rollout_id: int, rate: float = 40.0, metrics_port: int | None = None) -> None:
    """Start `ctl rollout-runner` detached (its own session, so it outlives this command)."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "controlplane.cli.main", "rollout-runner", str(rollout_id), "--rate", str(rate)]
    if metrics_port:
        cmd += ["--metrics-port", str(metrics_port)]
    with open(logs / f"rollout-{rollout_id}.log", "ab") as log:
        subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ))


def _status_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no active rollouts")
        return
    print_table("rollouts", ["id", "ref", "stable", "phase", "weight", "step", "message"],
                [[r["id"], r["ref"], r["stable_version"], r["phase"], f"{r['weight']}%", _step(r), r["message"]] for r in rows])


def _history_table(model: str, data: list[dict[str, Any]]) -> None:
    if not data:
        fail(f"model {model!r} has no rollouts yet", 0)
    print_table(f"history of {model}", ["id", "ref", "stable", "phase", "message"],
                [[r["id"], r["ref"], r["stable_version"], r["phase"], r["message"]] for r in data])


def _step(r: dict[str, Any]) -> str:
    steps = r.get("steps") or []
    return f"{(r['step'] or 0) + 1}/{len(steps)}" if r.get("step", -1) >= 0 else "-"
