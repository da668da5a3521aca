"""`ctl validate NAME:vN`: run the attention-model checks on a registered version.

Exit 0 when every check passes (warnings included), 1 when any check fails or errors, 2 on bad
input (unknown check, missing or corrupt artifact, empty corpus, different-architecture baseline,
absent device). The checks live in ``validators``; this module parses, calls the runner, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from controlplane.cli.common import OutputFormat, OutputOpt, console, emit, handle_errors, print_table

CHECK_NAMES = ("tokenizer-parity", "quantization-accuracy", "head-collapse", "long-seq-memory")


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @handle_errors
    def validate_cmd(
        ref: str = typer.Argument(..., help="Version to validate: NAME:vN or NAME@alias."),
        checks: str = typer.Option(",".join(CHECK_NAMES), "--checks", help="Comma-separated checks to run (default: all)."),
        baseline: str = typer.Option(None, "--baseline", help="Version to compare against: NAME:vM or NAME@production."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        reference_tokenizer: Path = typer.Option(
            None, "--reference-tokenizer", help="Training tokenizer.json to compare the tokenizer against."
        ),
        corpus: Path = typer.Option(None, "--corpus", help="Extra texts, one per line (UTF-8)."),
        settings_file: Path = typer.Option(
            None, "--settings", help="YAML/JSON file overriding thresholds: {section: {field: value}}."
        ),
        output: OutputFormat = OutputOpt,
        engine: str = typer.Option(
            None, "--engine", help="Run the checks as the validation DAG: local (in-process) or argo (an Argo Workflow "
            "through $KUBECONFIG, pods reporting to $MLFLOW_TRACKING_URI). Default: one run, checks in sequence."
        ),
        namespace: str = typer.Option("default", "--namespace", help="--engine argo: namespace of the WorkflowTemplate."),
        timeout: float = typer.Option(3600.0, "--timeout", help="--engine: seconds before the run is terminated."),
    ) -> None:
        """Validate a registered version before it gets traffic; logs an MLflow run and tags the version."""
        from controlplane.app.context import open_context
        from controlplane.errors import CheckFailed, InputError
        from validators.runner import parse_checks, run_checks

        if engine is not None:  # the workflow engines (controlplane.workflows, issue 7)
            from controlplane.cli.validate_engine import run_engine

            run_engine(ref, checks, engine, baseline, device, namespace, timeout, output,
                       settings_file=settings_file, reference_tokenizer=reference_tokenizer, corpus=corpus)
            return

        selected = parse_checks([checks])
        settings = _load_settings(settings_file) if settings_file else None
        ctx = open_context()
        with console.status(f"validating {ref}: {', '.join(selected)}…"):
            report = run_checks(
                ref,
                checks=selected,
                baseline_ref=baseline,
                device=device,
                registry=ctx.registry,
                store=ctx.store,
                now=ctx.now(),
                settings=settings,
                reference_tokenizer=reference_tokenizer,
                corpus_file=corpus,
            )
        data = report.to_dict()
        input_errors = [r for r in report.results if r.details.get("error") == "input"]
        if input_errors:  # bad input found inside a check: one line, exit 2 (the run is recorded as error)
            first = input_errors[0]
            raise InputError(f"{first.check}: {first.findings[0] if first.findings else 'bad input'}")
        emit(output, data, lambda: _render(data))
        if not report.passed:
            bad = [r.check for r in report.results if r.status in ("failed", "error")]
            raise CheckFailed(f"{report.ref} did not pass validation: {', '.join(bad)}")


def _load_settings(path: Path) -> Any:
    import yaml

    from controlplane.errors import InputError
    from validators.settings import Settings

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"settings file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"settings file {path} is not valid YAML/JSON ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, dict):
        raise InputError(f"settings file {path} must hold a mapping of sections")
    return Settings.from_mapping(data)


def _render(data: dict[str, Any]) -> None:
    rows = []
    for r in data["results"]:
        findings = r["findings"]
        rows.append([r["check"], r["status"], findings[0] if findings else "", _seconds(r)])
    base = f" vs {data['baseline']}" if data["baseline"] else ""
    print_table(f"{data['ref']}{base} on {data['device']}: {data['status']}", ["check", "status", "finding", "s"], rows)
    for r in data["results"]:
        for line in r["findings"][1:6]:
            console.print(f"  [dim]{r['check']}:[/] {line}", highlight=False, soft_wrap=True)
    if data["run_id"]:
        console.print(f"MLflow run {data['run_id']}", highlight=False)


def _seconds(result: dict[str, Any]) -> str:
    seconds = result.get("details", {}).get("seconds")
    return f"{seconds:.1f}" if isinstance(seconds, int | float) else ""
